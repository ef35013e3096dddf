"""BigQuery as the warehouse, through Google's client and SQLAlchemy dialect over HTTP to the
local emulator (activation_emulators.bigquery: GoogleSQL translated to DuckDB): dry runs
change nothing, the cost guard and the bytes report, and a SIGKILL mid-run loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activation_emulators.bigquery import BigQueryEmulator
from activation_emulators.webhook import WebhookReceiver

PROJECT = """\
version: 1
warehouse: {{type: bigquery, project: test-project, api_endpoint: "{url}", anonymous: true{extra}}}
entities:
  user: {{table: src.users, key: user_id}}
traits:
  ltv:
    entity: user
    sql: "select user_id, sum(amount) as ltv from src.orders group by user_id"
destinations:
  hook: {{type: webhook, url: "${{HOOK_URL}}", batch_size: 50}}
syncs:
  users:
    from: user
    to: hook
    mode: mirror
    match: {{email: email}}
    fields: {{plan: plan, ltv: ltv}}
"""


@pytest.fixture
def bq() -> Iterator[BigQueryEmulator]:
    with BigQueryEmulator(project="test-project") as emu:
        yield emu


def seed(emu: BigQueryEmulator, n: int) -> None:
    emu.execute("CREATE SCHEMA src")
    emu.execute(
        f"CREATE TABLE src.users AS SELECT 'u' || lpad(i::VARCHAR, 5, '0') AS user_id, 'user' || i || '@example.com' AS email, "
        f"['free', 'pro', 'team'][1 + i % 3] AS plan FROM range({n}) t(i)"
    )
    emu.execute(
        f"CREATE TABLE src.orders AS SELECT 'u' || lpad((i % {n})::VARCHAR, 5, '0') AS user_id, i % 50 AS amount FROM range({2 * n}) t(i)"
    )


def model(emu: BigQueryEmulator) -> dict[str, dict[str, Any]]:
    """What the receiver must hold, computed by DuckDB, not by activation."""
    rows = emu.execute(
        "SELECT u.user_id, u.email, u.plan, o.ltv FROM src.users u "
        "LEFT JOIN (SELECT user_id, sum(amount) AS ltv FROM src.orders GROUP BY 1) o USING (user_id)"
    )
    return {k: {"email": e, "plan": p, "ltv": int(ltv) if ltv is not None else None} for k, e, p, ltv in rows}


def received(rx: WebhookReceiver) -> dict[str, dict[str, Any]]:
    return {k: {f: (int(v) if f == "ltv" and v is not None else v) for f, v in r.items()} for k, r in rx.records("users").items()}


def listing(emu: BigQueryEmulator) -> list[tuple[Any, ...]]:
    """Every schema, relation and row count of the emulator's database (sessions' temporary
    tables excepted: they live on the session's own connection and go with it)."""
    rels = emu.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_catalog = current_database() ORDER BY 1, 2"
    )
    counted = [(s, t, k, emu.execute(f'SELECT COUNT(*) FROM "{s}"."{t}"')[0][0]) for s, t, k in rels]
    schemas = emu.execute("SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database() ORDER BY 1")
    return [*schemas, *counted]


def cli(root: Path, rx: WebhookReceiver, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOOK_URL": rx.url}
    return subprocess.run([sys.executable, "-m", "activation.cli", *args, "--project", str(root)], env=env, capture_output=True, text=True)


def project(tmp_path: Path, emu: BigQueryEmulator, extra: str = "") -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "syncs.yaml").write_text(PROJECT.format(url=emu.url, extra=extra))
    return root


