"""``python -m activation_emulators.salesforce``."""

from .cli import main

raise SystemExit(main())
