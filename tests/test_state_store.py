"""The state store's migrations and run records, on SQLite, DuckDB and (where reachable) Postgres."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Project, postgres_or_skip, redshift_or_skip

from activation.state.schema import LATEST, MIGRATIONS
from activation.state.store import StateStore
from activation.warehouse.registry import open_warehouse
from activation.warehouse.spec import BigQueryWarehouseSpec
from activation_emulators.bigquery import BigQueryEmulator
from activation_emulators.redshift import RedshiftGuard


@pytest.fixture(params=["sqlite", "duckdb", "postgres", "redshift", "bigquery"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    schema: str | None = None
    if request.param == "bigquery":  # Google's client and dialect to the emulator, a session per connection
        emu = BigQueryEmulator(project="test-project").__enter__()
        request.addfinalizer(lambda: emu.__exit__(None, None, None))
        spec = BigQueryWarehouseSpec(type="bigquery", project="test-project", api_endpoint=emu.url, anonymous=True)
        engine, schema = open_warehouse(spec, tmp_path).engine, "activation_state"
    elif request.param == "redshift":  # every statement checked for what Redshift lacks
        engine, schema = redshift_or_skip(), f"state_{uuid.uuid4().hex[:8]}"
        request.addfinalizer(RedshiftGuard().__enter__().__exit__)
    elif request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path}/state.db")
    elif request.param == "duckdb":
        engine, schema = sa.create_engine(f"duckdb:///{tmp_path}/state.duckdb"), "activation_state"
    else:
        engine, schema = postgres_or_skip(), f"state_{uuid.uuid4().hex[:8]}"
    yield StateStore(engine, schema)
    if request.param in ("postgres", "redshift"):
        with engine.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def test_a_store_made_by_an_older_version_is_migrated_and_keeps_its_runs(store: StateStore) -> None:
    # Build the store as version 2 made it: runs without `details`.
    md, t = store.metadata, store.t
    with store.engine.begin() as c:
        if store.schema and store.dialect != "sqlite":
            c.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {store.schema}"))
        t["schema_version"].create(c)
        old_runs = sa.Table(
            "runs",
            sa.MetaData(schema=store.schema),
            *[sa.Column(col.name, col.type, primary_key=col.primary_key) for col in t["runs"].columns if col.name != "details"],
        )
        old_runs.create(c)
        for version, _, step in MIGRATIONS[:2]:
            if version == 1:
                for name in ("delivered", "row_errors"):
                    t[name].create(c)
            else:
                step(c, md)
            c.execute(t["schema_version"].insert().values(version=version, applied_at=dt.datetime(2026, 1, 1)))
    assert store.version() == 2
    run = store.start_run("s", "d")
    assert store.migrate() == LATEST == store.version()
    store.finish_run(run, "success", {"sent": 3}, details={"requests": 2, "details": {"job": "J1"}})
    [got] = store.runs("s")
    assert got["run_id"] == run and got["sent"] == 3 and got["details"] == {"requests": 2, "details": {"job": "J1"}}
    assert store.migrate() == LATEST  # idempotent


def test_a_duckdb_store_made_with_key_indexes_loses_them_and_keeps_its_rows(tmp_path: object) -> None:
    """DuckDB holds an ART index whole in memory: a store made before version 6 (a primary key
    on delivered, indexes on claims and releases) is rebuilt without them, rows kept."""
    from activation.state.schema import tables

    engine = sa.create_engine(f"duckdb:///{tmp_path}/old.duckdb")
    md, t = tables("activation_state")  # as versions 1-5 made it on DuckDB: with keys and indexes
    with engine.begin() as c:
        c.execute(sa.text("CREATE SCHEMA activation_state"))
        md.create_all(c)
        for version, _, _ in MIGRATIONS[:5]:
            c.execute(t["schema_version"].insert().values(version=version, applied_at=dt.datetime(2026, 1, 1)))
        c.execute(t["delivered"].insert().values(sync_name="s", row_key="k1", row_hash="h", row_values="{}", delivered_at=sa.func.now()))

    def indexes() -> int:
        with engine.connect() as c:
            return int(
                c.execute(
                    sa.text(
                        "SELECT (SELECT count(*) FROM duckdb_indexes() WHERE table_name IN ('claims', 'releases')) "
                        "+ (SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'delivered' "
                        "AND constraint_type = 'PRIMARY KEY')"
                    )
                ).scalar()
                or 0
            )

    assert indexes() > 0
    store = StateStore(engine, "activation_state")
    assert store.migrate() == LATEST
    assert indexes() == 0
    assert list(store.delivered_rows("s")) == ["k1"]
    engine.dispose()


def test_a_run_records_the_destinations_report(project: Project) -> None:
    project.rx.throttle_next(1, retry_after="0")
    project.cli("run", "users_to_hook")
    [run] = project.json("history", "users_to_hook")["runs"]
    assert run["details"]["requests"] == project.rx.request_count
    assert run["details"]["retries"] == 1 and run["details"]["throttled"] == 1
    shown = project.cli("history", "users_to_hook").stdout
    assert f"destination: {project.rx.request_count} requests, 1 retries, 1 throttled" in shown


class _ByEmail:
    """Identity rules of a destination that keeps records by email (as the runner binds them)."""

    version = "test"

    def identify(self, key: str, values: dict[str, object]) -> tuple[str, ...]:
        return (str(values.get("email", key)).lower(),)

    def removal(self, identity: str, values: dict[str, object]) -> dict[str, object]:
        return {"email": identity}


def test_journaled_batches_are_settled_or_folded_back_row_by_row(store: StateStore) -> None:
    from activation.state.identities import UNKNOWN_HASH
    from activation.state.journal import journal_entry, values_json
    from activation.state.store import Delivered

    store.migrate()
    run = store.start_run("s", "d")
    odd = 'quote " and \\ and \u00e9\x1f'
    first = journal_entry([(f"k{i}", values_json({"email": f"u{i}@example.com", "n": i}), (f"u{i}@example.com",)) for i in range(4)])
    second = journal_entry([(odd, values_json({"x": None}), (odd,))])
    store.commit_batch("s", run, journal=first)
    store.commit_batch("s", run, journal=second)
    with store.engine.begin() as c:  # a per-row entry, as earlier releases journaled each row
        c.execute(
            store.t["in_flight"].insert(),
            {"sync_name": "s", "row_key": "single", "row_values": values_json({"a": 1}), "run_id": run, "created_at": datetime(2026, 1, 1)},
        )
    assert store.in_flight_count("s") == 6
    # the first push returned: its rows are recorded and its entry ends, in one transaction
    store.commit_batch(
        "s",
        run,
        [Delivered(f"k{i}", "h", {"n": i}, f"id{i}", new=True, identities=(f"u{i}@example.com",)) for i in range(4)],
        settled=first.ids,
    )
    assert store.in_flight_count("s") == 2
    # the process dies: what is still journaled is folded back as possibly delivered
    assert store.recover_in_flight("s", _ByEmail()) == 2
    rows = store.delivered_rows("s")
    assert {k: (d.row_hash, d.values) for k, d in rows.items() if d.row_hash == UNKNOWN_HASH} == {
        odd: (UNKNOWN_HASH, {"x": None}),
        "single": (UNKNOWN_HASH, {"a": 1}),
    }
    assert rows["k2"].row_hash == "h" and rows["k2"].dest_id == "id2"
    assert store.in_flight_count("s") == 0
    from activation.state.identities import claimants

    # each recovered row claims what it was journaled under (the per-row entry: computed)
    assert claimants(store, "s", [odd, "single", "u2@example.com"]) == {odd: {odd}, "single": {"single"}, "u2@example.com": {"k2"}}


def test_a_row_sent_under_a_new_identity_by_a_run_that_died_releases_the_old_one(store: StateStore) -> None:
    """Found by an oracle that keeps records by email: a row whose email changed was sent, the
    process died; the destination may hold the record under either email. The recovery keeps
    both: the new one claimed by the row, the old one released (removed at the end of the next
    run unless a row claims it again), never a synthetic 'ghost' key."""
    from activation.state.identities import claimants, releasable
    from activation.state.journal import journal_entry, values_json
    from activation.state.store import Delivered

    store.migrate()
    run = store.start_run("s", "d")
    store.commit_batch("s", run, [Delivered("k1", "h", {"email": "a@x.com"}, "rec1", new=True, identities=("a@x.com",))])
    store.commit_batch("s", run, journal=journal_entry([("k1", values_json({"email": "b@x.com"}), ("b@x.com",))]))
    assert store.recover_in_flight("s", _ByEmail()) == 1
    assert claimants(store, "s", ["a@x.com", "b@x.com"]) == {"b@x.com": {"k1"}}
    [released] = [r for batch in releasable(store, "s") for r in batch]
    # without rec1: the dead run may have renamed rec1 to b@x.com; a@x.com is found by value
    assert (released.identity, released.row_key, released.dest_id, released.values) == ("a@x.com", "k1", None, {"email": "a@x.com"})
    assert store.delivered_rows("s")["k1"].dest_id is None  # rec1 belongs to the old identity
    assert all("\x1e" not in k for k in store.delivered_rows("s"))
