"""Destination plugins, looked up by their `type:` in syncs.yaml."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from activation.destinations.base import Destination

# type -> "module:Class"; imported lazily so an unused vendor SDK costs nothing.
REGISTRY: dict[str, str] = {
    "file": "activation.destinations.file.destination:FileDestination",
    "webhook": "activation.destinations.webhook.destination:WebhookDestination",
    "hubspot": "activation.destinations.hubspot.destination:HubSpotDestination",
    "salesforce": "activation.destinations.salesforce.destination:SalesforceDestination",
    "meta_audience": "activation.destinations.meta_audience.destination:MetaAudienceDestination",
    "google_ads": "activation.destinations.google_ads.destination:GoogleAdsDestination",
    "mailchimp": "activation.destinations.mailchimp.destination:MailchimpDestination",
}


def destination_class(type_: str) -> type[Destination]:
    module, _, cls = REGISTRY[type_].partition(":")
    return getattr(import_module(module), cls)  # type: ignore[no-any-return]


def build_destination(name: str, spec: Any, project_dir: str) -> Destination:
    return destination_class(spec.type)(name, spec, project_dir)
