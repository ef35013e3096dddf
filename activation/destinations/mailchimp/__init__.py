"""The `mailchimp` destination: audience members and tags through the official mailchimp-marketing SDK."""

from __future__ import annotations

from activation.destinations.mailchimp.spec import MailchimpDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="mailchimp",
    spec=MailchimpDestinationSpec,
    destination="activation.destinations.mailchimp.destination:MailchimpDestination",
    extra="mailchimp",
    requires={"mailchimp-marketing": "mailchimp_marketing"},
    sandbox="activation_emulators.mailchimp.sandbox:stand_in",
)
