"""A local HubSpot CRM v3 emulator (see `activation.testing.hubspot_emulator`)."""

from .server import HubSpotEmulator, InvalidMessage, LoggedRequest

__all__ = ["HubSpotEmulator", "InvalidMessage", "LoggedRequest"]
