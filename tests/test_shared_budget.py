"""One request budget per vendor account, shared through the state store: syncs in separate
processes writing to one HubSpot app keep together under its quota."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from conftest import PG_URL, postgres_or_skip, redshift_or_skip

from activation.state.budget import AccountBudget
from activation.state.store import StateStore
from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.redshift import RedshiftGuard


def _store(url: str, schema: str | None) -> StateStore:
    return _migrated(StateStore(sa.create_engine(url), schema))


def _migrated(store: StateStore) -> StateStore:
    store.migrate()
    return store


@pytest.fixture(params=["sqlite", "duckdb", "postgres", "redshift"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> list[StateStore]:
    """Two stores on one database, as two processes would open it."""
    if request.param in ("postgres", "redshift"):
        (postgres_or_skip() if request.param == "postgres" else redshift_or_skip()).dispose()
        schema = f"budget_{os.getpid()}_{abs(hash(tmp_path.name)) % 10**6}"
        with sa.create_engine(PG_URL).begin() as c:
            c.execute(sa.text(f"CREATE SCHEMA {schema}"))
        request.addfinalizer(lambda: _drop(schema))
        if request.param == "redshift":  # every statement checked for what Redshift lacks
            request.addfinalizer(RedshiftGuard().__enter__().__exit__)
        if request.param == "postgres":
            return [_store(PG_URL, schema), _store(PG_URL, schema)]
        return [_migrated(StateStore(redshift_or_skip(), schema)), _migrated(StateStore(redshift_or_skip(), schema))]
    if request.param == "duckdb":  # one process only (DuckDB's lock): two engines on the file in turn
        store = _store(f"duckdb:///{tmp_path / 'state.duckdb'}", None)
        return [store, StateStore(store.engine, None)]
    url = f"sqlite:///{tmp_path / 'state.db'}"
    return [_store(url, None), _store(url, None)]


def _drop(schema: str) -> None:
    with sa.create_engine(PG_URL).begin() as c:
        c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def test_reservations_of_every_process_interleave_without_overlap(stores: list[StateStore]) -> None:
    a, b = (AccountBudget(s, "hubspot:abc") for s in stores)
    other = AccountBudget(stores[1], "hubspot:another-app")
    spans = []
    for i in range(30):  # 10 ms per slot: a reserves 3 slots, b 1, alternately
        first, _now = (a if i % 2 else b).reserve(3 if i % 2 else 1, 0.01)
        spans.append((first, first + (30 if i % 2 else 10)))
    spans.sort()
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False)), "two callers got one slot"
    # the schedule moves on by what was reserved: 15 x 30 ms + 15 x 10 ms after the first slot
    assert spans[-1][1] - spans[0][0] >= 600
    first, now = other.reserve(1, 0.01)
    assert first <= now + 5, "another account's budget is its own"


def test_a_429_holds_back_every_process(stores: list[StateStore]) -> None:
    a, b = (AccountBudget(s, "hubspot:abc") for s in stores)
    a.reserve(1, 0.01)
    a.pause(30)
    first, now = b.reserve(1, 0.01)
    assert first >= now + 29_000, "the other process waits out the window too"
    assert b.take(0.01) > 25, "its next call is held back as long"


PROJECT = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
state: {{url: "{state}"}}
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  hs: {{type: hubspot, token: "${{HS_TOKEN}}", base_url: "{url}", requests_per_second: 50, max_retries: 8}}
syncs:
  {name}: {{from: user, to: hs, object: contacts, mode: upsert, match: {{email: email}}, fields: {{jobtitle: title}}}}
"""


def _project(root: Path, name: str, state: str, url: str, rows: int) -> Path:
    root.mkdir()
    (root / "syncs.yaml").write_text(PROJECT.format(state=state, url=url, name=name))
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA src")
    con.execute(
        f"CREATE TABLE src.users AS SELECT i AS user_id, '{name}' || i || '@example.com' AS email, "
        f"'Engineer' AS title FROM range({rows}) t(i)"
    )
    con.close()
    return root


@pytest.mark.slow
def test_two_processes_writing_to_one_app_keep_together_under_its_quota(tmp_path: Path) -> None:
    """Each process alone keeps under the quota HubSpot says (0.9 of 20 calls per second); two
    at once without a shared budget send ~1.8x it and collect 429s all along. With it, their
    calls take turns in one schedule: a few 429s at most, before the first answer tells the
    quota."""
    state = f"sqlite:///{tmp_path / 'state.db'}"
    with HubSpotEmulator(tokens={"pat-shared"}, rate_limit=(20, 1.0)) as hub:
        roots = [_project(tmp_path / name, name, state, hub.url, rows=2500) for name in ("large", "small")]
        env = {**os.environ, "HS_TOKEN": "pat-shared"}
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "activation.cli", "run", "--json", "-p", str(r)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for r in roots
        ]
        outputs = [p.communicate(timeout=600) for p in runs]
        for p, (out, err) in zip(runs, outputs, strict=True):
            assert p.returncode == 0, out + err
            [result] = json.loads(out)["syncs"]
            assert result["status"] == "success" and result["acknowledged"] == 2500, result
        assert len(hub.records("contacts")) == 5000
        # 25 batch calls and a few property reads per process: spaced together, not each alone
        assert hub.throttled <= 4, f"{hub.throttled} calls answered 429"