def test_a_dry_run_leaves_bigquery_as_it_was_and_says_what_it_processed(tmp_path: Path, bq: BigQueryEmulator, rx: WebhookReceiver) -> None:
    seed(bq, 200)
    root = project(tmp_path, bq)
    for first in (True, False):
        before, sent = listing(bq), rx.request_count
        assert cli(root, rx, "validate").returncode == 0
        plan = cli(root, rx, "plan", "--json")
        assert plan.returncode == 0, plan.stderr
        out = json.loads(plan.stdout)
        [p] = out["plans"]
        assert p["counts"]["added"] == (200 if first else 0)
        cost = out["warehouse_cost"]
        assert cost["jobs"] > 0 and cost["bytes_processed"] > 0
        assert listing(bq) == before, "a dry run changed the warehouse"
        assert rx.request_count == sent
        if first:
            run = cli(root, rx, "run")
            assert run.returncode == 0, run.stderr
            assert "warehouse: " in run.stderr and "jobs processed" in run.stderr
            assert received(rx) == model(bq)
            assert {s for s, *_ in listing(bq) if isinstance(s, str)} >= {"activation", "activation_state"}


def test_maximum_bytes_billed_stops_a_plan_before_it_runs(tmp_path: Path, bq: BigQueryEmulator, rx: WebhookReceiver) -> None:
    seed(bq, 50)
    root = project(tmp_path, bq, extra=", maximum_bytes_billed: 1000")
    plan = cli(root, rx, "plan")
    assert plan.returncode != 0
    text = plan.stdout + plan.stderr
    assert "bytes billed" in text.lower() and "10485760" in text, text  # BigQuery's words: the limit and what is needed
    assert "Traceback" not in text
    assert rx.request_count == 0


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [2, 7])
def test_sigkill_mid_run_on_bigquery_loses_nothing(tmp_path: Path, bq: BigQueryEmulator, rx: WebhookReceiver, kill_after: int) -> None:
    seed(bq, 600)
    root = project(tmp_path, bq)
    assert cli(root, rx, "run").returncode == 0
    assert received(rx) == model(bq)
    bq.execute("UPDATE src.users SET plan = plan || '_v2'")
    bq.execute("DELETE FROM src.users WHERE user_id < 'u00040'")
    rx.delay(0.05)  # slow the receiver so the kill lands mid-run
    before = rx.request_count
    child = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "--project", str(root)],
        env={**os.environ, "HOOK_URL": rx.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert rx.wait_handled(before + kill_after, timeout=120), "the run sent too little"
    assert child.poll() is None, "the run ended before it could be killed; slow the receiver more"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert received(rx) != model(bq), "the kill must land before the run finished"

    rx.delay(0)
    again = cli(root, rx, "run", "--json")
    assert again.returncode == 0, again.stderr
    assert received(rx) == model(bq)
    after = json.loads(cli(root, rx, "run", "--json").stdout)
    assert [s["status"] for s in after["syncs"]] == ["up_to_date"]


def test_init_for_bigquery_validates_plans_and_runs_on_it(tmp_path: Path, bq: BigQueryEmulator, rx: WebhookReceiver) -> None:
    """`init --warehouse bigquery`: its trait SQL and score run as GoogleSQL; every command."""
    bq.execute("CREATE SCHEMA sample")
    bq.execute(
        "CREATE TABLE sample.users AS SELECT 'u' || i AS user_id, 'user' || i || '@example.com' AS email, 'User ' || i AS name FROM range(1, 51) t(i)"
    )
    bq.execute(
        "CREATE TABLE sample.orders AS SELECT 'u' || (1 + i % 50) AS user_id, DATE '2026-01-01' - CAST(i % 120 AS INTEGER) AS ordered_at FROM range(400) t(i)"
    )
    root = tmp_path / "new"
    subprocess.run([sys.executable, "-m", "activation.cli", "init", str(root), "--warehouse", "bigquery"], check=True, capture_output=True)
    yaml = root / "syncs.yaml"
    yaml.write_text(yaml.read_text().replace("schema: activation}", f'schema: activation, api_endpoint: "{bq.url}", anonymous: true}}'))
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": "test-project"}
    for command in ("validate", "lint", "compile", "plan", "run", "status"):
        done = subprocess.run(
            [sys.executable, "-m", "activation.cli", command, "--project", str(root)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    lines = (root / "out" / "users.csv").read_text().splitlines()
    assert len(lines) == 51 and "orders_90d" in lines[0] and "loyalty" in lines[0]
