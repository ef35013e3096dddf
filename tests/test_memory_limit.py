"""A run whose DuckDB runs out of memory under `warehouse.memory_limit` (40 MB cannot hold
the diff of 300,000 rows): a real process, a clear error naming the setting and
no second traceback; nothing is lost, and a run with more memory finishes the sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from activation.destinations.file.destination import read_file_records

PROJECT = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb, memory_limit: {limit}}}
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  export: {{type: file, path: out/users.csv}}
syncs:
  users:
    from: user
    to: export
    match: {{email: email}}
    fields: {{plan: plan}}
"""
ROWS = 300_000


def run(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATION_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "activation.cli", "run", "-p", str(root)], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_out_of_memory_names_the_setting_and_the_next_run_with_room_finishes(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA src")
    con.execute(
        f"CREATE TABLE src.users AS SELECT 'user-' || i AS user_id, 'u' || i || '@example.com' AS email, "
        f"'pro' AS plan FROM range({ROWS}) t(i)"
    )
    con.close()
    (tmp_path / "syncs.yaml").write_text(PROJECT.format(limit="40MB"))
    starved = run(tmp_path)
    assert starved.returncode == 1, starved.stdout + starved.stderr
    assert "DuckDB ran out of memory under warehouse.memory_limit" in starved.stderr
    assert "Traceback" not in starved.stderr

    (tmp_path / "syncs.yaml").write_text(PROJECT.format(limit="400MB"))
    roomy = run(tmp_path)
    assert roomy.returncode == 0, roomy.stdout + roomy.stderr
    records = read_file_records(tmp_path / "out" / "users.csv", "csv", ["email"])
    assert len(records) == ROWS
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM activation_state.delivered").fetchone() == (ROWS,)
