"""The same project gives the same plans and the same deliveries on every warehouse.

Postgres runs against the real server at 127.0.0.1:5432 (database `test`); where none is
reachable these tests skip, saying so. Snowflake runs through the real snowflake-sqlalchemy
dialect and connector API on fakesnow (`fakesnow.patch()`: DuckDB underneath, every
statement translated from Snowflake SQL by sqlglot), so our Snowflake SQL is executed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PG_URL, postgres_or_skip, rs_url

from activation.project.loader import load_project
from activation.runner import plan_sync, run_sync
from activation.session import Session
from activation_emulators.bigquery import BigQueryEmulator
from activation_emulators.redshift import RedshiftGuard, prepare, problems
from activation_emulators.webhook import WebhookReceiver

PROJECT = """
version: 1
warehouse: {warehouse}
state: {state}
entities:
  user: {{table: {src}.users, key: user_id}}
  account: {{table: {src}.accounts, key: [region, account_no]}}
traits:
  ltv:
    entity: user
    sql: "select user_id, sum(amount) as ltv from {src}.orders group by user_id"
  engagement:
    entity: user
    score:
      ltv: {{weight: 1.0, points: [[0, 1], [100, 3]]}}
      seats: {{weight: 0.5, points: [[3, 2]]}}
  users:
    entity: account
    sql: "select a.region, a.account_no, count(u.user_id) as users from {src}.accounts a left join {src}.users u on u.account_no = a.account_no and u.region = a.region group by a.region, a.account_no"
audiences:
  whales: {{entity: user, where: "ltv >= 100"}}
  big_accounts: {{entity: account, sql: "select region, account_no from {{{{ ref('account') }}}} where users >= 2"}}
destinations:
  hook: {{type: webhook, url: "{url}", batch_size: 40}}
syncs:
  users:
    from: user
    to: hook
    mode: mirror
    match: {{email: email}}
    fields: {{plan: plan, ltv: ltv, score: engagement, since: signed_up, label: "{{{{ row.plan | upper }}}}-{{{{ row.seats }}}}"}}
    max_removal: 50%
  whales: {{from: whales, to: hook, mode: audience, match: {{email: email}}}}
  accounts:
    from: big_accounts
    to: hook
    mode: mirror
    match: {{name: name}}
    fields: {{users: users, region: region}}