def test_plan_says_whether_a_run_fits_in_what_remains_of_the_daily_quota(tmp_path: Path) -> None:
    """HubSpot tells the daily quota in every answer; a run keeps the last word in the state, and
    the next plan weighs its calls against it before anything is sent."""
    state = f"sqlite:///{tmp_path / 'state.db'}"
    with HubSpotEmulator(tokens={"pat-shared"}, daily_limit=40) as hub:
        root = _project(tmp_path / "p", "first", state, hub.url, rows=1500)  # 15 calls of 100, and a few more
        env = {**os.environ, "HS_TOKEN": "pat-shared"}

        def cli(*args: str) -> dict:
            done = subprocess.run(
                [sys.executable, "-m", "activation.cli", *args, "--json", "-p", str(root)],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            return json.loads(done.stdout)

        [before] = cli("plan")["plans"]
        assert not any("daily" in w for w in before["warnings"]), "nothing is said before the vendor said it"
        assert cli("run")["syncs"][0]["status"] == "success"
        left = 40 - hub.request_count
        con = duckdb.connect(str(root / "warehouse.duckdb"))
        con.execute("INSERT INTO src.users SELECT i, 'first' || i || '@example.com', 'Engineer' FROM range(1500, 4000) t(i)")
        con.close()
        [plan] = cli("plan")["plans"]
        [said] = [w for w in plan["warnings"] if "calls" in w]
        assert "needs about 26 calls" in said and f"{left} of the account's 40 a day remained" in said, said
        assert "would stop when the daily quota runs out" in said


SALESFORCE = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
state: {{url: "{state}"}}
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  sf: {{type: salesforce, instance_url: "https://{instance}", session_id: sf-token, transport_url: "{url}", bulk_poll_seconds: 0.01}}
syncs:
  first: {{from: user, to: sf, object: Contact, mode: upsert, match: {{Email_Key__c: email}}, fields: {{LastName: title, Email: email}}}}
"""


def test_plan_weighs_a_salesforce_run_against_the_orgs_daily_requests(tmp_path: Path) -> None:
    from activation_emulators.salesforce import Field, SalesforceEmulator

    with SalesforceEmulator(tokens=("sf-token",)) as sf:
        sf.add_field("Contact", Field("Email_Key__c", external_id=True, unique=True))
        sf.set_api_usage(used=14_994, limit=15_000)
        root = _project(tmp_path / "p", "first", "", "", rows=300)
        (root / "syncs.yaml").write_text(SALESFORCE.format(state=f"sqlite:///{tmp_path / 'state.db'}", instance=sf.instance, url=sf.url))

        def cli(*args: str) -> dict:
            done = subprocess.run(
                [sys.executable, "-m", "activation.cli", *args, "--json", "-p", str(root)],
                capture_output=True,
                text=True,
                timeout=300,
                env=os.environ,
            )
            return json.loads(done.stdout)

        assert cli("run")["syncs"][0]["status"] == "success"
        used, limit = sf.api_usage
        con = duckdb.connect(str(root / "warehouse.duckdb"))
        con.execute("UPDATE src.users SET title = 'Manager'")  # 300 updates: Collections of 200, with look-ups
        con.close()
        [plan] = cli("plan")["plans"]
        [said] = [w for w in plan["warnings"] if "calls" in w]
        assert f"needs about 5 calls; {limit - used} of the account's {limit:,} a day remained" in said, said
        assert limit - used < 5 and "would stop" in said, said


def test_the_budget_on_a_snowflake_state_takes_turns_too(fakesnow_patched: None) -> None:
    """Snowflake has no ON CONFLICT: the account's row is made by a MERGE (as leases are)."""
    from activation.state.budget import daily_quota

    engine = sa.create_engine("snowflake://u:p@acct/db/public")
    with engine.begin() as c:
        c.execute(sa.text("CREATE DATABASE IF NOT EXISTS db"))
    store = StateStore(engine, "activation_state")
    store.migrate()
    first, _ = AccountBudget(store, "hubspot:x").reserve(2, 0.01)
    second, _ = AccountBudget(store, "hubspot:x").reserve(1, 0.01)
    assert second >= first + 20, "the second process's slot comes after the first's two"
    budget = AccountBudget(store, "hubspot:y")  # no row yet: the daily word makes it
    budget.observe_daily(5, 10)
    quota = daily_quota(store, "hubspot:y")
    assert quota is not None and (quota.remaining, quota.limit) == (5, 10)
