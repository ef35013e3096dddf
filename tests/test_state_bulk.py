"""State writes are bulk on every warehouse that can hold the state: a batch of delivered rows
is a handful of statements, never one INSERT per row, and reads back exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import postgres_or_skip

from activation.state.journal import journal_entry
from activation.state.store import Delivered, RowError, StateStore


@pytest.fixture(params=["duckdb", "postgres", "snowflake"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sa.Engine, str]]:
    schema = f"state_{uuid.uuid4().hex[:8]}"
    if request.param == "duckdb":
        e = sa.create_engine(f"duckdb:///{tmp_path / 'wh.duckdb'}")
        yield e, schema
    elif request.param == "postgres":
        e = postgres_or_skip()
        yield e, schema
        with e.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    else:
        request.getfixturevalue("fakesnow_patched")
        e = sa.create_engine("snowflake://tester:x@fakeacct/db_state/public")
        yield e, schema
    e.dispose()


def test_a_batch_is_written_in_bulk_and_reads_back(engine: tuple[sa.Engine, str]) -> None:
    e, schema = engine
    store = StateStore(e, schema)
    store.migrate()
    run_id = store.start_run("s", "hook")
    rows = [
        Delivered(
            f"k{i:04d}", f"t:{i}", {"n": i, "text": "quote ' and \\ and \u00e9\x1f"}, f"id{i}" if i % 2 else None, identities=(f"n:{i}",)
        )
        for i in range(1200)
    ]
    statements: list[tuple[str, bool]] = []

    def record(conn: object, cursor: object, statement: str, params: object, context: object, executemany: bool) -> None:
        statements.append((statement, executemany))

    sa.event.listen(e, "before_cursor_execute", record)
    try:
        entry = journal_entry([(r.key, "{}", r.identities or ()) for r in rows])
        store.commit_batch("s", run_id, journal=entry)
        store.commit_batch("s", run_id, rows, removed=[], errors=[RowError("bad", "destination", "no")], settled=entry.ids)
        store.commit_batch("s", run_id, [], removed=[f"k{i:04d}" for i in range(0, 1200, 3)])
    finally:
        sa.event.remove(e, "before_cursor_execute", record)
    writes = [s for s, _ in statements if s.lstrip().upper().startswith(("INSERT", "DELETE"))]
    assert not any(many for _, many in statements), "no executemany: each write is one set-based statement"
    # journal: insert; commit: delete delivered, delete and insert claims, delete in flight,
    # insert delivered, insert errors; removal: delete delivered, delete claims. Snowflake
    # splits payloads over 256 kB into a few statements.
    assert len(writes) <= (16 if e.dialect.name == "snowflake" else 9), writes
    delivered = store.delivered_rows("s")
    assert sorted(delivered) == sorted(f"k{i:04d}" for i in range(1200) if i % 3)
    assert delivered["k0001"].values == {"n": 1, "text": "quote ' and \\ and \u00e9\x1f"}
    assert delivered["k0001"].dest_id == "id1" and delivered["k0002"].dest_id is None
    assert delivered["k0002"].row_hash == "t:2"
    assert store.in_flight_count("s") == 0
    assert store.row_errors(run_id) == [{"row_key": "bad", "stage": "destination", "reason": "no"}]
    from activation.state.identities import claimants

    held = claimants(store, "s", [f"n:{i}" for i in range(1200)])
    assert held == {f"n:{i}": {f"k{i:04d}"} for i in range(1200) if i % 3}  # a removed row's claim goes with it
