"""A local HubSpot CRM v3 emulator (the full docs: `activation_emulators.hubspot.cli`)."""

from .server import HubSpotEmulator, InvalidMessage, LoggedRequest

__all__ = ["HubSpotEmulator", "InvalidMessage", "LoggedRequest"]
