"""The `webhook` destination: JSON batches POSTed to a URL you own."""

from __future__ import annotations

from activation.destinations.plugin import DestinationPlugin
from activation.destinations.webhook.spec import WebhookDestinationSpec

PLUGIN = DestinationPlugin(
    type="webhook",
    spec=WebhookDestinationSpec,
    destination="activation.destinations.webhook.destination:WebhookDestination",
    sandbox="activation_emulators.webhook.sandbox:stand_in",
)
