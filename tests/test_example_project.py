"""The example project (syncs.yaml, syncs/, audiences/ at the repo root) on DuckDB, Postgres
and Snowflake (fakesnow): the same demo data gives the same plans, first load and after
the data changed, with every trait, score and audience computed by each warehouse's SQL.

Plans are compared as they are dumped, with one documented exception: fakesnow runs
Snowflake's SUM() of a NUMBER(p, s) column as a DOUBLE (real Snowflake returns an exact
NUMBER(38, s)), so on fakesnow `lifetime_value` is 2898.3500000000013 where the other engines
say 2898.35. Numbers are rounded to 6 decimals for that comparison only.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from conftest import PG_URL, postgres_or_skip

from activation.project.loader import load_project
from activation.runner import plan_sync, run_sync
from activation.session import Session
from activation_emulators.demo.data import TABLES, generate, mutate
from activation_emulators.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
# Syncs whose destinations need no emulator (a webhook receiver, files): these are run;
# the HubSpot and Salesforce syncs are planned only.
RUN = ["users_to_crm", "accounts_to_crm", "at_risk_to_csv", "stalled_onboarding_to_file"]
TYPES = {  # DuckDB type of the demo tables -> the same type elsewhere
    "postgres": {
        "TIMESTAMP": "TIMESTAMP",
        "DECIMAL(12,2)": "NUMERIC(12,2)",
        "BOOLEAN": "BOOLEAN",
        "INTEGER": "INTEGER",
        "VARCHAR": "VARCHAR",
    },
    "snowflake": {
        "TIMESTAMP": "TIMESTAMP_NTZ",
        "DECIMAL(12,2)": "NUMBER(12,2)",
        "BOOLEAN": "BOOLEAN",
        "INTEGER": "INTEGER",
        "VARCHAR": "VARCHAR",
    },
}


def copy_project(root: Path, warehouse: str) -> Path:
    root.mkdir(parents=True)
    text = (ROOT / "syncs.yaml").read_text()
    line = "warehouse: {type: duckdb, path: .activation/warehouse.duckdb, schema: activation}"
    assert line in text, "the example project's warehouse line moved; update this test"
    (root / "syncs.yaml").write_text(text.replace(line, f"warehouse: {warehouse}"))
    for folder in ("syncs", "audiences"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


def copy_tables(source: duckdb.DuckDBPyConnection, engine: sa.Engine, kind: str) -> None:
    """The demo's analytics tables, copied as they are into another warehouse."""
    with engine.begin() as c:
        c.execute(sa.text("CREATE SCHEMA IF NOT EXISTS analytics"))
        for table in TABLES:
            columns = source.execute(f"DESCRIBE analytics.{table}").fetchall()
            names = [col[0] for col in columns]
            ddl = ", ".join(f"{name} {TYPES[kind][typ]}" for name, typ, *_ in columns)
            c.execute(sa.text(f"DROP TABLE IF EXISTS analytics.{table}"))
            c.execute(sa.text(f"CREATE TABLE analytics.{table} ({ddl})"))
            rows = [dict(zip(names, r, strict=False)) for r in source.execute(f"SELECT * FROM analytics.{table}").fetchall()]
            target = sa.table(table, *map(sa.column, names), schema="analytics")
            for i in range(0, len(rows), 1000):  # multi-row INSERTs (fakesnow runs executemany row by row)
                c.execute(sa.insert(target).values(rows[i : i + 1000]))


def fakesnow_sums(value: Any) -> Any:
    """Round floats to 6 decimals (see the module docstring: fakesnow's SUM is a DOUBLE)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: fakesnow_sums(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fakesnow_sums(v) for v in value]
    return value


def plans(root: Path) -> dict[str, Any]:
    with Session(load_project(root), dry_run=True) as s:
        names = list(s.project.syncs)
        prepared = s.prepare(names)
        return {n: plan_sync(s, prepared[n]).model_dump() for n in names}


def deliver(root: Path) -> None:
    with Session(load_project(root), dry_run=False) as s:
        s.state.migrate()
        prepared = s.prepare(RUN)
        statuses = {n: run_sync(s, prepared[n]).status for n in RUN}
    assert set(statuses.values()) == {"success"}, statuses


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path / "demo.duckdb"))
    generate(con, accounts=12)
    yield con
    con.close()


@pytest.fixture
def other(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, sa.Engine]]:
    """(kind, warehouse yaml, engine) of the engine compared with DuckDB."""
    kind = request.param
    tag = uuid.uuid4().hex[:8]
    if kind == "postgres":
        engine = postgres_or_skip()
        # a database of our own: the project reads the fixed schema `analytics`
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text(f"CREATE DATABASE example_{tag}"))
        url = PG_URL.rsplit("/", 1)[0] + f"/example_{tag}"
        db = sa.create_engine(url)
        yield kind, f"{{type: postgres, url: '{url}'}}", db
        db.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS example_{tag} WITH (FORCE)"))
        engine.dispose()
    else:
        request.getfixturevalue("fakesnow_patched")
        yield (
            kind,
            (
                f"{{type: snowflake, account: fakeacct, user: tester, password: '${{SF_TEST_PASSWORD}}', "
                f"database: example_{tag}, warehouse: compute_wh}}"
            ),
            sa.create_engine(f"snowflake://tester:x@fakeacct/example_{tag}/public"),
        )


@pytest.mark.parametrize("other", ["postgres", pytest.param("snowflake", marks=pytest.mark.slow)], indirect=True)
def test_example_project_plans_are_identical(
    tmp_path: Path, demo: duckdb.DuckDBPyConnection, other: tuple[str, str, sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, warehouse, engine = other
    duck_root = copy_project(tmp_path / "duckdb", "{type: duckdb, path: ../demo.duckdb}")
    other_root = copy_project(tmp_path / kind, warehouse)
    copy_tables(demo, engine, kind)
    demo.close()  # DuckDB: the project's session opens the file itself

    same = fakesnow_sums if kind == "snowflake" else (lambda plan: plan)
    first = {r: plans(r) for r in (duck_root, other_root)}
    assert same(first[duck_root]) == same(first[other_root])
    counts = first[duck_root]["users_to_crm"]["counts"]
    assert counts["added"] == counts["model_rows"] == 169
    assert 0 < first[duck_root]["stalled_onboarding_to_file"]["counts"]["added"] < 169

    with WebhookReceiver() as rx:
        monkeypatch.setenv("CRM_WEBHOOK_URL", rx.url)
        for r in (duck_root, other_root):
            deliver(r)
        con = duckdb.connect(str(tmp_path / "demo.duckdb"))
        changed = mutate(con, change=9, delete=3)
        copy_tables(con, engine, kind)
        con.close()
        second = {r: plans(r) for r in (duck_root, other_root)}
    assert same(second[duck_root]) == same(second[other_root])
    users = second[duck_root]["users_to_crm"]
    assert (users["counts"]["changed"], users["counts"]["removed"]) == (9, 3)
    assert sorted(s["key"] for s in users["removed_samples"]) == sorted(changed["deleted_user_ids"])
    # values keep their types across engines: a timestamp is the same ISO string everywhere
    sample = users["changed_samples"][0]["fields"]["last_seen_at"]["after"]
    assert dt.datetime.fromisoformat(sample) > dt.datetime(2026, 10, 1)
