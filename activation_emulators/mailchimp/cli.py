"""Mailchimp Marketing API 3.0 emulator — see `activation_emulators.mailchimp` for the full docs.

python -m activation_emulators.mailchimp --port 8090 --list Newsletter --api-key KEY-us1
"""

from __future__ import annotations

import argparse
import sys

from activation_emulators.mailchimp import LoggedRequest, MailchimpEmulator, subscriber_hash

__all__ = ["LoggedRequest", "MailchimpEmulator", "main", "subscriber_hash"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation_emulators.mailchimp", description="Serve a local Mailchimp Marketing API 3.0 emulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", action="append", help="accepted API key (repeatable; default: any key ending in -<dc>)")
    parser.add_argument("--dc", default="us1", help="the data center the keys belong to (default us1)")
    parser.add_argument("--list", action="append", default=[], metavar="NAME", help="create an audience (repeatable)")
    parser.add_argument(
        "--merge-field",
        action="append",
        default=[],
        metavar="TAG[:TYPE]",
        help="add a merge field to every audience created with --list (e.g. PLAN, SIGNUP:date)",
    )
    parser.add_argument("--connection-limit", type=int, default=10, help="simultaneous requests on the account before 429")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each request takes")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    emu = MailchimpEmulator(
        args.host,
        args.port,
        api_keys=set(args.api_key) if args.api_key else None,
        dc=args.dc,
        connection_limit=args.connection_limit,
        latency=args.latency,
        verbose=args.verbose,
    )
    for name in args.list:
        list_id = emu.create_list(name)
        for spec in args.merge_field:
            tag, _, type_ = spec.partition(":")
            emu.add_merge_field(list_id, tag, type_ or "text")
        print(f"audience {name!r}: list id {list_id}", flush=True)
    emu.serve_until_signal("Mailchimp emulator on {url} (Ctrl-C to stop)")
    print(f"{emu.request_count} requests, {emu.throttled} throttled", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
