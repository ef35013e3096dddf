"""Salesforce emulator, driven through the real simple-salesforce SDK over real HTTP.

These pin both sides: the emulator's wire behaviour, and how simple-salesforce 1.12 reacts to
it (which exception each status becomes, how bulk2 polls, that password auth re-logs in on
INVALID_SESSION_ID while session-id auth cannot).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

pytest.importorskip("simple_salesforce")
from simple_salesforce import Salesforce  # noqa: E402
from simple_salesforce.exceptions import (  # noqa: E402
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from activation_emulators.salesforce import (  # noqa: E402
    DEFAULT_APP,
    DEFAULT_USER,
    Field,
    SalesforceEmulator,
    emulator_session,
)

USER, PASSWORD, SECURITY_TOKEN = DEFAULT_USER


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as e:
        yield e


@pytest.fixture
def sf(emu: SalesforceEmulator) -> Salesforce:
    return Salesforce(instance_url=f"https://{emu.instance}", session_id=emu.token, session=emulator_session(emu))


def contact(ext: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Contact"}, "External_Id__c": ext, **fields}


def upsert(
    sf: Salesforce, records: list[dict[str, Any]], sobject: str = "Contact", ext: str = "External_Id__c", all_or_none: bool = False
) -> Any:
    return sf.restful(f"composite/sobjects/{sobject}/{ext}", method="PATCH", json={"allOrNone": all_or_none, "records": records})


def codes(result: dict[str, Any]) -> list[str]:
    return [e["statusCode"] for e in result["errors"]]


# ---------------------------------------------------------------- describe, limits header


def test_describe_shapes_and_api_usage_header(sf: Salesforce, emu: SalesforceEmulator) -> None:
    contact_type = sf.Contact  # sf.<Object> builds a new SFType per access: keep one
    desc = contact_type.describe()
    fields = {f["name"]: f for f in desc["fields"]}
    assert desc["name"] == "Contact" and desc["keyPrefix"] == "003"
    last = fields["LastName"]  # required = not nillable, createable, not defaulted
    assert (last["nillable"], last["createable"], last["defaultedOnCreate"]) == (False, True, False)
    ext = fields["External_Id__c"]
    assert ext["externalId"] is True and ext["unique"] is True and ext["type"] == "string"
    plan = fields["Plan__c"]
    assert plan["restrictedPicklist"] and [v["value"] for v in plan["picklistValues"]] == ["free", "pro", "enterprise"]
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    assert fields["Name"]["createable"] is False  # calculated from First/LastName
    assert contact_type.api_usage["api-usage"].used == 1
    assert contact_type.api_usage["api-usage"].total == 15000

    names = {s["name"] for s in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Lead", "Campaign", "CampaignMember"} <= names
    lead = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert not lead["Company"]["nillable"] and lead["Status"]["defaultedOnCreate"]
    # sf.api_usage only sees calls made through `sf` itself (sf.describe(), call 2), not the
    # SFType calls (sf.Lead.describe(), call 3): read usage from the object that made the call
    assert sf.api_usage["api-usage"].used == 2

    emu.add_sobject(
        "Subscription__c",
        fields=[
            Field("External_Id__c", external_id=True, unique=True),
            Field("Plan__c", "picklist", picklist=["free", "pro"], restricted=True),
            Field("Seats__c", "int"),
            Field("Account__c", "reference", reference_to="Account"),
        ],
    )
    sub = {f["name"]: f for f in sf.Subscription__c.describe()["fields"]}
    assert sub["Account__c"]["relationshipName"] == "Account__r" and sub["Seats__c"]["type"] == "int"
    res = upsert(
        sf,
        [{"attributes": {"type": "Subscription__c"}, "Name": "S1", "External_Id__c": "s1", "Plan__c": "gold", "Seats__c": 3}],
        sobject="Subscription__c",
    )
    assert codes(res[0]) == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]


# ---------------------------------------------------------------- sObject Collections


def test_collections_upsert_created_then_updated_with_per_record_errors(sf: Salesforce, emu: SalesforceEmulator) -> None:
    first = upsert(
        sf,
        [
            contact("c-1", LastName="Lovelace", Email="ada@example.com"),
            contact("c-2", FirstName="No", Email="nolast@example.com"),  # missing LastName
            contact("c-3", LastName="Hopper", Email="not-an-email"),
            contact("c-4", LastName="Turing", Plan__c="pro", Lifetime_Value__c="12.5"),
        ],
    )
    assert [r["success"] for r in first] == [True, False, False, True]  # same order as sent
    assert first[0]["created"] is True and first[0]["id"].startswith("003")
    assert codes(first[1]) == ["REQUIRED_FIELD_MISSING"] and first[1]["errors"][0]["fields"] == ["LastName"]
    assert codes(first[2]) == ["INVALID_EMAIL_ADDRESS"]
    assert "id" not in first[1]  # failed records carry no id
    assert emu.find("Contact", "External_Id__c", "c-4")["Lifetime_Value__c"] == 12.5

    second = upsert(sf, [contact("C-1", Title="Countess"), contact("c-2", LastName="Fixed")])
    assert [(r["success"], r["created"]) for r in second] == [(True, False), (True, True)]
    assert second[0]["id"] == first[0]["id"]  # external ids match case-insensitively
    ada = emu.find("Contact", "External_Id__c", "c-1")
    assert (ada["Title"], ada["LastName"], ada["Name"]) == ("Countess", "Lovelace", "Lovelace")
    assert len(emu.records("Contact")) == 3


def test_collections_all_or_none_and_duplicates(sf: Salesforce, emu: SalesforceEmulator) -> None:
    res = upsert(sf, [contact("a", LastName="A"), contact("b")], all_or_none=True)
    assert codes(res[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(res[1]) == ["REQUIRED_FIELD_MISSING"]
    assert emu.records("Contact") == {}

    res = upsert(sf, [contact("d", LastName="1"), contact("D", LastName="2"), contact("e", LastName="3")])
    assert [codes(r) for r in res] == [["DUPLICATE_VALUE"], ["DUPLICATE_VALUE"], []]
    assert res[0]["errors"][0]["message"] == "Duplicate external id specified: d"


def test_collections_insert_update_delete(sf: Salesforce, emu: SalesforceEmulator) -> None:
    acct = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "Acme", "External_Id__c": "acc-1"},
                {"attributes": {"type": "Account"}, "Name": "Dup", "External_Id__c": "ACC-1"},
                {"attributes": {"type": "Account"}, "Industry": "Retail"},
            ],
        },
    )
    assert codes(acct[1]) == ["DUPLICATE_VALUE"] and codes(acct[2]) == ["REQUIRED_FIELD_MISSING"]
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "records": [
                contact("k-1", LastName="Linked", Account={"External_Id__c": "acc-1"}),
                contact("k-2", LastName="Orphan", Account={"External_Id__c": "nope"}),
                {"attributes": {"type": "Contact"}, "LastName": "Plain"},
            ]
        },
    )
    assert [r["success"] for r in created] == [True, False, True]
    assert codes(created[1]) == ["INVALID_FIELD"] and "Foreign key external ID" in created[1]["errors"][0]["message"]
    assert emu.records("Contact")[created[0]["id"]]["AccountId"] == acct[0]["id"]

    deleted_id = created[2]["id"]
    assert sf.restful(f"composite/sobjects?ids={deleted_id}", method="DELETE")[0]["success"]
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "id": created[0]["id"], "Email": "l@example.com"},
                {"attributes": {"type": "Contact"}, "id": deleted_id, "Email": "x@example.com"},
                {"attributes": {"type": "Contact"}, "id": acct[0]["id"], "Email": "x@example.com"},
                {"attributes": {"type": "Contact"}, "Email": "x@example.com"},
            ]
        },
    )
    assert [codes(r) for r in updated] == [[], ["ENTITY_IS_DELETED"], ["MALFORMED_ID"], ["MISSING_ARGUMENT"]]
    assert emu.find("Contact", "External_Id__c", "k-1")["Email"] == "l@example.com"

    unknown = "003Em00000000ZZAAA"  # well formed, never existed
    res = sf.restful(
        "composite/sobjects", method="DELETE", params={"ids": f"{created[0]['id']},{deleted_id},{unknown},junk", "allOrNone": "false"}
    )
    assert [codes(r) for r in res] == [[], ["ENTITY_IS_DELETED"], ["INVALID_CROSS_REFERENCE_KEY"], ["MALFORMED_ID"]]
    assert set(emu.records("Contact", include_deleted=True)) == {created[0]["id"], deleted_id}
    assert emu.records("Contact") == {}

    # audience membership: a second CampaignMember for the same contact is refused
    camp = emu.create("Campaign", {"Name": "Spring"})
    person = emu.create("Contact", {"LastName": "Member"})
    member = {"attributes": {"type": "CampaignMember"}, "CampaignId": camp, "ContactId": person}
    res = sf.restful("composite/sobjects", method="POST", json={"records": [member, member]})
    assert codes(res[0]) == [] and codes(res[1]) == ["DUPLICATE_VALUE"]
    # deleting the person deletes their campaign memberships, as Salesforce does
    assert sf.restful(f"composite/sobjects?ids={person}", method="DELETE")[0]["success"]
    assert emu.records("CampaignMember") == {} and res[0]["id"] in emu.records("CampaignMember", include_deleted=True)


def test_collection_limits_and_malformed_requests(sf: Salesforce, emu: SalesforceEmulator) -> None:
    with pytest.raises(SalesforceMalformedRequest) as err:
        upsert(sf, [contact(f"x{i}", LastName="X") for i in range(201)])
    assert err.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert emu.records("Contact") == {}
    assert len(upsert(sf, [contact(f"x{i}", LastName="X") for i in range(200)])) == 200

    with pytest.raises(SalesforceMalformedRequest) as err:  # one unknown field fails the request
        upsert(sf, [contact("y1", LastName="Y"), contact("y2", LastName="Y", Shoe_Size__c=9)])
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as err:
        upsert(sf, [contact("y3", LastName="Y", Lifetime_Value__c="lots")])
    assert err.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest):
        upsert(sf, [{"External_Id__c": "no-attributes", "LastName": "Y"}])
    with pytest.raises(SalesforceMalformedRequest):  # not an external id field
        upsert(sf, [contact("z", LastName="Z")], ext="Email")

    emu.field_errors_per_record = True  # the alternative reading: per record
    res = upsert(
        sf,
        [contact("y1", LastName="Y"), contact("y2", LastName="Y", Shoe_Size__c=9), contact("y3", LastName="Y", Lifetime_Value__c="lots")],
    )
    assert [codes(r) for r in res] == [[], ["INVALID_FIELD"], ["INVALID_TYPE_ON_FIELD_IN_RECORD"]]


# ---------------------------------------------------------------- single records and query


def test_single_record_calls_and_query(sf: Salesforce, emu: SalesforceEmulator) -> None:
    new = sf.Contact.create({"LastName": "Single", "External_Id__c": "s-1", "Email": "s@example.com"})
    assert new["success"] and sf.Contact.get(new["id"])["Email"] == "s@example.com"
    assert sf.Contact.get(new["id"][:15])["Id"] == new["id"]  # 15-char ids work too
    assert sf.Contact.update(new["id"], {"Title": "Boss"}) == 204
    assert sf.Contact.get_by_custom_id("External_Id__c", "S-1")["Title"] == "Boss"
    assert sf.Contact.upsert("External_Id__c/s-1", {"Title": "CEO"}) == 200
    assert sf.Contact.upsert("External_Id__c/s-2", {"LastName": "Two"}) == 201
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.create({"FirstName": "NoLast"})
    assert err.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"

    rows = sf.query("SELECT Id, Title, Account.Name FROM Contact WHERE External_Id__c = 's-1'")
    assert rows["totalSize"] == 1 and rows["records"][0]["Title"] == "CEO"
    assert rows["records"][0]["Account"] is None
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2
    got = sf.query_all("SELECT LastName FROM Contact WHERE External_Id__c IN ('s-1', 's-2') ORDER BY LastName DESC")
    assert [r["LastName"] for r in got["records"]] == ["Two", "Single"]
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Nope__c FROM Contact")

    assert sf.Contact.delete(new["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(new["id"])


# ---------------------------------------------------------------- Bulk API 2.0


def test_bulk2_upsert_polls_and_reports_failed_rows(sf: Salesforce, emu: SalesforceEmulator) -> None:
    emu.bulk_processing_delay = 0.2  # the job stays InProgress: the SDK must poll
    records = [
        {
            "External_Id__c": f"b{i:04d}",
            "LastName": "" if i % 100 == 0 else f"L{i}",
            "Email": "broken" if i % 250 == 7 else f"u{i}@example.com",
        }
        for i in range(1000)
    ]
    started = time.monotonic()
    [result] = sf.bulk2.Contact.upsert(records=records, external_id_field="External_Id__c", wait=0.05)
    assert time.monotonic() - started < 5
    assert result["numberRecordsProcessed"] == 1000 and result["numberRecordsFailed"] == 14

    job_id = result["job_id"]
    polls = [r for r in emu.request_log if r.method == "GET" and r.path.endswith(job_id)]
    assert len(polls) >= 2  # at least one InProgress answer before JobComplete
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(job_id))))
    assert len(failed) == 14
    errors = {r["External_Id__c"]: r["sf__Error"].split(":")[0] for r in failed}
    assert errors["b0100"] == "REQUIRED_FIELD_MISSING" and errors["b0007"] == "INVALID_EMAIL_ADDRESS"
    assert all(r["sf__Id"] == "" for r in failed)  # failed creates have no id
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(job_id))))
    assert len(ok) == 986 and {r["sf__Created"] for r in ok} == {"true"}
    unprocessed = sf.bulk2.Contact.get_unprocessed_records(job_id)
    assert list(csv.DictReader(io.StringIO(unprocessed))) == []
    assert len(emu.records("Contact")) == 986

    # second run: updates; an empty cell leaves a field alone, #N/A clears it
    emu.bulk_processing_delay = 0.0
    [again] = sf.bulk2.Contact.upsert(
        records=[
            {"External_Id__c": "b0001", "LastName": "Renamed", "Email": "#N/A"},
            {"External_Id__c": "b0002", "LastName": "", "Email": "new@example.com"},
        ],
        external_id_field="External_Id__c",
        wait=0.01,
    )
    assert again["numberRecordsFailed"] == 0
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(again["job_id"]))))
    assert {r["sf__Created"] for r in ok} == {"false"}
    b1, b2 = (emu.find("Contact", "External_Id__c", k) for k in ("b0001", "b0002"))
    assert (b1["LastName"], b1["Email"]) == ("Renamed", None)
    assert (b2["LastName"], b2["Email"]) == ("L2", "new@example.com")

    ids = [{"Id": r["sf__Id"]} for r in ok]
    [gone] = sf.bulk2.Contact.delete(records=ids, wait=0.01)
    assert gone["numberRecordsFailed"] == 0 and len(emu.records("Contact")) == 984


def test_bulk2_job_level_failures(sf: Salesforce, emu: SalesforceEmulator) -> None:
    with pytest.raises(SalesforceOperationError, match="Field name not found : Shoe_Size__c"):
        sf.bulk2.Contact.insert(records=[{"LastName": "A", "Shoe_Size__c": "9"}], wait=0.01)
    emu.fail_bulk_jobs(1, "InternalServerError : try again")
    with pytest.raises(SalesforceOperationError, match="try again"):
        sf.bulk2.Contact.insert(records=[{"LastName": "A"}], wait=0.01)
    assert [j["state"] for j in emu.jobs()] == ["Failed", "Failed"]
    assert emu.records("Contact") == {}


# ---------------------------------------------------------------- auth


def test_password_login_and_relogin_after_expiry(emu: SalesforceEmulator) -> None:
    session = emulator_session(emu)
    sf = Salesforce(username=USER, password=PASSWORD, security_token=SECURITY_TOKEN, session=session)
    assert sf.sf_instance == emu.instance and sf.session_id != emu.token
    sf.Contact.create({"LastName": "Before"})
    emu.expire_sessions()
    # simple-salesforce re-logs in on 401 INVALID_SESSION_ID when it has credentials
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1
    logins = [r for r in emu.request_log if r.path.startswith("/services/Soap/u/")]
    assert len(logins) == 2 and logins[0].host == "login.salesforce.com"

    with pytest.raises(SalesforceAuthenticationFailed) as err:
        Salesforce(username=USER, password="wrong", security_token=SECURITY_TOKEN, session=session)
    assert err.value.code == "INVALID_LOGIN"


def test_jwt_bearer_login(emu: SalesforceEmulator) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    sf = Salesforce(username=USER, consumer_key=DEFAULT_APP[0], privatekey=pem, session=emulator_session(emu))
    assert sf.sf_instance == emu.instance
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    # an unknown user gets "user hasn't approved this consumer", which the SDK also warns about
    with pytest.raises(SalesforceAuthenticationFailed), pytest.warns(UserWarning):
        Salesforce(username="stranger@example.com", consumer_key=DEFAULT_APP[0], privatekey=pem, session=emulator_session(emu))


def test_expired_session_raises_for_session_id_auth(sf: Salesforce, emu: SalesforceEmulator) -> None:
    emu.expire_sessions()
    with pytest.raises(SalesforceExpiredSession) as err:
        sf.query("SELECT COUNT() FROM Contact")
    assert err.value.status == 401
    assert err.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    sf.session_id = emu.new_session()  # a fresh token works again
    sf.headers["Authorization"] = "Bearer " + sf.session_id
    assert sf.query("SELECT COUNT() FROM Contact")["done"]


# ---------------------------------------------------------------- limits and faults


def test_request_limit_exceeded(sf: Salesforce, emu: SalesforceEmulator) -> None:
    emu.limit_next(1)
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf.query("SELECT COUNT() FROM Contact")
    assert err.value.status == 403
    assert err.value.content == [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    sf.query("SELECT COUNT() FROM Contact")
    assert sf.api_usage["api-usage"].used == 1  # the refused call did not count

    emu.set_api_usage(used=49, limit=50)
    sf.query("SELECT COUNT() FROM Contact")
    assert tuple(sf.api_usage["api-usage"]) == (50, 50)
    with pytest.raises(SalesforceRefusedRequest) as err:  # quota exhausted for the day
        sf.query("SELECT COUNT() FROM Contact")
    assert err.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    with pytest.raises(SalesforceRefusedRequest):
        sf.bulk2.Contact.insert(records=[{"LastName": "A"}], wait=0.01)


def test_server_errors_drops_and_delays(sf: Salesforce, emu: SalesforceEmulator) -> None:
    for status in (500, 503):
        emu.fail_next(1, status=status)
        with pytest.raises(SalesforceGeneralError) as err:
            sf.query("SELECT COUNT() FROM Contact")
        assert err.value.status == status
    emu.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        sf.query("SELECT COUNT() FROM Contact")
    emu.fail_next(1, status=500, match="/jobs/ingest")  # only bulk calls are hit
    assert sf.query("SELECT COUNT() FROM Contact")["done"]
    with pytest.raises(SalesforceGeneralError):
        sf.bulk2.Contact.insert(records=[{"LastName": "A"}], wait=0.01)
    emu.delay(0.5, times=1)
    with pytest.raises(requests.Timeout):
        sf.query("SELECT COUNT() FROM Contact", timeout=0.1)
    assert sf.query("SELECT COUNT() FROM Contact")["done"]
    deadline = time.monotonic() + 2  # the timed-out request is still sleeping server-side
    while len(emu.request_log) < emu.request_count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.status for r in emu.request_log][:3] == [500, 503, None]  # None: dropped


def test_session_routes_only_salesforce_hosts(emu: SalesforceEmulator) -> None:
    session = emulator_session(emu)
    with pytest.raises(requests.ConnectionError, match="not routed"):
        session.get("https://example.com/")
    reply = session.get(f"https://{emu.instance}/services/data/v59.0/limits", headers={"Authorization": f"Bearer {emu.token}"})
    assert reply.url.startswith(f"https://{emu.instance}/")  # SDK errors show the real URL
    assert reply.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    assert reply.json()["DailyApiRequests"] == {"Max": 15000, "Remaining": 14999}
    assert emu.request_log[-1].host == emu.instance
