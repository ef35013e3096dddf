"""``python -m activation_emulators.google_ads``."""

from .emulator import main

raise SystemExit(main())
