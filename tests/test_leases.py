"""Leases in a real state store (SQLite file, DuckDB file, Postgres): atomic, expiring, fenced.

Postgres runs against 127.0.0.1:5432 (database `test`) in its own schema, and skips, saying
so, where no server is reachable.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import make_project, postgres_or_skip, redshift_or_skip

from activation.state.leases import Lease, LeaseStore, Refusal
from activation.state.store import StateStore
from activation.warehouse.registry import open_warehouse
from activation.warehouse.spec import BigQueryWarehouseSpec
from activation_emulators.bigquery import BigQueryEmulator
from activation_emulators.redshift import RedshiftGuard
from activation_emulators.webhook import WebhookReceiver


@pytest.fixture(params=["sqlite", "duckdb", "postgres", "redshift", "bigquery"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "bigquery":  # Google's client and dialect to the emulator, a session per connection
        emu = BigQueryEmulator(project="test-project").__enter__()
        request.addfinalizer(lambda: emu.__exit__(None, None, None))
        spec = BigQueryWarehouseSpec(type="bigquery", project="test-project", api_endpoint=emu.url, anonymous=True)
        s = StateStore(open_warehouse(spec, tmp_path).engine, "activation_state")
    elif request.param == "redshift":  # every statement checked for what Redshift lacks
        s = StateStore(redshift_or_skip(), f"leases_{uuid.uuid4().hex[:8]}")
        request.addfinalizer(RedshiftGuard().__enter__().__exit__)
    elif request.param == "sqlite":
        s = StateStore(sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}", connect_args={"timeout": 30}), None)
    elif request.param == "duckdb":
        s = StateStore(sa.create_engine(f"duckdb:///{tmp_path / 'state.duckdb'}"), "activation_state")
    else:
        s = StateStore(postgres_or_skip(), f"leases_{uuid.uuid4().hex[:8]}")
    s.migrate()
    yield s
    if request.param in ("postgres", "redshift"):
        with s.engine.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {s.schema} CASCADE"))
    s.engine.dispose()


def test_only_one_of_many_racing_takers_gets_a_lease(store: StateStore) -> None:
    takers = [LeaseStore(store, f"daemon-{i}", ttl=30) for i in range(6)]
    for _round in range(3):  # a missing row (INSERT race), then an expired one (UPDATE race)
        start = threading.Barrier(len(takers))
        got: list[Lease | Refusal] = [None] * len(takers)  # type: ignore[list-item]

        def take(i: int, start: threading.Barrier = start, got: list[Lease | Refusal] = got) -> None:
            start.wait()
            got[i] = takers[i].acquire("users")

        threads = [threading.Thread(target=take, args=(i,)) for i in range(len(takers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, g in enumerate(got) if isinstance(g, Lease)]
        assert len(winners) == 1, got
        losers = [g for g in got if isinstance(g, Refusal)]
        assert {r.reason for r in losers} == {"held"} and {r.owner for r in losers} == {f"daemon-{winners[0]}"}
        assert takers[winners[0]].release(got[winners[0]])  # type: ignore[arg-type]


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out(store: StateStore) -> None:
    a = LeaseStore(store, "a", ttl=30)  # long: a loaded machine must not let it lapse before the renewal
    b = LeaseStore(store, "b", ttl=30)
    la = a.acquire("users")
    assert isinstance(la, Lease)
    assert isinstance(b.acquire("users"), Refusal)
    assert a.renew(la)  # a live holder extends it
    assert LeaseStore(store, "a", ttl=0.5).renew(la)  # then a renewal that lapses soon (a holder that stopped renewing)
    deadline = time.monotonic() + 60
    while isinstance(lb := b.acquire("users"), Refusal):
        assert lb.reason == "held" and time.monotonic() < deadline
        time.sleep(0.1)
    assert isinstance(lb, Lease)
    assert not a.renew(la), "a lost its lease: renewing must fail, not steal it back"
    assert not a.release(la), "nor may a release b's lease"
    assert [h["owner"] for h in b.held()] == ["b"]
    assert b.release(lb) and b.held() == []


def test_a_schedule_slot_runs_once_and_failures_back_off(store: StateStore) -> None:
    a, b = LeaseStore(store, "a", ttl=30), LeaseStore(store, "b", ttl=30)
    la = a.acquire("users", slot_ms=1000)
    assert isinstance(la, Lease)
    assert a.release(la, failed=False)
    served = b.acquire("users", slot_ms=1000)
    assert isinstance(served, Refusal) and served.reason == "served" and served.owner == "a"
    lb = b.acquire("users", slot_ms=2000)  # the next slot
    assert isinstance(lb, Lease) and lb.failures == 0
    assert b.release(lb, failed=True, backoff=60, max_backoff=600)
    refused = a.acquire("users", slot_ms=3000)
    assert isinstance(refused, Refusal) and refused.reason == "backoff"
    assert refused.until_ms is not None and refused.until_ms - a.now_ms() > 50_000
    forced = a.acquire("users", slot_ms=3000, respect_backoff=False)  # e.g. a manual run
    assert isinstance(forced, Lease) and forced.failures == 1
    assert a.release(forced, failed=True, backoff=60, max_backoff=90)  # doubled, then capped
    with store.engine.connect() as c:
        rel = f"{store.schema}.leases" if store.schema else "leases"
        failures, wait = c.execute(sa.text(f"SELECT failures, retry_ms - {a.now_ms()} FROM {rel}")).one()
    assert failures == 2 and 80_000 < wait <= 90_000
    told = a.acquire("users", respect_backoff=False)
    assert isinstance(told, Lease)
    assert a.release(told, failed=True, backoff=60, max_backoff=90, not_before=3600)  # a daily quota: the vendor said when
    with store.engine.connect() as c:
        wait = c.execute(sa.text(f"SELECT retry_ms - {a.now_ms()} FROM {rel}")).scalar_one()
    assert 3_500_000 < wait <= 3_600_000, "the destination's word beats the capped backoff"
    ok = a.acquire("users", respect_backoff=False)
    assert isinstance(ok, Lease) and a.release(ok, failed=False)
    assert isinstance(again := b.acquire("users", slot_ms=4000), Lease) and again.failures == 0


def test_model_refreshes_are_stamped_when_they_complete(store: StateStore) -> None:
    a = LeaseStore(store, "a", ttl=30)
    before = a.now_ms()
    lease = a.acquire("model:user__traits")
    assert isinstance(lease, Lease)
    assert not a.refreshed_since("model:user__traits", before), "not complete yet"
    assert a.release(lease, refreshed=True)
    assert a.refreshed_since("model:user__traits", before)
    assert not a.refreshed_since("model:user__traits", a.now_ms() + 1000)
    failed = a.acquire("model:user__traits")
    assert isinstance(failed, Lease) and a.release(failed)  # a failed refresh keeps the old stamp
    assert not a.refreshed_since("model:user__traits", failed.acquired_ms)


def test_a_lease_of_a_process_of_this_machine_that_ended_is_taken_at_once(store: StateStore) -> None:
    import subprocess
    import sys

    from activation.state.leases import _process

    a, b = LeaseStore(store, "a", ttl=300), LeaseStore(store, "b", ttl=300, take_over_ended=True)
    held = a.acquire("users")
    assert isinstance(held, Lease)
    refused = b.acquire("users")
    assert isinstance(refused, Refusal) and refused.reason == "held", "a live holder keeps its lease"
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host, namespace, _, _ = _process().split("|")
    rel = f"{store.schema}.leases" if store.schema else "leases"
    with store.engine.begin() as c:  # as if that (now ended) process had taken it
        c.execute(sa.text(f"UPDATE {rel} SET process = :p WHERE name = 'users'"), {"p": f"{host}|{namespace}|{child.stdout.strip()}|12345"})
    assert isinstance(LeaseStore(store, "daemon", ttl=300).acquire("users"), Refusal), "daemons wait for the expiry"
    taken = b.acquire("users")
    assert isinstance(taken, Lease), "no need to wait 300 s for the lease of a process that ended"
    assert not a.renew(held)
    with store.engine.begin() as c:  # another machine's process: only its expiry can tell
        c.execute(sa.text(f"UPDATE {rel} SET process = :p WHERE name = 'users'"), {"p": f"elsewhere|{namespace}|1|1"})
    assert isinstance(LeaseStore(store, "c", ttl=300, take_over_ended=True).acquire("users"), Refusal)


def test_run_does_not_start_a_sync_that_runs_elsewhere(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "p", rx)
    p.cli("run")
    engine = sa.create_engine(f"duckdb:///{p.warehouse}")
    leases = LeaseStore(StateStore(engine, "activation_state"), "daemon-x/42", ttl=60)
    assert isinstance(held := leases.acquire("users_to_hook"), Lease)
    engine.dispose()  # DuckDB: let the command open the file
    result = p.json("run", expect=1)
    by_sync = {r["sync"]: r for r in result["syncs"]}
    assert by_sync["users_to_hook"]["status"] == "blocked"
    assert "users_to_hook is running in daemon-x/42" in by_sync["users_to_hook"]["error"]
    assert by_sync["whales_to_hook"]["status"] == "up_to_date"
    assert leases.release(held)
    engine.dispose()
    assert p.json("run")["ok"] is True