"""


def dataset() -> dict[str, list[dict[str, Any]]]:
    import datetime as dt

    users = [
        {
            "user_id": f"u{i:03d}",
            "email": f"user{i}@example.com",
            "plan": ["free", "pro", "enterprise"][i % 3],
            "seats": i % 7,
            "signed_up": dt.date(2026, 1, 1) + dt.timedelta(days=i),
            "region": ["eu", "us"][i % 2],
            "account_no": i % 40,
        }
        for i in range(150)
    ]
    orders = [{"user_id": f"u{i % 150:03d}", "amount": (i * 7) % 50} for i in range(420)]
    accounts = [{"region": r, "account_no": n, "name": f"Account {r}-{n}"} for r in ("eu", "us") for n in range(40)]
    return {"users": users, "orders": orders, "accounts": accounts}


DDL = {
    "users": "user_id VARCHAR(10), email VARCHAR(100), plan VARCHAR(20), seats INTEGER, signed_up DATE, region VARCHAR(5), account_no INTEGER",
    "orders": "user_id VARCHAR(10), amount INTEGER",
    "accounts": "region VARCHAR(5), account_no INTEGER, name VARCHAR(50)",
}


def load(engine: sa.Engine, schema: str, data: dict[str, list[dict[str, Any]]]) -> None:
    with engine.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        for table, rows in data.items():
            c.execute(sa.text(f"DROP TABLE IF EXISTS {schema}.{table}"))
            ddl = DDL[table]
            if engine.dialect.name == "bigquery":  # GoogleSQL's types
                ddl = re.sub(r"VARCHAR\(\d+\)", "STRING", ddl).replace("INTEGER", "INT64")
            c.execute(sa.text(f"CREATE TABLE {schema}.{table} ({ddl})"))
            # one multi-row INSERT (fakesnow runs an executemany row by row)
            c.execute(sa.insert(sa.table(table, *map(sa.column, rows[0]), schema=schema)).values(rows))


def mutate(engine: sa.Engine, schema: str) -> None:
    with engine.begin() as c:
        c.execute(sa.text(f"UPDATE {schema}.users SET plan = 'team' WHERE user_id IN ('u001', 'u004', 'u007')"))
        c.execute(sa.text(f"DELETE FROM {schema}.users WHERE user_id IN ('u010', 'u011')"))
        c.execute(sa.text(f"INSERT INTO {schema}.users VALUES ('u900', 'new@example.com', 'pro', 4, DATE '2026-09-01', 'eu', 3)"))
        c.execute(sa.text(f"INSERT INTO {schema}.orders VALUES ('u002', 500), ('u900', 20)"))


def run_all(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    names = ["users", "whales", "accounts"]
    with Session(load_project(root), dry_run=True) as s:
        prepared = s.prepare(names)
        plans = [plan_sync(s, prepared[n]).model_dump() for n in names]
    with Session(load_project(root), dry_run=False) as s:
        s.state.migrate()
        prepared = s.prepare(names)
        statuses = [run_sync(s, prepared[n]).status for n in names]
    return plans, statuses


@pytest.fixture
def pg() -> Iterator[tuple[sa.Engine, str]]:
    engine = postgres_or_skip()
    tag = uuid.uuid4().hex[:8]
    yield engine, tag
    with engine.begin() as c:
        for schema in (f"src_{tag}", f"act_{tag}", f"state_{tag}"):
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def sf_warehouse(tag: str) -> str:
    return (
        f"{{type: snowflake, account: fakeacct, user: tester, password: '${{SF_TEST_PASSWORD}}', "
        f"database: db_{tag}, warehouse: compute_wh, role: tester, schema: act_{tag}}}"
    )


def sf_engine(tag: str) -> sa.Engine:
    return sa.create_engine(f"snowflake://tester:x@fakeacct/db_{tag}/public")


#: the BigQuery emulator of the running test (plan_and_deliver's projects point at it)
_BIGQUERY: list[str] = []


def url_of_bigquery() -> str:
    return _BIGQUERY[-1]


def bq_warehouse(url: str, tag: str) -> str:
    return f"{{type: bigquery, project: test-project, api_endpoint: '{url}', anonymous: true, schema: act_{tag}}}"


def bq_engine(url: str, root: Path) -> sa.Engine:
    """An engine of activation's own BigQuery warehouse (sessions and all), to load the data."""
    from activation.warehouse.registry import open_warehouse
    from activation.warehouse.spec import BigQueryWarehouseSpec

    spec = BigQueryWarehouseSpec(type="bigquery", project="test-project", api_endpoint=url, anonymous=True)
    return open_warehouse(spec, root).engine


