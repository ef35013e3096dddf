"""``python -m activation_emulators.intercom``: a local Intercom REST API until Ctrl-C."""

from __future__ import annotations

import argparse

from activation_emulators.intercom.server import IntercomEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_emulators.intercom", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8096)
    parser.add_argument("--token", action="append", help="an access token to accept (repeatable; default intercom-emulator-token)")
    parser.add_argument(
        "--attribute", action="append", default=[], help="a custom data attribute: model:name:type (e.g. contact:plan:string)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    emu = IntercomEmulator(args.host, args.port, tokens=set(args.token) if args.token else None, verbose=args.verbose)
    for spec in args.attribute:
        model, name, data_type = (spec.split(":") + ["string"])[:3]
        emu.add_attribute(model, name, data_type)
    emu.serve_until_signal(f"Intercom emulator at {{url}} (base_url), token {emu.token}; Ctrl-C stops it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
