"""A local emulator of the Salesforce REST API subset a reverse-ETL destination uses.

Real HTTP, real status codes and bodies, so a destination built on the official
`simple-salesforce` SDK is tested end to end. simple-salesforce always builds
``https://{instance}/...`` URLs, so give it a session that routes Salesforce hosts here::

    from simple_salesforce import Salesforce
    from activation_emulators.salesforce import SalesforceEmulator, emulator_session

    with SalesforceEmulator() as emu:
        sf = Salesforce(instance_url=f"https://{emu.instance}", session_id=emu.token,
                        session=emulator_session(emu))
        # or log in (SOAP) exactly like production code does:
        sf = Salesforce(username="integration@example.com", password="password",
                        security_token="SECURITYTOKEN", session=emulator_session(emu))
        sf.restful("composite/sobjects/Contact/External_Id__c", method="PATCH",
                   json={"allOrNone": False, "records": [
                       {"attributes": {"type": "Contact"}, "External_Id__c": "c-1",
                        "LastName": "Lovelace", "Email": "ada@example.com"}]})
        assert emu.find("Contact", "External_Id__c", "c-1")["LastName"] == "Lovelace"

Covered: session-token auth (401 INVALID_SESSION_ID), SOAP username/password login, OAuth
token endpoint (JWT bearer, password, client credentials); describe (global and per object);
sObject Collections create/update/upsert/delete/retrieve with allOrNone and per-record errors;
single-record get/create/update/upsert/delete; a small SOQL subset; Bulk API 2.0 ingest jobs;
the daily API quota (``Sforce-Limit-Info``, 403 REQUEST_LIMIT_EXCEEDED); injected faults
(`fail_next`, `limit_next`, `drop_next`, `delay`, `expire_sessions`, `fail_bulk_jobs`).

Seeded objects: Account, Contact, Lead, Campaign, CampaignMember, each (but CampaignMember)
with a unique external id ``External_Id__c``; add custom ones with `add_sobject`.
Run standalone: ``python -m activation_emulators.salesforce --port 8443``.
"""

from .cli import main
from .emulator import (
    API_VERSION,
    DEFAULT_APP,
    DEFAULT_INSTANCE,
    DEFAULT_TOKEN,
    DEFAULT_USER,
    Logged,
    SalesforceEmulator,
)
from .schema import Field, SObjectType
from .store import RecordError
from .transport import EmulatorAdapter, emulator_session

__all__ = [
    "API_VERSION",
    "DEFAULT_APP",
    "DEFAULT_INSTANCE",
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "EmulatorAdapter",
    "Field",
    "Logged",
    "RecordError",
    "SObjectType",
    "SalesforceEmulator",
    "emulator_session",
    "main",
]
