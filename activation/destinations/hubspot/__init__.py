"""The `hubspot` destination: HubSpot CRM v3 through the official hubspot-api-client SDK."""

from __future__ import annotations

from activation.destinations.hubspot.spec import HubSpotDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="hubspot",
    spec=HubSpotDestinationSpec,
    destination="activation.destinations.hubspot.destination:HubSpotDestination",
    extra="hubspot",
    requires={"hubspot-api-client": "hubspot"},
    sandbox="activation_emulators.hubspot.sandbox:stand_in",
)
