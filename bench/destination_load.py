"""A first load of N users to Braze or Iterable, against the vendor's quota as its emulator
enforces it, then an up-to-date rerun.

    flock /tmp/activation-bench.lock python bench/destination_load.py [--vendor braze|iterable|both] [--rows 100000]

The emulator (in this process) enforces the vendor's documented limits: Braze's /users/track
3,000 requests per 3 s per workspace (429 with X-RateLimit-Reset), 75 users a call; Iterable's
users/bulkUpdate 5 requests per second per project (429), 1,000 users a call. `activation run`
runs as a child process. Printed: the run's time and rows per second, the calls, the call rate
while the load ran as a share of the quota, the 429s, and the rerun's time and calls (0 calls:
nothing changed). Both quotas far exceed what one process sends to Braze; for Iterable the
quota sets the pace.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

PROJECT = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  dest: {destination}
syncs:
  users: {{from: user, to: dest, mode: mirror, match: {match}, fields: {{first_name: first_name, plan: plan}}, max_removal: 100%}}
"""


def vendors() -> dict[str, tuple[Any, str, str, tuple[int, float], str]]:
    """vendor -> (emulator factory, destinations block, match, quota (calls, seconds), write path)."""
    from activation_emulators.braze import BrazeEmulator
    from activation_emulators.iterable import IterableEmulator

    return {
        "braze": (
            lambda: BrazeEmulator(api_keys={"bench-key"}),
            "{{type: braze, api_key: bench-key, rest_endpoint: '{url}', max_retries: 8}}",
            "{external_id: user_id}",
            (3000, 3.0),
            "/users/track",
        ),
        "iterable": (
            lambda: IterableEmulator(api_keys={"bench-key"}),
            "{{type: iterable, api_key: bench-key, base_url: '{url}', max_retries: 8}}",
            "{email: email}",
            (5, 1.0),
            "/api/users/bulkUpdate",
        ),
    }


def calls(emu: Any, path: str) -> int:
    log = emu.request_log
    return sum(1 for r in log if r.path.endswith(path))


def bench(vendor: str, rows: int) -> None:
    start, block, match, (quota_calls, quota_seconds), path = vendors()[vendor]
    with start() as emu, tempfile.TemporaryDirectory(prefix="activation-bench-") as tmp:
        root = Path(tmp)
        (root / "syncs.yaml").write_text(PROJECT.format(destination=block.format(url=emu.url), match=match))
        con = duckdb.connect(str(root / "warehouse.duckdb"))
        con.execute("CREATE SCHEMA src")
        con.execute(
            f"CREATE TABLE src.users AS SELECT 'u' || i AS user_id, 'user' || i || '@example.com' AS email, "
            f"'name' || (i % 997) AS first_name, ['free', 'pro', 'team'][1 + i % 3] AS plan FROM range({rows}) t(i)"
        )
        con.close()
        out = []
        for label in ("first load", "rerun"):
            before, throttled = calls(emu, path), emu.throttled
            t = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "activation.cli", "run", "--json", "-p", str(root)], capture_output=True, text=True, env=os.environ
            )
            seconds = time.perf_counter() - t
            result = json.loads(done.stdout)["syncs"][0] if done.stdout.strip().startswith("{") else {}
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            n = calls(emu, path) - before
            out.append((label, seconds, n, emu.throttled - throttled, result.get("acknowledged", 0)))
        quota_rate = quota_calls / quota_seconds
        print(f"{vendor}, {rows:,} users, quota {quota_calls:,} calls / {quota_seconds:g} s on {path}:")
        for label, seconds, n, throttled, acked in out:
            rate = n / seconds if seconds else 0.0
            print(
                f"  {label:10s} {seconds:7.1f} s  {acked / seconds if seconds else 0:9,.0f} rows/s  {n:6,} calls  "
                f"{rate:7.1f} calls/s = {rate / quota_rate:.2f} of the quota  {throttled} answered 429"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vendor", choices=["braze", "iterable", "both"], default="both")
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    for vendor in ["braze", "iterable"] if args.vendor == "both" else [args.vendor]:
        bench(vendor, args.rows)


if __name__ == "__main__":
    main()
