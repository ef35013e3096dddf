"""The `iterable` destination: Iterable users and list membership over Iterable's REST API (no SDK)."""

from __future__ import annotations

from activation.destinations.iterable.spec import IterableDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="iterable",
    spec=IterableDestinationSpec,
    destination="activation.destinations.iterable.destination:IterableDestination",
    sandbox="activation_emulators.iterable.sandbox:stand_in",
)
