"""The `google_ads` destination: Customer Match user lists through the Google Ads API (REST)."""

from __future__ import annotations

from activation.destinations.google_ads.spec import GoogleAdsDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="google_ads",
    spec=GoogleAdsDestinationSpec,
    destination="activation.destinations.google_ads.destination:GoogleAdsDestination",
    extra="ads",
    requires={"phonenumbers": "phonenumbers"},
    sandbox="activation_emulators.google_ads.sandbox:stand_in",
)
