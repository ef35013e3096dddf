"""The `customerio` destination: Customer.io people and manual segments through the official SDK (customerio)."""

from __future__ import annotations

from activation.destinations.customerio.spec import CustomerioDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="customerio",
    spec=CustomerioDestinationSpec,
    destination="activation.destinations.customerio.destination:CustomerioDestination",
    extra="customerio",
    requires={"customerio": "customerio"},
    sandbox="activation_emulators.customerio.sandbox:stand_in",
)
