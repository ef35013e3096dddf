"""``python -m activation_emulators.customerio``."""

from .server import main

raise SystemExit(main())
