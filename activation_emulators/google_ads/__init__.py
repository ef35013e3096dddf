"""A local Google Ads API emulator for Customer Match user lists (the full docs: `.emulator`)."""

from .emulator import GoogleAdsEmulator, identifier_pair

__all__ = ["GoogleAdsEmulator", "identifier_pair"]