def project_for(kind: str, root: Path, url: str, tag: str) -> tuple[Path, sa.Engine, str]:
    root.mkdir(parents=True)
    src = f"src_{tag}"
    if kind == "duckdb":
        warehouse = f"{{type: duckdb, path: wh.duckdb, schema: act_{tag}}}"
        state = f"{{schema: state_{tag}}}"
        engine = sa.create_engine(f"duckdb:///{root / 'wh.duckdb'}")
    elif kind == "duckdb+sqlite":
        warehouse = f"{{type: duckdb, path: wh.duckdb, schema: act_{tag}}}"
        state = "{url: 'sqlite:///state.db'}"
        engine = sa.create_engine(f"duckdb:///{root / 'wh.duckdb'}")
    elif kind == "postgres":
        warehouse = f"{{type: postgres, url: '{PG_URL}', schema: act_{tag}}}"
        state = f"{{schema: state_{tag}}}"
        engine = sa.create_engine(PG_URL)
    elif kind == "postgres+sqlite":
        warehouse = f"{{type: postgres, url: '{PG_URL}', schema: act_{tag}}}"
        state = "{url: 'sqlite:///state.db'}"
        engine = sa.create_engine(PG_URL)
    elif kind in ("redshift", "redshift+sqlite"):
        warehouse = f"{{type: redshift, url: '{rs_url()}', sslmode: disable, schema: act_{tag}}}"
        state = f"{{schema: state_{tag}}}" if kind == "redshift" else "{url: 'sqlite:///state.db'}"
        engine = sa.create_engine(PG_URL)  # the data is loaded as into any Postgres
    elif kind in ("bigquery", "bigquery+sqlite"):
        warehouse = bq_warehouse(url_of_bigquery(), tag)
        state = f"{{schema: state_{tag}}}" if kind == "bigquery" else "{url: 'sqlite:///state.db'}"
        engine = bq_engine(url_of_bigquery(), root)
    elif kind == "snowflake":
        warehouse, state, engine = sf_warehouse(tag), f"{{schema: state_{tag}}}", sf_engine(tag)
    elif kind == "snowflake+sqlite":
        warehouse, state, engine = sf_warehouse(tag), "{url: 'sqlite:///state.db'}", sf_engine(tag)
    else:
        raise AssertionError(kind)
    (root / "syncs.yaml").write_text(PROJECT.format(warehouse=warehouse, state=state, src=src, url=url))
    return root, engine, src


