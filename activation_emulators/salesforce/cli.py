"""Command line: ``python -m activation_emulators.salesforce --port 8443``."""

from __future__ import annotations

import argparse
import sys

from .emulator import DEFAULT_INSTANCE, DEFAULT_TOKEN, SalesforceEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation_emulators.salesforce",
        description="Local Salesforce REST/Bulk 2.0 emulator. Reach it from simple-salesforce "
        "with activation_emulators.salesforce.emulator_session(URL).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--instance", default=DEFAULT_INSTANCE)
    parser.add_argument("--token", action="append", help="a valid session token (repeatable)")
    parser.add_argument("--user", action="append", metavar="USER:PASSWORD[:TOKEN]")
    parser.add_argument("--api-limit", type=int, default=15000)
    parser.add_argument("--bulk-delay", type=float, default=1.0, help="seconds jobs stay InProgress")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    emu = SalesforceEmulator(
        args.host,
        args.port,
        instance=args.instance,
        tokens=args.token or (DEFAULT_TOKEN,),
        api_limit=args.api_limit,
        keep_requests=False,
        verbose=args.verbose,
    )
    for spec in args.user or ():
        user, _, rest = spec.partition(":")
        password, _, sec = rest.partition(":")
        emu.add_user(user, password, sec)
    emu.bulk_processing_delay = args.bulk_delay
    emu.serve_until_signal(f"{{url}} instance={emu.instance} token={emu.token}")
    print(f"received {emu.request_count} request(s)", file=sys.stderr)
    return 0
