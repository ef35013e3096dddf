"""The `braze` destination: user profiles (custom attributes) through Braze's REST API."""

from __future__ import annotations

from activation.destinations.braze.spec import BrazeDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="braze",
    spec=BrazeDestinationSpec,
    destination="activation.destinations.braze.destination:BrazeDestination",
    sandbox="activation_emulators.braze.sandbox:stand_in",
)
