"""A local Meta Marketing API (Graph API) emulator for Custom Audiences (the full docs: `.emulator`)."""

from .emulator import MetaEmulator

__all__ = ["MetaEmulator"]
