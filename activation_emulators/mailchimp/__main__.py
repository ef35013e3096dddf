"""``python -m activation_emulators.mailchimp``."""

from .cli import main

raise SystemExit(main())
