"""BigQuery emulator — see `activation_emulators.bigquery` for the full docs.

python -m activation_emulators.bigquery --port 9050 --project demo [--path warehouse.duckdb] [--dataset analytics]
"""

from __future__ import annotations

import argparse
import sys

from activation_emulators.bigquery.server import BigQueryEmulator

__all__ = ["BigQueryEmulator", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation_emulators.bigquery", description="Serve a local BigQuery REST API v2 that runs on DuckDB."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9050)
    parser.add_argument("--project", default="demo", help="the one project served (default demo)")
    parser.add_argument("--path", help="a DuckDB database file to keep the data in (default: in memory)")
    parser.add_argument("--dataset", action="append", default=[], help="create this dataset if missing (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    emu = BigQueryEmulator(args.host, args.port, project=args.project, path=args.path, verbose=args.verbose)
    for dataset in args.dataset:
        if not emu.db.has_dataset(dataset):
            emu.db.create_dataset(dataset)
    emu.serve_until_signal(f"BigQuery emulator for project {args.project} on {{url}} (Ctrl-C to stop)")
    print(f"{emu.request_count} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
