"""``python -m activation.testing.salesforce`` (same as ``...salesforce_emulator``)."""

from .cli import main

raise SystemExit(main())
