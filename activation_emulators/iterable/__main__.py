"""``python -m activation_emulators.iterable``."""

from .server import main

raise SystemExit(main())
