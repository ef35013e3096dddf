"""The `klaviyo` destination: Klaviyo profiles and list membership through the official SDK (klaviyo-api)."""

from __future__ import annotations

from activation.destinations.klaviyo.spec import KlaviyoDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="klaviyo",
    spec=KlaviyoDestinationSpec,
    destination="activation.destinations.klaviyo.destination:KlaviyoDestination",
    extra="klaviyo",
    requires={"klaviyo-api": "klaviyo_api"},
    sandbox="activation_emulators.klaviyo.sandbox:stand_in",
)
