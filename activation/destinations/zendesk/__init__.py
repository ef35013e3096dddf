"""The `zendesk` destination: Zendesk Support users and organizations through the zenpy SDK."""

from __future__ import annotations

from activation.destinations.plugin import DestinationPlugin
from activation.destinations.zendesk.spec import ZendeskDestinationSpec

PLUGIN = DestinationPlugin(
    type="zendesk",
    spec=ZendeskDestinationSpec,
    destination="activation.destinations.zendesk.destination:ZendeskDestination",
    extra="zendesk",
    requires={"zenpy": "zenpy"},
    sandbox="activation_emulators.zendesk.sandbox:stand_in",
)
