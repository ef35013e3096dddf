"""``python -m activation_emulators.zendesk``: serve a local Zendesk Support API until Ctrl-C."""

from __future__ import annotations

import argparse

from activation_emulators.zendesk import ZendeskEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_emulators.zendesk", description="Serve a local Zendesk Support API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--token", action="append", help="accepted API token (repeatable; default: zendesk-token)")
    parser.add_argument("--oauth-token", action="append", default=[], help="accepted OAuth token (repeatable)")
    parser.add_argument(
        "--user-field", action="append", default=[], metavar="KEY[:TYPE]", help="a custom user field (e.g. plan, ltv:decimal)"
    )
    parser.add_argument("--organization-field", action="append", default=[], metavar="KEY[:TYPE]", help="a custom organization field")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    emu = ZendeskEmulator(
        args.host, args.port, tokens=set(args.token or ["zendesk-token"]), oauth_tokens=set(args.oauth_token), verbose=args.verbose
    )
    for spec in args.user_field:
        key, _, type_ = spec.partition(":")
        emu.add_user_field(key, type_ or "text")
    for spec in args.organization_field:
        key, _, type_ = spec.partition(":")
        emu.add_organization_field(key, type_ or "text")
    emu.serve_until_signal("Zendesk emulator on {url} (base_url; Ctrl-C to stop)")
    return 0


raise SystemExit(main())
