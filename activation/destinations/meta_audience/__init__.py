"""The `meta_audience` destination: Meta Custom Audiences through the Marketing API."""

from __future__ import annotations

from activation.destinations.meta_audience.spec import MetaAudienceDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="meta_audience",
    spec=MetaAudienceDestinationSpec,
    destination="activation.destinations.meta_audience.destination:MetaAudienceDestination",
    extra="ads",
    requires={"phonenumbers": "phonenumbers"},
    sandbox="activation_emulators.meta.sandbox:stand_in",
)
