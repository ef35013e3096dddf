"""The `salesforce` destination: sObject Collections and Bulk API 2.0 through simple-salesforce."""

from __future__ import annotations

from activation.destinations.plugin import DestinationPlugin
from activation.destinations.salesforce.spec import SalesforceDestinationSpec

PLUGIN = DestinationPlugin(
    type="salesforce",
    spec=SalesforceDestinationSpec,
    destination="activation.destinations.salesforce.destination:SalesforceDestination",
    extra="salesforce",
    requires={"simple-salesforce": "simple_salesforce"},
    sandbox="activation_emulators.salesforce.sandbox:stand_in",
)
