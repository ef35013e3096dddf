"""Mailchimp throughput at the destination level, through the official SDK over real HTTP to
the emulator in its own process: batch subscribe (500 members per call, the default path)
beside one PUT per member (status_if_new pending/transactional), best of N, interleaved.

    flock /tmp/activation-bench.lock python bench/mailchimp_sync.py [--rows 20000] [--put-rows 2000] [--repeat 3]

The SDK opens a new connection for every request (it calls `requests.post` without a
session), so per-member paths pay a TCP handshake per member; `concurrency` hides part of it.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

from activation.destinations.base import RowOp, SyncTarget
from activation.destinations.mailchimp.destination import MailchimpDestination
from activation.destinations.mailchimp.spec import MailchimpDestinationSpec

KEY = "bench0123456789abcdef0123456789ab-us1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(url: str, list_id: str, rows: int, status: str, concurrency: int, tag: str) -> float:
    spec = MailchimpDestinationSpec(
        type="mailchimp", api_key=KEY, base_url=url, list_id=list_id, status_if_new=status, concurrency=concurrency
    )  # type: ignore[arg-type]
    dest = MailchimpDestination("mc", spec, ".")
    target = SyncTarget(sync="bench", mode="upsert", match_fields=["email_address"], fields=["FNAME", "LNAME"])
    ops = [
        RowOp("upsert", f"{tag}{i}", {"email_address": f"{tag}{i}@bench.example.org", "FNAME": f"F{i}", "LNAME": f"L{i}"})
        for i in range(rows)
    ]
    started = time.perf_counter()
    for i in range(0, rows, 500):
        results = dest.push(target, ops[i : i + 500])
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return rows / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--put-rows", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "activation_emulators.mailchimp", "--port", str(port), "--list", "Bench", "--api-key", KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        list_id = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        proc.stdout.readline()  # the serving banner
        url = f"http://127.0.0.1:{port}/3.0"
        batch: list[float] = []
        put: dict[int, list[float]] = {1: [], 4: [], 10: []}
        for r in range(args.repeat):  # interleaved: the machine's load hits both sides alike
            batch.append(run(url, list_id, args.rows, "subscribed", 4, f"b{r}x"))
            for c in put:
                put[c].append(run(url, list_id, args.put_rows, "transactional", c, f"p{r}c{c}x"))
        print(f"batch subscribe, {args.rows:,} members: {max(batch):,.0f} members/s (best of {args.repeat})")
        for c, rates in put.items():
            print(
                f"PUT per member, concurrency {c:>2}, {args.put_rows:,} members: {max(rates):,.0f} members/s "
                f"(batch is {max(batch) / max(rates):.1f}x)"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
