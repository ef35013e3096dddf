"""Shared fixtures: a real DuckDB warehouse in a temp project, the CLI, a webhook receiver."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import pytest
from typer.testing import CliRunner

from activation.cli import app
from activation_emulators.webhook import WebhookReceiver

USERS_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.users AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'user' || i || '@example.com' AS email,
       ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
       CAST(i % 7 AS INTEGER) AS seats,
       CAST(i * 10 AS DECIMAL(12, 2)) AS spend
FROM range({n}) t(i);
CREATE OR REPLACE TABLE src.orders AS
SELECT 'u' || lpad(CAST(i % {n} AS VARCHAR), 4, '0') AS user_id, CAST(i % 50 AS INTEGER) AS amount
FROM range({orders}) t(i);
"""

BASE_YAML = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
{state}
entities:
  user: {{table: src.users, key: user_id}}
traits:
  ltv:
    entity: user
    sql: "select user_id, sum(amount) as ltv from src.orders group by 1"
  engagement:
    entity: user
    score:
      ltv: {{weight: 1.0, points: [[0, 1], [100, 3]]}}
      seats: {{weight: 0.5, points: [[3, 2]]}}
audiences:
  whales: {{entity: user, where: "ltv >= 100"}}
destinations:
  hook: {{type: webhook, url: "${{HOOK_URL}}", batch_size: 50, max_retries: 2}}
syncs:
  users_to_hook:
    from: user
    to: hook
    object: contacts
    mode: {mode}
    match: {{email: email}}
    fields: {{plan: plan, ltv: ltv, score: engagement, plan_upper: "{{{{ row.plan | upper }}}}"}}
  whales_to_hook:
    from: whales
    to: hook
    mode: audience
    match: {{email: email}}
"""


@dataclass
class Project:
    root: Path
    rx: WebhookReceiver | None  # None: a project without the webhook destination
    runner: CliRunner = field(default_factory=CliRunner)
    env: dict[str, str] = field(default_factory=dict)  # more environment for the CLI

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.warehouse))
        try:
            result = con.execute(statement)
            return result.fetchall() if result.description else []
        finally:
            con.close()

    def cli(self, *args: str, expect: int | None = 0) -> Any:
        hook = {"HOOK_URL": self.rx.url} if self.rx is not None else {}
        result = self.runner.invoke(app, [*args, "--project", str(self.root)], env={**hook, **self.env})
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}, wanted {expect}:\n{result.output}\n{result.exception!r}"
        return result

    def json(self, *args: str, expect: int | None = 0) -> Any:
        result = self.cli(*args, "--json", expect=expect)
        return json.loads(result.stdout)

    def model_users(self) -> dict[str, dict[str, Any]]:
        """What users_to_hook must deliver, computed independently of activation's code."""
        rows = self.sql("""
            SELECT u.user_id, u.email, u.plan, o.ltv, u.seats FROM src.users u
            LEFT JOIN (SELECT user_id, sum(amount) AS ltv FROM src.orders GROUP BY 1) o USING (user_id)""")
        out = {}
        for user_id, email, plan, ltv, seats in rows:
            score = (3 if ltv is not None and ltv >= 100 else 1 if ltv is not None and ltv >= 0 else 0) * 1.0 + (
                2 if seats >= 3 else 0
            ) * 0.5
            out[user_id] = {
                "email": email,
                "plan": plan,
                "ltv": int(ltv) if ltv is not None else None,
                "score": score,
                "plan_upper": plan.upper(),
            }
        return out

    def model_whales(self) -> dict[str, dict[str, Any]]:
        return {k: {"email": v["email"]} for k, v in self.model_users().items() if v["ltv"] is not None and v["ltv"] >= 100}


def make_project(
    root: Path, rx: WebhookReceiver, *, n: int = 200, orders: int = 700, mode: str = "upsert", state: str = "", extra_yaml: str = ""
) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "syncs.yaml").write_text(textwrap.dedent(BASE_YAML.format(state=state, mode=mode)) + extra_yaml)
    p = Project(root, rx)
    con = duckdb.connect(str(p.warehouse))
    con.execute(USERS_SQL.format(n=n, orders=orders))
    con.close()
    return p


#: A third-party destination in its own package (type: jsonbin), with its emulator in its tests.
PLUGIN_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "destination-plugin"


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin pip-installed into a folder of its own (from a copy: the build writes
    beside its sources); put it on PYTHONPATH to make `type: jsonbin` a destination."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN_EXAMPLE, tmp / "source")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(tmp / "site"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp / "site").glob("activation_jsonbin-*.dist-info/entry_points.txt"))
    return tmp / "site"


def plugin_emulator() -> Any:
    """The example plugin's emulator class (examples/destination-plugin/tests/bin_emulator.py)."""
    spec = importlib.util.spec_from_file_location("bin_emulator", PLUGIN_EXAMPLE / "tests" / "bin_emulator.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BinEmulator


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def project(tmp_path: Path, rx: WebhookReceiver) -> Project:
    return make_project(tmp_path / "proj", rx)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures tests recorded with `record_property("soak", …)` (works under xdist)."""
    for report in terminalreporter.stats.get("passed", []):
        for name, text in getattr(report, "user_properties", []):
            if name == "soak":
                terminalreporter.write_sep("-", "soak figures")
                terminalreporter.write_line(str(text))


# ---------------------------------------------------------------- other warehouses

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_REDSHIFT: list[Any] = []  # this process's Redshift endpoint, started once


def rs_url() -> str:
    """The URL of a Redshift endpoint (sqlalchemy-redshift over redshift_connector) in front
    of the local Postgres server: see activation_emulators.redshift. Connect with TLS off."""
    from activation_emulators.redshift import RedshiftEndpoint

    if not _REDSHIFT:
        _REDSHIFT.append(RedshiftEndpoint())
    return str(_REDSHIFT[0].url())


def redshift_or_skip() -> Any:
    """An engine of Redshift's dialect and driver on the local Postgres server made to stand
    in for one (its functions created), or skip saying why."""
    import sqlalchemy as sa

    from activation_emulators.redshift import prepare

    prepare(postgres_or_skip())
    return sa.create_engine(rs_url(), connect_args={"ssl": False})


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose service or package is missing, saying why; in CI (CI=true), where the
    machine provides them all, fail instead: a green CI must not hide a suite that did not run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: every test must run)", pytrace=False)
    pytest.skip(reason)


def postgres_or_skip() -> Any:
    """An engine on the local Postgres server (database `test`), or skip saying why."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as e:
        engine.dispose()
        unavailable(f"no Postgres at 127.0.0.1:5432 (database test): {e.orig}")
    return engine


def hubspot_documents_or_skip() -> Path:
    """The folder of HubSpot's OpenAPI documents (beside the checkout, or
    $ACTIVATION_HUBSPOT_SPECS), or skip saying why (fail in CI, which has them)."""
    from activation_emulators.hubspot.spec import find_specs_dir

    try:
        return find_specs_dir()
    except FileNotFoundError as e:
        unavailable(f"HubSpot's OpenAPI documents are not on this machine: {e}")


@pytest.fixture
def fakesnow_patched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Snowflake's connector answered by fakesnow for the whole test; $SF_TEST_PASSWORD set."""
    try:
        import fakesnow
    except ImportError:
        unavailable("fakesnow is not installed (pip install -e '.[dev]')")
    monkeypatch.setenv("SF_TEST_PASSWORD", "not-a-real-password")
    with fakesnow.patch():
        yield
