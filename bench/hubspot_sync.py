"""HubSpot throughput: a first full sync through the official SDK beside a raw-HTTP floor,
and a sync under a request quota.

    flock /tmp/activation-bench.lock python bench/hubspot_sync.py [--rows 100000] [--rounds 5]
        [--quota-rows 20000] [--quota 10]
    (BENCH_CONCURRENCY=N sets the destination's concurrency; default 4)

The emulator runs in its own process (as HubSpot would be elsewhere), validating every
request against HubSpot's OpenAPI documents (compiled validators); each measurement gets a
fresh emulator. The floor and our sync alternate, `--rounds` times, so both see the same
machine load; best-of and the spread are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

TOKEN = "pat-na1-bench"
PROJECT = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  hs: {{type: hubspot, token: "{token}", base_url: "{url}", requests_per_second: {rps}, concurrency: {concurrency}}}
syncs:
  contacts:
    from: user
    to: hs
    object: contacts
    mode: upsert
    match: {{email: email}}
    fields: {{firstname: first_name, lastname: last_name, jobtitle: title}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator(extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "activation_emulators.hubspot", "--port", str(port), "--token", TOKEN, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/crm/v3/properties/contacts", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the emulator did not start")


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    try:  # an emulator holding a million members takes a while to go on a loaded machine
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode().strip().splitlines()[-1] if err else ""


def floor(url: str, rows: int) -> float:
    """A plain loop POSTing the same batches of 100 upserts on one keep-alive connection."""
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}) as client:
        t = time.perf_counter()
        for start in range(0, rows, 100):
            inputs = [
                {
                    "id": f"user{i}@example.com",
                    "idProperty": "email",
                    "properties": {"firstname": f"First{i % 997}", "lastname": f"Last{i % 991}", "jobtitle": "Engineer"},
                }
                for i in range(start, min(start + 100, rows))
            ]
            r = client.post(url + "/crm/v3/objects/contacts/batch/upsert", content=json.dumps({"inputs": inputs}))
            r.raise_for_status()
        return rows / (time.perf_counter() - t)


def project(rows: int, url: str, rps: float) -> Path:
    root = Path(tempfile.mkdtemp(prefix="activation-hubspot-bench-"))
    (root / "syncs.yaml").write_text(PROJECT.format(token=TOKEN, url=url, rps=rps, concurrency=os.environ.get("BENCH_CONCURRENCY", "4")))
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA src")
    con.execute(f"""CREATE TABLE src.users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email,
        'First' || (i % 997) AS first_name, 'Last' || (i % 991) AS last_name, 'Engineer' AS title FROM range({rows}) t(i)""")
    con.close()
    return root


def sync(root: Path) -> tuple[float, object]:
    from activation.project.loader import load_project
    from activation.runner import run_sync
    from activation.session import Session

    with Session(load_project(root), dry_run=False) as s:
        prepared = s.prepare(["contacts"])
        s.state.migrate()
        t = time.perf_counter()
        result = run_sync(s, prepared["contacts"])
        return time.perf_counter() - t, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5, help="floor and sync measured alternately this many times")
    ap.add_argument("--quota-rows", type=int, default=20_000)
    ap.add_argument("--quota", type=int, default=10, help="requests per second the emulator allows")
    args = ap.parse_args()

    floors: list[float] = []
    ours: list[float] = []
    for n in range(args.rounds):
        proc, url = start_emulator(["--validation", "compiled"])
        floors.append(floor(url, args.rows))
        stop(proc)
        proc, url = start_emulator(["--validation", "compiled"])
        seconds, result = sync(project(args.rows, url, rps=10_000))
        log = stop(proc)
        assert result.acknowledged == args.rows, result  # type: ignore[attr-defined]
        ours.append(args.rows / seconds)
        print(
            f"round {n + 1}: raw-HTTP floor {floors[-1]:,.0f} rows/s; activation (SDK) {ours[-1]:,.0f} rows/s "
            f"({ours[-1] / floors[-1]:.2f}x); emulator: {log}",
            flush=True,
        )
    ratios = sorted(o / f for o, f in zip(ours, floors, strict=False))
    print(
        f"first sync of {args.rows:,} contacts, best of {args.rounds}: activation (SDK) {max(ours):,.0f} rows/s "
        f"(spread {min(ours):,.0f}-{max(ours):,.0f}); raw-HTTP floor {max(floors):,.0f} rows/s "
        f"(spread {min(floors):,.0f}-{max(floors):,.0f}); ratio of bests {max(ours) / max(floors):.2f}x, "
        f"per-round ratios {ratios[0]:.2f}-{ratios[-1]:.2f} (median {ratios[len(ratios) // 2]:.2f})"
    )

    proc, url = start_emulator(["--validation", "compiled", "--rate-limit", f"{args.quota}/1"])
    seconds, result = sync(project(args.quota_rows, url, rps=args.quota * 0.95))
    log = stop(proc)
    calls = -(-args.quota_rows // 100) + 1  # the batch upserts and one read of the property definitions
    print(
        f"under a quota of {args.quota} requests/s: {args.quota_rows:,} rows in {seconds:.1f}s, "
        f"{calls / seconds:.2f} requests/s = {calls / seconds / args.quota:.2f} of the quota; emulator: {log}"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
