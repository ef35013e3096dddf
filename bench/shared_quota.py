"""Two syncs in two processes sharing one HubSpot app's quota through the state store.

    flock /tmp/activation-bench.lock python bench/shared_quota.py [--large 8000] [--small 1000]
        [--quota 100/10] [--state sqlite|postgres]

A large sync starts; once it is well under way a small one starts beside it, in another process,
with the same token (one app, one rolling window). The HubSpot emulator (in this process)
counts every call and each 429. Printed: the calls of each, the 429s, the combined call rate
while both ran and over the whole, as a share of the quota, and how long the small sync's calls
took against its fair share (half the quota) — a large sync must not starve it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

from activation_emulators.hubspot import HubSpotEmulator

TOKEN = "pat-shared-quota"
PROJECT = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
state: {{url: "{state}"{schema}}}
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  hs: {{type: hubspot, token: "{token}", base_url: "{url}", requests_per_second: 50, max_retries: 8}}
syncs:
  {name}: {{from: user, to: hs, object: contacts, mode: upsert, match: {{email: email}}, fields: {{jobtitle: title}}}}
"""


def project(root: Path, name: str, rows: int, url: str, state: str, schema: str) -> Path:
    root.mkdir(parents=True)
    (root / "syncs.yaml").write_text(PROJECT.format(state=state, schema=schema, token=TOKEN, url=url, name=name))
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA src")
    con.execute(
        f"CREATE TABLE src.users AS SELECT i AS user_id, '{name}' || i || '@example.com' AS email, 'Engineer' AS title "
        f"FROM range({rows}) t(i)"
    )
    con.close()
    return root


def run(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "--json", "-p", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def owner(body: object) -> str | None:
    """Which sync a batch upsert came from (the emails carry the sync's name)."""
    if not isinstance(body, dict):
        return None
    for item in body.get("inputs") or []:
        email = str(item.get("id") or (item.get("properties") or {}).get("email") or "")
        for name in ("large", "small"):
            if email.startswith(name):
                return name
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large", type=int, default=8000)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--quota", default="100/10", help="N/SECONDS: the app's rolling window")
    ap.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite")
    args = ap.parse_args()
    count, _, seconds = args.quota.partition("/")
    limit, window = int(count), float(seconds or 10)
    quota = limit / window

    tmp = Path(tempfile.mkdtemp(prefix="activation-shared-quota-"))
    if args.state == "postgres":
        state, schema = "postgresql+psycopg://postgres@127.0.0.1:5432/test", f", schema: quota_{uuid.uuid4().hex[:8]}"
    else:
        state, schema = f"sqlite:///{tmp / 'state.db'}", ""
    with HubSpotEmulator(tokens={TOKEN}, rate_limit=(limit, window), log_bodies=True) as hub:
        large = project(tmp / "large", "large", args.large, hub.url, state, schema)
        small = project(tmp / "small", "small", args.small, hub.url, state, schema)
        first = run(large)
        while sum(owner(r.body) == "large" for r in list(hub.request_log)) < limit // 4:  # well under way
            if first.poll() is not None:
                raise SystemExit("the large sync ended before the small one could start: raise --large")
            time.sleep(0.05)
        second = run(small)
        for p in (first, second):
            out, err = p.communicate(timeout=3600)
            if p.returncode:
                raise SystemExit(f"a run failed:\n{out[-2000:]}\n{err[-2000:]}")
        log = list(hub.request_log)
    if args.state == "postgres":  # the run's own state schema goes
        import sqlalchemy as sa

        with sa.create_engine(state).begin() as c:
            c.execute(sa.text(f"DROP SCHEMA {schema.split(': ')[1]} CASCADE"))

    writes = {n: [r.at for r in log if owner(r.body) == n] for n in ("large", "small")}
    both = (min(writes["small"]), max(writes["small"]))
    during = [r for r in log if both[0] <= r.at <= both[1]]
    whole = (min(r.at for r in log), max(r.at for r in log))
    rate_during = (len(during) - 1) / (both[1] - both[0]) if both[1] > both[0] else float("nan")
    rate_whole = (len(log) - 1) / (whole[1] - whole[0])
    fair = len(writes["small"]) / (quota / 2)  # the small sync's writes at half the quota
    print(
        f"quota {limit} calls per {window:g} s ({quota:g}/s), state {args.state}; large {args.large:,} rows, "
        f"small {args.small:,} rows started once the large one had made {limit // 4} calls"
    )
    print(f"calls: {len(log)} in all ({len(writes['large'])} large and {len(writes['small'])} small batch upserts); 429s: {hub.throttled}")
    print(
        f"combined rate while both ran: {rate_during:.2f}/s = {rate_during / quota:.2f} of the quota; "
        f"over the whole: {rate_whole:.2f}/s = {rate_whole / quota:.2f}"
    )
    print(
        f"the small sync's writes spanned {both[1] - both[0]:.1f} s; at half the quota they would take {fair:.1f} s "
        f"({(both[1] - both[0]) / fair:.2f}x its fair share)"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
