"""Keys across warehouses and state stores: string keys that differ only by case or accent,
integer keys (whose string order is not their numeric order), composite keys; with the key
column case-insensitive where the warehouse allows it (DuckDB NOCASE, a non-deterministic
ICU collation in Postgres). Keys compare by code point everywhere, so every distinct value is
its own key, in the warehouse's diff (state in the warehouse) and in the merge with a SQLite
state store (rows merged in code-point order) alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PG_URL, postgres_or_skip

from activation.project.loader import load_project
from activation.runner import plan_sync, run_sync
from activation.session import Session
from activation_emulators.webhook import WebhookReceiver

TEXT_KEYS = ["abc", "ABC", "Abc", "b", "B", "_x", "é", "e", "z ", "10", "9", "Z"]
ROWS = [
    (k, n, ["eu", "EU", "us"][i % 3], f"v{i}")
    for i, (k, n) in enumerate(zip(TEXT_KEYS, [1, 2, 10, 9, 100, 3, 20, 11, 101, 4, 5, 6], strict=True))
]

PROJECT = """
version: 1
warehouse: {warehouse}
state: {state}
entities:
  by_text: {{table: {src}.things, key: k}}
  by_int: {{table: {src}.things, key: n}}
  by_pair: {{table: {src}.things, key: [region, n]}}
destinations:
  hook: {{type: webhook, url: "{url}", batch_size: 5}}
syncs:
  by_text: {{from: by_text, to: hook, mode: mirror, match: {{ident: k}}, fields: {{v: v}}, max_removal: 100%}}
  by_int: {{from: by_int, to: hook, mode: mirror, match: {{ident: n}}, fields: {{v: v}}, max_removal: 100%}}
  by_pair: {{from: by_pair, to: hook, mode: mirror, match: {{ident: n}}, fields: {{v: v}}, max_removal: 100%}}
"""


def run(root: Path) -> dict[str, Any]:
    names = ["by_text", "by_int", "by_pair"]
    with Session(load_project(root), dry_run=True) as s:
        prepared = s.prepare(names)
        plans = {n: plan_sync(s, prepared[n]).counts.model_dump() for n in names}
    with Session(load_project(root), dry_run=False) as s:
        s.state.migrate()
        prepared = s.prepare(names)
        assert {run_sync(s, prepared[n]).status for n in names} == {"success"}
    return plans


@pytest.fixture(params=["duckdb", "postgres", "snowflake"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, sa.Engine, str, str]]:
    """(warehouse yaml, engine, source schema, DDL of the key column) for each engine."""
    tag = uuid.uuid4().hex[:8]
    if request.param == "duckdb":
        engine = sa.create_engine(f"duckdb:///{tmp_path / 'wh.duckdb'}")
        yield f"{{type: duckdb, path: {tmp_path / 'wh.duckdb'}, schema: act_{tag}}}", engine, "src", "VARCHAR COLLATE NOCASE"
        engine.dispose()
    elif request.param == "postgres":
        engine = postgres_or_skip()
        src = f"src_{tag}"
        with engine.begin() as c:
            c.execute(sa.text(f"CREATE SCHEMA {src}"))
            # case- and accent-insensitive: 'abc' = 'ABC' = 'Abc' for this column
            c.execute(sa.text(f"CREATE COLLATION {src}.ci (provider = icu, locale = 'und-u-ks-level1', deterministic = false)"))
        yield f"{{type: postgres, url: '{PG_URL}', schema: act_{tag}}}", engine, src, f"VARCHAR COLLATE {src}.ci"
        with engine.begin() as c:
            for schema in (src, f"act_{tag}", f"state_{tag}"):
                c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()
    else:
        request.getfixturevalue("fakesnow_patched")
        engine = sa.create_engine(f"snowflake://tester:x@fakeacct/db_{tag}/public")
        # fakesnow cannot run Snowflake collations (COLLATE 'en-ci'): a plain VARCHAR here
        yield (
            (
                f"{{type: snowflake, account: fakeacct, user: tester, password: '${{SF_TEST_PASSWORD}}', "
                f"database: db_{tag}, schema: act_{tag}}}"
            ),
            engine,
            "src",
            "VARCHAR",
        )


def load(engine: sa.Engine, src: str, key_type: str, rows: list[tuple[str, int, str, str]]) -> None:
    with engine.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {src}"))
        c.execute(sa.text(f"DROP TABLE IF EXISTS {src}.things"))
        c.execute(sa.text(f"CREATE TABLE {src}.things (k {key_type}, n INTEGER, region VARCHAR(5), v VARCHAR(10))"))
        table = sa.table("things", *map(sa.column, ["k", "n", "region", "v"]), schema=src)
        c.execute(sa.insert(table).values([dict(zip(["k", "n", "region", "v"], r, strict=False)) for r in rows]))
    engine.dispose()


def test_every_distinct_key_value_is_its_own_key(tmp_path: Path, warehouse: tuple[str, sa.Engine, str, str]) -> None:
    yaml, engine, src, key_type = warehouse
    state_schema = yaml.rsplit("schema: act_", 1)[1].rstrip("}")
    results = {}
    for state in (f"{{schema: state_{state_schema}}}", "{url: 'sqlite:///state.db'}"):
        load(engine, src, key_type, ROWS)
        with WebhookReceiver() as rx:
            root = tmp_path / ("sqlite" if "sqlite" in state else "in_warehouse")
            root.mkdir()
            (root / "syncs.yaml").write_text(PROJECT.format(warehouse=yaml, state=state, src=src, url=rx.url))
            first = run(root)
            delivered = rx.all_records()
            # 'ABC' changes, 'Abc' leaves; 'abc' (equal to both under the column's collation) stays
            changed = [(k, n, r, "new" if k == "ABC" else v) for k, n, r, v in ROWS if k != "Abc"]
            load(engine, src, key_type, changed)
            second = run(root)
            results[state] = (first, second, delivered, rx.all_records())
    first, second, delivered, after = results["{url: 'sqlite:///state.db'}"]
    assert results[f"{{schema: state_{state_schema}}}"] == (first, second, delivered, after)
    n = len(ROWS)
    assert first == {
        s: {"model_rows": n, "delivered": 0, "added": n, "changed": 0, "removed": 0, "unchanged": 0, "rejected": 0, "released": 0}
        for s in ("by_text", "by_int", "by_pair")
    }
    assert sorted(delivered["by_text"]) == sorted(TEXT_KEYS)
    assert sorted(delivered["by_int"]) == sorted(str(n) for _, n, _, _ in ROWS)
    assert sorted(delivered["by_pair"]) == sorted(f"{r}\x1f{n}" for _, n, r, _ in ROWS)
    assert second["by_text"] == {
        "model_rows": n - 1,
        "delivered": n,
        "added": 0,
        "changed": 1,
        "removed": 1,
        "unchanged": n - 2,
        "rejected": 0,
        "released": 1,
    }
    assert after["by_text"]["ABC"]["v"] == "new" and after["by_text"]["abc"]["v"] == "v0"
    assert "Abc" not in after["by_text"] and len(after["by_int"]) == n - 1
