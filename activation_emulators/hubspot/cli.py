"""A faithful local HubSpot CRM v3 emulator over real HTTP, for tests, the demo and benchmarks.

The official SDK reaches it with ``HubSpot(access_token=token, host=emu.url)``::

    with HubSpotEmulator(tokens={"pat-na1-test"}) as emu:
        client = HubSpot(access_token="pat-na1-test", host=emu.url)
        client.crm.contacts.batch_api.upsert(...)
        assert emu.invalid_requests == []

Every request is checked against HubSpot's published OpenAPI documents (contacts, companies,
lists, properties; found in shared/vendor-specs/hubspot beside the repo, or
$ACTIVATION_HUBSPOT_SPECS) and refused with HubSpot's 400 error shape when it does not conform;
the emulator's own answers are checked too (``validate_responses``). ``validation`` is
"compiled" (fast; openapi-core words any rejection), "openapi-core", "both" (and record
disagreements) or "off".

Served: objects (contacts, companies, custom types) batch create/update/upsert/read/archive,
single get/list/create/update/archive and search; properties list/get/create; lists create, get
(by id, by name, several), delete, search, memberships add/remove/add-and-remove/page.

Options: ``tokens``, ``rate_limit=(n, seconds)``, ``daily_limit``, ``retry_after``,
``batch_errors="hubspot"|"multi-status"``, ``shuffle_results``, ``log_bodies``, ``portal_id``; the attribute
``echo_id_property`` (False: upsert/update results leave out the idProperty's value, which HubSpot does
not promise to echo). A batch read without ``propertiesWithHistory`` is refused, as the documents require.
Setup: ``add_object_type``, ``add_property``, ``create``; ``property_definitions``. Faults: ``fail_next``,
``throttle_next``, ``drop_next``, ``delay``. Inspection: ``records``, ``find``, ``lists``,
``list_members``, ``request_log``, ``request_count``, ``throttled``, ``invalid_requests``,
``invalid_responses``, ``validator_disagreements``, ``server_errors``, ``wait_idle``, ``reset``.

    python -m activation_emulators.hubspot --port 8080 --token pat-na1-demo
"""

from __future__ import annotations

import argparse
import sys

from .server import HubSpotEmulator, InvalidMessage, LoggedRequest

__all__ = ["HubSpotEmulator", "InvalidMessage", "LoggedRequest", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_emulators.hubspot", description="Serve a local HubSpot CRM v3 emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", action="append", help="accepted bearer token (repeatable; default: any)")
    parser.add_argument("--rate-limit", metavar="N/SECONDS", help="e.g. 100/10: at most 100 requests per rolling 10 s")
    parser.add_argument("--daily-limit", type=int)
    parser.add_argument("--validation", choices=["compiled", "openapi-core", "both", "off"], default="compiled")
    parser.add_argument("--batch-errors", choices=["hubspot", "multi-status"], default="hubspot")
    parser.add_argument("--retry-after", action="store_true", help="send Retry-After with 429s")
    parser.add_argument("--no-echo", action="store_true", help="upsert/update results do not echo the idProperty's value")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    rate_limit = None
    if args.rate_limit:
        count, _, seconds = args.rate_limit.partition("/")
        rate_limit = (int(count), float(seconds or 10))
    emu = HubSpotEmulator(
        args.host,
        args.port,
        tokens=set(args.token) if args.token else None,
        rate_limit=rate_limit,
        daily_limit=args.daily_limit,
        validation=args.validation,
        batch_errors=args.batch_errors,
        retry_after=args.retry_after,
        verbose=args.verbose,
    )
    emu.echo_id_property = not args.no_echo
    emu.serve_until_signal("HubSpot emulator on {url} (Ctrl-C to stop)")
    invalid = len(emu.invalid_requests)
    print(f"{emu.request_count} requests, {invalid} invalid, {emu.throttled} throttled", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
