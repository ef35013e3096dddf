"""``python -m activation_emulators.bigquery``."""

from .cli import main

raise SystemExit(main())
