"""``python -m activation_emulators.klaviyo``."""

from .server import main

raise SystemExit(main())