def plan_and_deliver(tmp_path: Path, tag: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Per kind: (first plans, second plans, what the receiver holds) for the same data."""
    results = {}
    for kind in kinds:
        with WebhookReceiver() as rx:
            # a fresh set of schemas for each further run on the Postgres server
            tag2 = tag + {"postgres+sqlite": "b", "redshift": "c", "redshift+sqlite": "d"}.get(kind, "")
            root, engine, src = project_for(kind, tmp_path / kind, rx.url, tag2)
            try:
                load(engine, src, dataset())
                engine.dispose()  # DuckDB: one configuration per file per process
                first, statuses = run_all(root)
                assert set(statuses) == {"success"}, (kind, statuses)
                mutate(engine, src)
                engine.dispose()
                second, statuses = run_all(root)
                assert set(statuses) == {"success"}, (kind, statuses)
                third, statuses = run_all(root)
                assert set(statuses) == {"up_to_date"}, (kind, statuses)
                results[kind] = (first, second, json.loads(json.dumps(rx.all_records(), default=str)))
            finally:
                if kind.startswith(("postgres", "redshift")):
                    with engine.begin() as c:
                        for schema in (f"src_{tag2}", f"act_{tag2}", f"state_{tag2}"):
                            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                engine.dispose()
    return results


def test_duckdb_and_postgres_plan_and_deliver_the_same(tmp_path: Path, pg: tuple[sa.Engine, str]) -> None:
    _, tag = pg
    results = plan_and_deliver(tmp_path, tag, ("duckdb", "duckdb+sqlite", "postgres", "postgres+sqlite"))
    reference = results["duckdb"]
    assert reference[1][0]["counts"]["changed"] == 4  # 3 users changed plan, u002 gained an order (ltv)
    for kind, got in results.items():
        assert got == reference, f"{kind} differs from duckdb"


@pytest.fixture
def bigquery() -> Iterator[BigQueryEmulator]:
    with BigQueryEmulator(project="test-project") as emu:
        _BIGQUERY.append(emu.url)
        yield emu
        _BIGQUERY.remove(emu.url)


@pytest.mark.slow
def test_every_warehouse_plans_and_delivers_the_same(
    tmp_path: Path, pg: tuple[sa.Engine, str], fakesnow_patched: None, bigquery: BigQueryEmulator
) -> None:
    """The example project on DuckDB, Postgres, Redshift, Snowflake and BigQuery, each with
    its state in the warehouse (the SQL diff and the bulk state writes in its dialect) and in
    SQLite (the merge diff over the engine's key order): the same plans, the same deliveries.

    Redshift runs through Postgres with every statement checked for what Redshift does not
    have (activation_emulators.redshift); Snowflake through fakesnow; BigQuery through Google's
    client and dialect over HTTP to its emulator (sessions, transactions)."""
    engine, tag = pg
    prepare(engine)
    kinds = ("duckdb", "duckdb+sqlite", "postgres", "postgres+sqlite", "redshift", "redshift+sqlite")
    kinds += ("snowflake", "snowflake+sqlite", "bigquery", "bigquery+sqlite")
    with RedshiftGuard() as guard:
        results = plan_and_deliver(tmp_path, tag, kinds)
    reference = results["duckdb"]
    assert reference[1][0]["counts"] == {
        "model_rows": 149,
        "delivered": 150,
        "added": 1,
        "changed": 4,  # 3 users changed plan, u002 gained an order (ltv)
        "removed": 2,
        "unchanged": 144,
        "rejected": 0,
        "released": 2,
    }
    for kind, got in results.items():
        assert got == reference, f"{kind} differs from duckdb"
    assert any("JSON_SERIALIZE(OBJECT(" in s for s in guard.statements)  # the guard saw Redshift's diff
    assert any(s.startswith("INSERT INTO state_") for s in guard.statements)  # … and its state writes
    jobs = [r for r in bigquery.request_log if r.method == "POST" and r.path.endswith(("/jobs", "/queries"))]
    assert len(jobs) > 100 and all(r.status == 200 for r in jobs)


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_a_dry_run_leaves_the_warehouse_as_it_was(tmp_path: Path, pg: tuple[sa.Engine, str], kind: str) -> None:
    """validate and plan, before any run and after one: the schemas and relations of the
    project (listed from the catalog) are the same before and after, and so are their rows."""
    engine, tag = pg
    if kind == "redshift":
        prepare(engine)

    def listing() -> list[tuple[str, str, str, int]]:
        with engine.connect() as c:
            rels = c.execute(
                sa.text(
                    "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname LIKE :like ORDER BY 1, 2"
                ),
                {"like": f"%{tag}"},
            ).all()
            return [(s, r, k, c.execute(sa.text(f'SELECT COUNT(*) FROM {s}."{r}"')).scalar_one() if k in "rv" else -1) for s, r, k in rels]

    with RedshiftGuard(), WebhookReceiver() as rx:  # (the guard checks the redshift dialect's statements only)
        root, _, src = project_for(kind, tmp_path / kind, rx.url, tag)
        load(engine, src, dataset())
        for runs in (0, 1):
            before = listing()
            schemas = {s for s, *_ in before}
            assert schemas == ({src} if runs == 0 else {src, f"act_{tag}", f"state_{tag}"}), schemas
            with Session(load_project(root), dry_run=True) as s:
                s.prepare(["users", "whales", "accounts"], every_model=True)  # validate
                prepared = s.prepare(["users", "whales", "accounts"])
                assert all(plan_sync(s, prepared[n]).counts.model_rows for n in prepared)
            assert listing() == before
            if runs == 0:
                with Session(load_project(root), dry_run=False) as s:
                    s.state.migrate()
                    prepared = s.prepare(["users"])
                    assert run_sync(s, prepared["users"]).status == "success"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["duckdb", "snowflake"])
def test_a_dry_run_leaves_duckdb_and_snowflake_as_they_were(tmp_path: Path, fakesnow_patched: None, kind: str) -> None:
    """As above, listed from information_schema: schemas, relations and their rows."""
    tag = uuid.uuid4().hex[:8]
    with WebhookReceiver() as rx:
        root, engine, src = project_for(kind, tmp_path / kind, rx.url, tag)
        load(engine, src, dataset())
        engine.dispose()

        def listing() -> list[tuple[Any, ...]]:
            with engine.connect() as c:
                rels = c.execute(
                    sa.text(
                        "SELECT table_schema, table_name FROM information_schema.tables WHERE lower(table_schema) LIKE :like ORDER BY 1, 2"
                    ),
                    {"like": f"%{tag}"},
                ).all()
                out = [(s_, t, c.execute(sa.text(f"SELECT COUNT(*) FROM {s_}.{t}")).scalar_one()) for s_, t in rels]
            engine.dispose()  # DuckDB: the file is the project's again
            return out

        for runs in (0, 1):
            before = listing()
            assert {s_.lower() for s_, *_ in before} == ({src} if runs == 0 else {src, f"act_{tag}", f"state_{tag}"})
            with Session(load_project(root), dry_run=True) as s:
                s.prepare(["users", "whales", "accounts"], every_model=True)  # validate
                prepared = s.prepare(["users", "whales", "accounts"])
                assert all(plan_sync(s, prepared[n]).counts.model_rows for n in prepared)
            assert listing() == before
            if runs == 0:
                with Session(load_project(root), dry_run=False) as s:
                    s.state.migrate()
                    assert run_sync(s, s.prepare(["users"])["users"]).status == "success"


def test_the_redshift_guard_refuses_what_redshift_does_not_have() -> None:
    assert problems("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING") == ["INSERT … ON CONFLICT (Redshift has no upsert clause)"]
    assert problems("DELETE FROM t WHERE k = ANY(CAST(:keys AS TEXT[]))")
    assert problems("SELECT md5('s' || json_build_array(a)::text)")
    assert problems("SELECT CAST(a AS VARCHAR) FROM t")
    assert problems("CREATE TEMP VIEW v AS SELECT 1")
    # literals are not SQL: a value may say anything
    assert problems("SELECT 'ON CONFLICT, ANY(x), json_build_array(' AS s") == []
    assert problems("SELECT CAST(a AS VARCHAR(65535)), CAST(NULL AS VARCHAR), md5(JSON_SERIALIZE(OBJECT('a', a))) FROM t") == []


def test_duckdb_memory_limit_caps_duckdb_in_the_process(tmp_path: Path) -> None:
    from activation.warehouse.registry import open_warehouse
    from activation.warehouse.spec import DuckDBWarehouseSpec as WarehouseSpec

    wh = open_warehouse(WarehouseSpec(path="wh.duckdb", memory_limit="200MB"), tmp_path)
    try:
        with wh.session() as c:
            limit = c.execute(sa.text("SELECT current_setting('memory_limit')")).scalar()
    finally:
        wh.dispose()
    assert limit in ("190.7 MiB", "200.0 MB"), limit  # DuckDB reports 200 MB in MiB


def test_init_for_redshift_validates_plans_and_runs_on_it(
    tmp_path: Path, pg: tuple[sa.Engine, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`init --warehouse redshift`: its trait SQL and score run as Redshift SQL (checked); every command."""
    from typer.testing import CliRunner

    from activation.cli import app

    engine, tag = pg
    prepare(engine)
    src = f"src_{tag}"
    with engine.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {src}"))
        c.execute(
            sa.text(
                f"CREATE TABLE {src}.users AS SELECT 'u' || i AS user_id, 'user' || i || '@example.com' AS email, 'User ' || i AS name FROM generate_series(1, 50) AS t(i)"
            )
        )
        c.execute(
            sa.text(
                f"CREATE TABLE {src}.orders AS SELECT 'u' || (1 + i % 50) AS user_id, DATE '2026-01-01' - (i % 120) AS ordered_at FROM generate_series(0, 399) AS t(i)"
            )
        )
    runner = CliRunner()
    root = tmp_path / "new"
    assert runner.invoke(app, ["init", str(root), "--warehouse", "redshift"]).exit_code == 0
    for path in (root / "syncs.yaml", root / "syncs" / "traits" / "orders_90d.sql"):  # this test's schemas on the shared server
        text = (
            path.read_text()
            .replace("sample.", f"{src}.")
            .replace("schema: activation}", f"schema: act_{tag}, sslmode: disable}}\nstate: {{schema: state_{tag}}}")
        )
        path.write_text(text)
    monkeypatch.setenv("REDSHIFT_URL", rs_url())
    with RedshiftGuard() as guard:
        for command in ("validate", "lint", "compile", "plan", "run", "status"):
            r = runner.invoke(app, [command, "--project", str(root)])
            assert r.exit_code == 0, r.output
    assert any("interval '90 days'" in s for s in guard.statements)
    assert len((root / "out" / "users.csv").read_text().splitlines()) == 51
