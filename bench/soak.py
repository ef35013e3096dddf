"""The soak, long form: 100k model rows, ~50 SIGKILLs, random faults at every vendor.

    python bench/soak.py [--users 80000] [--accounts 20000] [--rounds 70] [--kill-rate 0.75] ...

Prints runs, rows, faults injected, kills, and per sync the rows lost, stale, orphaned and
duplicated after one clean run (all must be 0). Every option of SoakConfig is a flag.
"""

from __future__ import annotations

import sys

from activation_emulators.soak import main

LONG_FORM = [
    "--users",
    "80000",
    "--accounts",
    "20000",
    "--rounds",
    "70",
    "--kill-rate",
    "0.75",
    "--fault-rate",
    "0.05",
    "--change-rate",
    "0.02",
    "--churn-rate",
    "0.005",
]

if __name__ == "__main__":
    raise SystemExit(main(LONG_FORM + sys.argv[1:]))
