"""The `intercom` destination: contacts (users or leads) and companies through the official
python-intercom SDK; audiences as a tag on contacts."""

from __future__ import annotations

from activation.destinations.intercom.spec import IntercomDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="intercom",
    spec=IntercomDestinationSpec,
    destination="activation.destinations.intercom.destination:IntercomDestination",
    extra="intercom",
    requires={"python-intercom": "intercom"},
    sandbox="activation_emulators.intercom.sandbox:stand_in",
)
