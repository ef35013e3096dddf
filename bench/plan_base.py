"""`plan --base` on a large model: a branch changes one mapping (1% of rows change); print
the review's wall time beside a plain `plan` of the same model (a first load: every row
mapped once), both from the CLI in fresh processes, interleaved, best of N.

    python bench/plan_base.py [--rows 200000] [--repeat 3]

The review maps every row twice (base config, then the new one against it) and writes the
base's rows to a throwaway SQLite store, so it costs a few plain plans; figures depend on
the machine (shared, in development).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = """\
version: 1
warehouse: {type: duckdb, path: warehouse.duckdb}
entities:
  user: {table: src.users, key: user_id}
destinations:
  export: {type: file, path: out/users.csv}
syncs:
  users:
    from: user
    to: export
    match: {email: email}
    fields: {plan: plan, seats: seats, mrr: mrr}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "syncs.yaml").write_text(PROJECT)
        (root / ".gitignore").write_text("warehouse.duckdb*\nout/\n")
        con = duckdb.connect(str(root / "warehouse.duckdb"))
        con.execute("CREATE SCHEMA src")
        con.execute(f"""CREATE TABLE src.users AS SELECT 'u' || i AS user_id, 'user' || i || '@example.com' AS email,
            ['free', 'pro', 'team'][1 + i % 3] AS plan, CAST(i % 100 AS INTEGER) AS seats, i * 1.5 AS mrr
            FROM range({args.rows}) t(i)""")
        con.close()
        git = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True)  # noqa: E731
        git("init", "-q", "-b", "main")
        git("config", "user.name", "bench")
        git("config", "user.email", "bench@example.com")
        git("add", ".")
        git("commit", "-q", "-m", "base")
        text = (root / "syncs.yaml").read_text().replace("seats: seats", 'seats: "{{ row.seats + (1 if row.seats == 9 else 0) }}"')
        (root / "syncs.yaml").write_text(text)
        exe = str(Path(sys.executable).parent / "activation")
        commands = {
            "plan --base main": [exe, "plan", "--base", "main", "--json", "-p", str(root)],
            "plan (first load)": [exe, "plan", "--json", "-p", str(root)],
        }
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                t = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
                seconds = time.perf_counter() - t
                assert done.returncode == 0, done.stderr
                best[name] = min(best.get(name, seconds), seconds)
    for name, seconds in best.items():
        print(f"{name:20s} {seconds:6.2f} s  ({args.rows / seconds:,.0f} rows/s)")
    print(f"ratio                {best['plan --base main'] / best['plan (first load)']:.2f}x")


if __name__ == "__main__":
    main()
