"""Plan a 1M-row model with 1% changed rows; print wall time and peak memory beside a
hand-written DuckDB hash-diff query (FULL OUTER JOIN on the key, comparing row hashes)
on the same tables, in the same run.

    python bench/plan_1m.py [--rows 1000000] [--changed 0.01] [--removed 0.0]

Each measurement runs in a fresh child process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
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
    fields: {first_name: first_name, plan: plan, seats: seats, mrr: mrr, score: score}
"""


def child(mode: str, root: str) -> None:
    """Runs in a fresh process: one measurement, printed as JSON."""
    import duckdb

    from activation.project.loader import load_project
    from activation.runner import plan_sync, run_sync
    from activation.session import Session

    if mode == "first_run":
        t = time.perf_counter()
        with Session(load_project(root), dry_run=False) as s:
            s.state.migrate()
            prepared = s.prepare(["users"])
            r = run_sync(s, prepared["users"])
        out = {"seconds": time.perf_counter() - t, "sent": r.sent}
    elif mode == "plan":
        # Like the floor below, the clock starts on an open connection: connecting is not planning.
        t0 = time.perf_counter()
        with Session(load_project(root), dry_run=True) as s:
            t = time.perf_counter()
            prepared = s.prepare(["users"])
            plan = plan_sync(s, prepared["users"])
            seconds = time.perf_counter() - t
        c = plan.counts
        out = {"seconds": seconds, "open_seconds": t - t0, "added": c.added, "changed": c.changed,
               "removed": c.removed, "unchanged": c.unchanged, "fields": plan.field_changes}
    else:  # the hand-written floor: same tables, one FULL OUTER JOIN comparing the same md5 row hashes
        with Session(load_project(root), dry_run=True) as s:  # only to learn the sync's hash salt
            salt = s.prepare(["users"])["users"].query.salt
        con = duckdb.connect(str(Path(root) / "warehouse.duckdb"), read_only=True)
        t = time.perf_counter()
        n = con.execute(f"""
            SELECT count(*) FROM (
              SELECT CAST(user_id AS VARCHAR) AS k,
                     md5('{salt}' || to_json(struct_pack(email, first_name, mrr, plan, score, seats))::VARCHAR) AS h
              FROM src.users) m
            FULL OUTER JOIN (SELECT row_key, row_hash FROM activation_state.delivered WHERE sync_name = 'users') s
              ON m.k = s.row_key
            WHERE m.h IS DISTINCT FROM s.row_hash""").fetchone()[0]
        out = {"seconds": time.perf_counter() - t, "differing": n}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(mode: str, root: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(root)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--removed", type=float, default=0.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    import duckdb

    root = Path(tempfile.mkdtemp(prefix="activation-bench-"))
    (root / "syncs.yaml").write_text(PROJECT)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA src")
    con.execute(f"""CREATE TABLE src.users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email,
        'name' || (i % 997) AS first_name, ['free','pro','enterprise'][1 + i % 3] AS plan, (i % 50)::INT AS seats,
        (i % 1000)::DECIMAL(12,2) AS mrr, (i % 100) / 10.0 AS score FROM range({args.rows}) t(i)""")
    con.close()
    first = measure("first_run", root)
    print(f"first load: {first['sent']} rows delivered in {first['seconds']:.1f}s "
          f"({first['sent'] / first['seconds']:,.0f} rows/s), peak RSS {first['peak_rss_mb']:.0f} MB")
    changed, removed = int(args.rows * args.changed), int(args.rows * args.removed)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute(f"UPDATE src.users SET plan = plan || '_v2' WHERE user_id % {args.rows // max(changed, 1)} = 0 AND user_id < {changed * (args.rows // max(changed, 1))}")
    if removed:
        con.execute(f"DELETE FROM src.users WHERE user_id % {args.rows // removed} = 1")
    con.close()
    plans = [measure("plan", root) for _ in range(args.repeat)]
    floors = [measure("floor", root) for _ in range(args.repeat)]
    p = min(plans, key=lambda r: r["seconds"])
    f = min(floors, key=lambda r: r["seconds"])
    print(f"model: {args.rows:,} rows; plan found +{p['added']} ~{p['changed']} -{p['removed']} ={p['unchanged']} "
          f"(fields: {p['fields']})")
    print(f"activation plan (materialise + diff + map, best of {args.repeat}): {p['seconds']:.3f}s, peak RSS {p['peak_rss_mb']:.0f} MB"
          f" (+{p['open_seconds']:.3f}s to load the project and connect)")
    print(f"hand-written DuckDB hash-diff query (best of {args.repeat}):       {f['seconds']:.3f}s, peak RSS {f['peak_rss_mb']:.0f} MB "
          f"({f['differing']} differing keys)")
    print(f"ratio plan / floor: {p['seconds'] / f['seconds']:.2f}x")


if __name__ == "__main__":
    main()
