"""``python -m activation_emulators.hubspot``."""

from .cli import main

raise SystemExit(main())
