"""``python -m activation_emulators.meta``."""

from .emulator import main

raise SystemExit(main())
