"""Commands not covered elsewhere: init gives a project that validates and runs as created;
compile prints the SQL; reset makes the next run send everything again."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project
from typer.testing import CliRunner

from activation.cli import app
from activation.destinations.file.destination import read_file_records


def test_init_creates_a_project_that_validates_plans_and_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "new"
    result = runner.invoke(app, ["init", str(root)])
    assert result.exit_code == 0, result.output
    assert (root / "syncs.yaml").exists() and (root / ".activation" / "schema.json").exists()
    for args, code in ((["validate"], 0), (["plan"], 0), (["run"], 0)):
        r = runner.invoke(app, [*args, "--project", str(root)])
        assert r.exit_code == code, r.output
    records = read_file_records(root / "out" / "users.csv", "csv", ["email"])
    assert len(records) == 50 and {"name", "orders_90d", "loyalty", "tier"} <= set(next(iter(records.values())))
    again = runner.invoke(app, ["run", "--project", str(root)])
    assert "up to date" in again.output
    # init refuses to overwrite an existing project
    assert "nothing created" in runner.invoke(app, ["init", str(root)]).output


@pytest.mark.parametrize("engine", ["postgres", "redshift", "snowflake", "bigquery"])
def test_init_for_another_warehouse_validates_and_compiles_in_its_sql(tmp_path: Path, engine: str) -> None:
    runner = CliRunner()
    root = tmp_path / engine
    assert runner.invoke(app, ["init", str(root), "--warehouse", engine]).exit_code == 0
    assert not (root / ".activation" / "warehouse.duckdb").exists()  # sample data: DuckDB only
    text = (root / "syncs.yaml").read_text()
    assert f"type: {engine}" in text and "${" in text  # settings from the environment
    r = runner.invoke(app, ["validate", "--offline", "--project", str(root)])
    assert r.exit_code == 0, r.output
    env = {"GOOGLE_CLOUD_PROJECT": "p", "DATABASE_URL": "postgresql://h/d", "REDSHIFT_URL": "redshift://u:p@h:5439/d"}
    env |= {f"SNOWFLAKE_{k}": "x" for k in ("ACCOUNT", "USER", "PASSWORD", "DATABASE", "WAREHOUSE")}
    sql = runner.invoke(app, ["compile", "--project", str(root)], env=env)  # opens no connection
    assert sql.exit_code == 0, sql.output
    if engine == "bigquery":
        assert "`activation`.`trait__loyalty`" in sql.output and "AS FLOAT64" in sql.output and "date_sub(" in sql.output


def test_compile_prints_every_model_in_dependency_order(project: Project) -> None:
    out = project.cli("compile").stdout
    ltv, score, traits, whales = (out.index(s) for s in ('"trait__ltv"', '"trait__engagement"', '"user__traits"', '"audience__whales"'))
    assert ltv < score < traits < whales, "a model is printed after what it reads"
    assert "select user_id, sum(amount) as ltv from src.orders" in out
    assert "-- sync users_to_hook: model (key: user_id)" in out


def test_reset_makes_the_next_run_resend_everything(project: Project) -> None:
    project.cli("run", "users_to_hook")
    assert project.json("plan", "users_to_hook")["plans"][0]["counts"]["added"] == 0
    result = project.cli("reset", "users_to_hook", "--yes")
    assert "forgot 200 delivered, 0 in flight, 0 row errors" in result.stdout
    assert project.json("plan", "users_to_hook")["plans"][0]["counts"]["added"] == 200
    refused = project.runner.invoke(app, ["reset", "users_to_hook", "--project", str(project.root)], input="n\n")
    assert refused.exit_code == 1
    assert project.cli("reset", "nope", "--yes", expect=2)


def test_reset_purges_every_row_level_trace_even_of_a_sync_no_longer_declared(project: Project) -> None:
    project.rx.reject_keys({"u0001": "invalid email user1@example.com"})  # rejected-row records hold PII
    project.cli("run", "users_to_hook", expect=1)
    assert project.json("status", expect=1)["syncs"][0]["rejected_rows"]
    text = (project.root / "syncs.yaml").read_text()
    start = text.index("  users_to_hook:")
    (project.root / "syncs.yaml").write_text(text[:start] + text[text.index("  whales_to_hook:") :])  # the sync is gone
    asked = project.runner.invoke(app, ["reset", "users_to_hook", "--project", str(project.root)], input="y\n")
    assert "Forget 199 delivered rows, 0 in flight, 1 rejected-row records of users_to_hook?" in asked.stdout
    assert "forgot 199 delivered, 0 in flight, 1 row errors." in asked.stdout
    leftovers = project.sql(
        "SELECT count(*) FROM activation_state.row_errors WHERE sync_name = 'users_to_hook' "
        "UNION ALL SELECT count(*) FROM activation_state.delivered WHERE sync_name = 'users_to_hook'"
    )
    assert leftovers == [(0,), (0,)]
    assert project.sql("SELECT count(*) FROM activation_state.runs WHERE sync_name = 'users_to_hook'") == [(1,)]
    assert "1 runs" in project.cli("reset", "users_to_hook", "--history", "--yes").stdout
    assert project.cli("reset", "users_to_hook", "--yes", expect=2)  # nothing left: an unknown sync again


LONG = "lifetime_value_of_every_order_this_user_ever_placed_across_all_of_their_accounts"


def _execute_compiled(project: Project, sql: str) -> int:
    """Run every statement of `compile`'s output on the project's DuckDB warehouse; how many ran."""
    import duckdb

    con = duckdb.connect(str(project.warehouse), read_only=True)
    try:
        statements = con.extract_statements(sql)  # a header line wrapped into code fails here or below
        for statement in statements:
            con.execute(statement).fetchall()
        return len(statements)
    finally:
        con.close()


def test_compile_output_is_valid_sql_whatever_the_terminal_width(project: Project) -> None:
    """Issue 16: header comments wrapped at the console's width and left a table name on a line
    of its own, as code. Executed on DuckDB: piped (rich's 120 columns), and on a 30-column terminal."""
    import os
    import subprocess
    import sys

    text = (project.root / "syncs.yaml").read_text()
    text = text.replace(
        "audiences:\n",
        f'  {LONG}:\n    entity: user\n    sql: "select user_id, sum(amount) as {LONG} from src.orders group by 1"\naudiences:\n',
        1,
    )
    (project.root / "syncs.yaml").write_text(text)
    project.cli("run")  # the models exist in the warehouse: the printed SQL reads them
    piped = project.cli("compile").stdout
    counted = _execute_compiled(project, piped)
    assert any(len(line) > 120 for line in piped.splitlines() if line.startswith("--")), "a header longer than the console"
    env = {**os.environ, "COLUMNS": "30", "TTY_COMPATIBLE": "1", "HOOK_URL": project.rx.url}  # rich: a 30-column terminal
    narrow = subprocess.run(
        [sys.executable, "-m", "activation.cli", "compile", "--project", str(project.root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert _execute_compiled(project, narrow) == counted
    assert f"-- trait {LONG}" in narrow
