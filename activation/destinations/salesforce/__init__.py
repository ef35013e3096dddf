"""The `salesforce` destination: sObject Collections and Bulk API 2.0 through simple-salesforce."""

from __future__ import annotations

from activation.destinations.salesforce.spec import SalesforceDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="salesforce",
    spec=SalesforceDestinationSpec,
    destination="activation.destinations.salesforce.destination:SalesforceDestination",
    extra="salesforce",
    requires={"simple-salesforce": "simple_salesforce"},
    sandbox="activation_emulators.salesforce.sandbox:stand_in",
)
