"""``python -m activation_emulators.webhook``."""

from .receiver import main

raise SystemExit(main())
