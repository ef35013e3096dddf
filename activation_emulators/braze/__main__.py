"""``python -m activation_emulators.braze``: a local Braze REST API until Ctrl-C."""

from __future__ import annotations

import argparse

from activation_emulators.braze.server import BrazeEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_emulators.braze", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--api-key", action="append", help="a REST API key to accept (repeatable; default braze-emulator-key)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    emu = BrazeEmulator(args.host, args.port, api_keys=set(args.api_key) if args.api_key else None, verbose=args.verbose)
    emu.serve_until_signal(f"Braze emulator at {{url}} (rest_endpoint), API key {emu.api_key}; Ctrl-C stops it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
