"""The HubSpot emulator, driven through the official SDK over real HTTP.

The shared emulator runs with validation="both": every request and every answer is checked by
openapi-core against HubSpot's documents and by the compiled checks, and the two must agree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("hubspot")
pytest.importorskip("openapi_core")

import httpx  # noqa: E402
import urllib3  # noqa: E402
from hubspot import HubSpot  # noqa: E402
from hubspot.crm.companies import BatchInputSimplePublicObjectBatchInputUpsert as CompanyUpsert  # noqa: E402
from hubspot.crm.companies.exceptions import ApiException as CompaniesApiException  # noqa: E402
from hubspot.crm.contacts import (  # noqa: E402
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.contacts.exceptions import ApiException  # noqa: E402
from hubspot.crm.lists import ListCreateRequest, MembershipChangeRequest  # noqa: E402
from hubspot.crm.properties import PropertyCreate  # noqa: E402
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException  # noqa: E402

from activation_emulators.hubspot import HubSpotEmulator  # noqa: E402
from activation_emulators.hubspot.spec import find_specs_dir  # noqa: E402

try:
    find_specs_dir()
except FileNotFoundError as _missing:  # a clone without shared/ beside it
    pytest.skip(f"HubSpot's OpenAPI documents are not on this machine, so validation cannot be tested: {_missing}", allow_module_level=True)

TOKEN = "pat-na1-test"


@pytest.fixture(scope="module")
def shared() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(tokens={TOKEN}, validation="both") as emu:
        yield emu


@pytest.fixture()
def emu(shared: HubSpotEmulator) -> Iterator[HubSpotEmulator]:
    shared.reset()
    shared.batch_errors = "hubspot"
    yield shared
    # The emulator's own answers must match the documents, and both validators must agree.
    assert shared.invalid_responses == []
    assert shared.validator_disagreements == []
    assert shared.server_errors == []


@pytest.fixture()
def client(emu: HubSpotEmulator) -> Iterator[HubSpot]:
    yield HubSpot(access_token=TOKEN, host=emu.url)
    assert emu.invalid_requests == []  # the SDK's requests conform to HubSpot's documents


def upserts(*emails: str, **props: str) -> BatchInputSimplePublicObjectBatchInputUpsert:
    return BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[SimplePublicObjectBatchInputUpsert(id=e, id_property="email", properties=dict(props)) for e in emails]
    )


def body_of(exc: Any) -> dict[str, Any]:
    return json.loads(exc.body)


# ---------------------------------------------------------------- objects


def test_upsert_by_email_reports_new_then_existing(client: HubSpot, emu: HubSpotEmulator) -> None:
    first = client.crm.contacts.batch_api.upsert(upserts("ada@example.com", "bob@example.com", firstname="A"))
    assert type(first).__name__ == "BatchResponseSimplePublicUpsertObject"
    assert [r.new for r in first.results] == [True, True]
    ids = {r.properties["email"]: r.id for r in first.results}

    again = client.crm.contacts.batch_api.upsert(upserts("ADA@example.com", "bob@example.com", firstname="B"))
    assert [r.new for r in again.results] == [False, False]  # email matches case-insensitively
    assert {r.id for r in again.results} == set(ids.values())
    assert emu.records("contacts")[ids["ada@example.com"]]["firstname"] == "B"
    assert list(emu.find("contacts", "email", "Ada@Example.com")) == [ids["ada@example.com"]]


def test_batch_create_update_read_archive(client: HubSpot, emu: HubSpotEmulator) -> None:
    api = client.crm.contacts.batch_api
    created = api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": f"c{i}@example.com", "lifecyclestage": "lead"}) for i in range(3)
            ]
        )
    )
    assert type(created).__name__ == "BatchResponseSimplePublicObject" and created.status == "COMPLETE"
    ids = sorted(r.id for r in created.results)

    updated = api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=ids[0], properties={"lifecyclestage": "customer", "jobtitle": "CTO"})]
        )
    )
    assert updated.results[0].properties["lifecyclestage"] == "customer"

    read = api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids], properties=["jobtitle", "lifecyclestage"], properties_with_history=[]
        )
    )
    by_id = {r.id: r.properties for r in read.results}
    assert by_id[ids[0]]["jobtitle"] == "CTO" and by_id[ids[1]]["lifecyclestage"] == "lead"

    assert api.archive(BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=ids[0])])) is None  # 204
    assert ids[0] not in emu.records("contacts") and ids[0] in emu.records("contacts", archived=True)
    partial = api.read(BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in ids], properties_with_history=[]))
    assert type(partial).__name__ == "BatchResponseSimplePublicObjectWithErrors"  # 207: some were not found
    assert partial.errors[0].category == "OBJECT_NOT_FOUND" and partial.errors[0].context == {"ids": [ids[0]]}

    one = client.crm.contacts.basic_api.get_by_id(ids[1], properties=["email"])
    assert one.properties["email"] == "c1@example.com"
    page = client.crm.contacts.basic_api.get_page(limit=1)
    assert len(page.results) == 1 and page.paging.next.after
    assert [r.status for r in emu.request_log][:3] == [201, 200, 200]


def test_invalid_email_in_batch_create_with_trace_ids_is_a_207(client: HubSpot, emu: HubSpotEmulator) -> None:
    # HubSpot documents multi-status for batch create when every input has an objectWriteTraceId.
    rows = [("row-1", "ok@example.com"), ("row-2", "not-an-email"), ("row-3", "fine@example.com")]
    out = client.crm.contacts.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": email}, object_write_trace_id=trace) for trace, email in rows
            ]
        )
    )
    assert type(out).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert out.num_errors == 1
    err = out.errors[0]
    assert err.category == "VALIDATION_ERROR" and err.context == {"objectWriteTraceId": ["row-2"]}
    assert "INVALID_EMAIL" in err.message and err.errors[0].code == "INVALID_EMAIL"
    assert sorted(r.object_write_trace_id for r in out.results) == ["row-1", "row-3"]
    assert len(emu.records("contacts")) == 2


def test_invalid_email_in_upsert_fails_the_whole_batch(client: HubSpot, emu: HubSpotEmulator) -> None:
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.upsert(upserts("good@example.com", "bad@", firstname="X"))
    assert caught.value.status == 400
    body = body_of(caught.value)
    assert body["category"] == "VALIDATION_ERROR" and body["message"].startswith("Property values were not valid: ")
    assert json.loads(body["message"].split(": ", 1)[1])[0] == {
        "isValid": False,
        "message": "Email address bad@ is invalid",
        "error": "INVALID_EMAIL",
        "name": "email",
    }
    assert emu.records("contacts") == {}  # nothing written


def test_multi_status_mode_reports_each_failed_input(client: HubSpot, emu: HubSpotEmulator) -> None:
    emu.batch_errors = "multi-status"
    out = client.crm.contacts.batch_api.upsert(upserts("a@example.com", "bad@", "b@example.com", lastname="L"))
    assert type(out).__name__ == "BatchResponseSimplePublicUpsertObjectWithErrors"
    assert out.num_errors == 1 and out.errors[0].context == {"ids": ["bad@"]}
    assert sorted(r.properties["email"] for r in out.results) == ["a@example.com", "b@example.com"]
    assert all(r.new for r in out.results)


def test_property_problems_unknown_enumeration_number(client: HubSpot, emu: HubSpotEmulator) -> None:
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.upsert(upserts("a@example.com", foo="1"))
    problem = json.loads(body_of(caught.value)["message"].split(": ", 1)[1])[0]
    assert problem["error"] == "PROPERTY_DOESNT_EXIST" and problem["message"] == 'Property "foo" does not exist'

    out = client.crm.companies.batch_api.create(
        {
            "inputs": [
                {"properties": {"name": "A", "industry": "NOT_AN_INDUSTRY"}, "objectWriteTraceId": "t1"},
                {"properties": {"name": "B", "numberofemployees": "many"}, "objectWriteTraceId": "t2"},
                {"properties": {"name": "C", "numberofemployees": "12", "annualrevenue": "1.5e6"}, "objectWriteTraceId": "t3"},
            ]
        }
    )
    codes = {e.context["objectWriteTraceId"][0]: e.errors[0].code for e in out.errors}
    assert codes == {"t1": "INVALID_OPTION", "t2": "INVALID_NUMBER"}
    assert [r.properties["name"] for r in out.results] == ["C"]


def test_values_are_checked_and_kept_by_property_type(client: HubSpot, emu: HubSpotEmulator) -> None:
    emu.add_property("contacts", "renewal_date", type="date")
    emu.add_property("contacts", "last_seen", type="datetime")
    emu.add_property("contacts", "seats", type="number")
    emu.add_property("contacts", "vip", type="bool")
    emu.add_property("contacts", "tools", type="enumeration", field_type="checkbox", options=["crm", "bi", "etl"])
    emu.batch_errors = "multi-status"
    out = client.crm.contacts.batch_api.upsert(
        {
            "inputs": [
                {"id": f"{n}@example.com", "idProperty": "email", "properties": props}
                for n, props in [
                    (
                        "ok",
                        {"renewal_date": "1714521600000", "last_seen": "1714555800000", "seats": "12.5", "vip": "true", "tools": "crm;etl"},
                    ),
                    ("iso", {"renewal_date": "2024-05-01", "last_seen": "2024-05-01T11:30:00+02:00"}),
                    ("noon", {"renewal_date": "1714564800000"}),  # 2024-05-01 12:00 UTC: a date must be midnight UTC
                    ("abc", {"seats": "abc"}),
                    ("option", {"tools": "crm;spreadsheets"}),
                    ("yes", {"vip": "yes"}),
                ]
            ]
        }
    )
    problems = {e.context["ids"][0]: e.errors[0] for e in out.errors}
    assert {k: p.code for k, p in problems.items()} == {
        "noon@example.com": "INVALID_DATE",
        "abc@example.com": "INVALID_NUMBER",
        "option@example.com": "INVALID_OPTION",
        "yes@example.com": "INVALID_BOOLEAN",
    }
    assert problems["noon@example.com"].message == "1714564800000 is at 12:00:00.000 UTC, not midnight!"  # HubSpot's words
    assert problems["option@example.com"].message == "spreadsheets was not one of the allowed options: [crm, bi, etl]"
    kept = {r.properties["email"]: r.properties for r in out.results}
    # Dates read back as YYYY-MM-DD and datetimes as ISO 8601 UTC, whichever accepted form was written.
    assert {k: kept["ok@example.com"][k] for k in ("renewal_date", "last_seen", "seats", "vip", "tools")} == {
        "renewal_date": "2024-05-01",
        "last_seen": "2024-05-01T09:30:00.000Z",
        "seats": "12.5",
        "vip": "true",
        "tools": "crm;etl",
    }
    assert (kept["iso@example.com"]["renewal_date"], kept["iso@example.com"]["last_seen"]) == ("2024-05-01", "2024-05-01T09:30:00.000Z")

    emu.batch_errors = "hubspot"  # HubSpot's own behaviour: one bad value refuses the whole batch
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.upsert(upserts("a@example.com", "b@example.com", seats="twelve"))
    body = body_of(caught.value)
    assert caught.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert json.loads(body["message"].split(": ", 1)[1])[0]["error"] == "INVALID_NUMBER"


def test_more_than_100_inputs_is_refused(client: HubSpot) -> None:
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.upsert(upserts(*(f"u{i}@example.com" for i in range(101))))
    assert caught.value.status == 400
    assert body_of(caught.value)["message"].startswith("The maximum number of inputs supported in a batch is 100")


def test_custom_objects_and_unique_properties(client: HubSpot, emu: HubSpotEmulator) -> None:
    type_id = emu.add_object_type("p_orders", properties=["order_id", {"name": "amount", "type": "number"}], unique=["order_id"])
    out = client.crm.objects.batch_api.upsert(
        "p_orders", {"inputs": [{"id": "o-1", "idProperty": "order_id", "properties": {"amount": "10"}}]}
    )
    assert out.results[0].new and emu.find("p_orders", "order_id", "o-1")
    again = client.crm.objects.batch_api.upsert(
        type_id, {"inputs": [{"id": "o-1", "idProperty": "order_id", "properties": {"amount": "12.5"}}]}
    )
    assert not again.results[0].new and again.results[0].id == out.results[0].id

    # Each SDK module has its own ApiException class.
    with pytest.raises(CompaniesApiException) as caught:  # domain has no unique values: HubSpot refuses it
        client.crm.companies.batch_api.upsert(CompanyUpsert(inputs=[{"id": "x.com", "idProperty": "domain", "properties": {}}]))
    assert "non-unique 0-2 property domain" in body_of(caught.value)["message"]
    emu.add_property("companies", "domain_key", unique=True)
    ok = client.crm.companies.batch_api.upsert(
        CompanyUpsert(inputs=[{"id": "x.com", "idProperty": "domain_key", "properties": {"name": "X"}}])
    )
    assert ok.results[0].new and ok.results[0].properties["domain_key"] == "x.com"


# ---------------------------------------------------------------- auth, quotas, faults


def test_bad_token_is_401(emu: HubSpotEmulator) -> None:
    with pytest.raises(ApiException) as caught:
        HubSpot(access_token="pat-na1-wrong", host=emu.url).crm.contacts.batch_api.upsert(upserts("a@example.com"))
    assert caught.value.status == 401 and body_of(caught.value)["category"] == "INVALID_AUTHENTICATION"


def test_rate_limit_429_and_sdk_retry() -> None:
    with HubSpotEmulator(tokens={TOKEN}, rate_limit=(3, 0.5)) as emu:
        client = HubSpot(access_token=TOKEN, host=emu.url)
        for _ in range(3):
            client.crm.properties.core_api.get_all("contacts")
        with pytest.raises(PropertiesApiException) as caught:
            client.crm.properties.core_api.get_all("contacts")
        assert caught.value.status == 429 and emu.throttled == 1
        assert body_of(caught.value) | {"correlationId": "", "requestId": ""} == {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "policyName": "TEN_SECONDLY_ROLLING",
            "correlationId": "",
            "requestId": "",
        }
        headers = caught.value.headers
        assert headers["X-HubSpot-RateLimit-Max"] == "3" and headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "500" and "Retry-After" not in headers

        # With Retry-After, urllib3's default retries (inside the SDK) silently retry a GET...
        emu.retry_after = True
        time.sleep(0.5)
        for _ in range(4):
            client.crm.properties.core_api.get_all("contacts")
        assert emu.throttled == 2
        with pytest.raises(ApiException) as caught:  # ...but never a POST
            for _ in range(5):
                client.crm.contacts.batch_api.upsert(upserts("a@example.com"))
        assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
        emu.retry_after = False

        retrying = HubSpot(
            access_token=TOKEN,
            host=emu.url,
            retry=urllib3.Retry(
                total=5, status_forcelist=[429], allowed_methods=None, backoff_factor=0.1, respect_retry_after_header=False
            ),
        )
        started = time.monotonic()
        for _ in range(4):  # the SDK's own retries wait the window out
            retrying.crm.properties.core_api.get_all("contacts")
        assert emu.throttled > 1 and time.monotonic() - started < 5
        assert emu.invalid_requests == [] and emu.invalid_responses == []

    with HubSpotEmulator(daily_limit=1) as emu:
        client = HubSpot(access_token="any", host=emu.url)
        client.crm.properties.core_api.get_all("companies")
        with pytest.raises(PropertiesApiException) as caught:
            client.crm.properties.core_api.get_all("companies")
        assert body_of(caught.value)["policyName"] == "DAILY"
        assert caught.value.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_fault_injection(client: HubSpot, emu: HubSpotEmulator) -> None:
    emu.fail_next(1, status=503)
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.upsert(upserts("a@example.com"))
    assert caught.value.status == 503
    emu.throttle_next(1)
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.upsert(upserts("a@example.com"))
    assert caught.value.status == 429 and emu.throttled == 1

    emu.drop_next(1)  # urllib3 retries an idempotent GET on a dropped connection by itself...
    assert client.crm.properties.core_api.get_all("contacts").results
    assert sorted(r.status for r in emu.request_log[-2:]) == [0, 200]  # the drop may be logged after the retry
    emu.drop_next(1)  # ...but not a POST
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.crm.contacts.batch_api.upsert(upserts("a@example.com"))

    emu.delay(0.3)
    with pytest.raises(urllib3.exceptions.HTTPError):  # read timeout
        client.crm.contacts.batch_api.upsert(upserts("a@example.com"), _request_timeout=0.05)
    emu.delay(0)
    assert emu.request_count == 6
    assert emu.wait_idle() and emu.request_log[-1].status == 200  # the server finished it anyway


# ---------------------------------------------------------------- properties and lists


def test_properties(client: HubSpot, emu: HubSpotEmulator) -> None:
    contact_props = {p.name: p for p in client.crm.properties.core_api.get_all("contacts").results}
    assert {"email", "firstname", "lastname", "jobtitle", "phone", "company", "hs_object_id"} <= set(contact_props)
    stage = contact_props["lifecyclestage"]
    assert stage.type == "enumeration" and "customer" in [o.value for o in stage.options]
    employees = client.crm.properties.core_api.get_by_name("companies", "numberofemployees")
    assert (employees.type, employees.field_type, employees.has_unique_value) == ("number", "number", False)

    emu.add_property("contacts", "lifetime_value", type="number")
    assert client.crm.properties.core_api.get_by_name("0-1", "lifetime_value").type == "number"
    created = client.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="plan",
            label="Plan",
            type="enumeration",
            field_type="select",
            group_name="contactinformation",
            options=[{"label": "Free", "value": "free", "hidden": False}, {"label": "Pro", "value": "pro", "hidden": False}],
        ),
    )
    assert created.name == "plan"
    client.crm.contacts.batch_api.upsert(upserts("p@example.com", plan="pro", lifetime_value="99.5"))
    assert next(iter(emu.find("contacts", "plan", "pro").values()))["lifetime_value"] == "99.5"


def test_lists_and_memberships(client: HubSpot, emu: HubSpotEmulator) -> None:
    ids = [emu.create("contacts", {"email": f"m{i}@example.com"}) for i in range(5)]
    made = client.crm.lists.lists_api.create(ListCreateRequest(name="VIPs", object_type_id="0-1", processing_type="MANUAL"))
    list_id = made.list.list_id
    assert client.crm.lists.lists_api.get_by_name("vips", "0-1").list.list_id == list_id  # names ignore case

    added = client.crm.lists.memberships_api.add(list_id, ids[:3] + ["999999"])
    assert added.records_ids_added == ids[:3] and added.record_ids_missing == ["999999"]
    again = client.crm.lists.memberships_api.add(list_id, ids[:4])  # existing members are ignored
    assert again.records_ids_added == [ids[3]]
    removed = client.crm.lists.memberships_api.remove(list_id, [ids[0]])
    assert removed.record_ids_removed == [ids[0]]
    both = client.crm.lists.memberships_api.add_and_remove(
        list_id, MembershipChangeRequest(record_ids_to_add=[ids[4]], record_ids_to_remove=[ids[1]])
    )
    assert both.records_ids_added == [ids[4]] and both.record_ids_removed == [ids[1]]
    assert emu.list_members(list_id) == [ids[2], ids[3], ids[4]]

    first = client.crm.lists.memberships_api.get_page(list_id, limit=2)
    assert [m.record_id for m in first.results] == [ids[2], ids[3]]
    rest = client.crm.lists.memberships_api.get_page(list_id, after=first.paging.next.after, limit=2)
    assert [m.record_id for m in rest.results] == [ids[4]] and rest.paging is None
    assert client.crm.lists.lists_api.get_by_id(list_id).list.size == 3

    raw = httpx.put(f"{emu.url}/crm/v3/lists/{list_id}/memberships/add", json=[ids[0]], headers={"Authorization": f"Bearer {TOKEN}"})
    assert set(raw.json()) == {"recordsIdsAdded", "recordIdsRemoved", "recordIdsMissing"}  # sic, as documented


# ---------------------------------------------------------------- the documents' validation


def test_malformed_requests_are_refused_with_hubspot_errors(emu: HubSpotEmulator) -> None:
    post = httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {TOKEN}"})
    cases = [
        ({"inputs": {"id": "a@example.com"}}, "is not of type 'array'"),
        ({"inputs": [{"id": "a@example.com", "idProperty": "email"}]}, "'properties' is a required property"),
        ({"inputs": [{"id": "a@example.com", "properties": {"n": 5}}]}, "5 is not of type 'string'"),
    ]
    for body, detail in cases:
        answer = post.post("/crm/v3/objects/contacts/batch/upsert", json=body)
        assert answer.status_code == 400, body
        error = answer.json()
        assert error["category"] == "VALIDATION_ERROR" and error["status"] == "error" and error["correlationId"]
        assert error["message"].startswith("Invalid input JSON on line 1") and detail in error["message"]
    garbled = post.post("/crm/v3/objects/contacts/batch/upsert", content=b'{"inputs": [', headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400 and "line 1, column 13" in garbled.json()["message"]
    bad_param = post.get("/crm/v3/objects/contacts", params={"limit": "lots"})
    assert bad_param.status_code == 400 and "limit" in bad_param.json()["message"]
    as_text = post.post(
        "/crm/v3/lists", content=b'{"name": "L", "objectTypeId": "0-1", "processingType": "MANUAL"}', headers={"Content-Type": "text/plain"}
    )
    assert as_text.status_code == 400 and "mimetype" in as_text.json()["message"]
    assert len(emu.invalid_requests) == 6
    assert post.post("/crm/v3/objects/contacts/batch/nope", json={}).status_code == 404
    assert post.get("/crm/v3/objects/contacts/batch/upsert").status_code == 405


def test_compiled_checks_agree_with_openapi_core_on_mutated_bodies(emu: HubSpotEmulator) -> None:
    good = {
        "/crm/v3/objects/contacts/batch/upsert": {"inputs": [{"id": "a@example.com", "idProperty": "email", "properties": {"a": "1"}}]},
        "/crm/v3/objects/companies/batch/create": {"inputs": [{"properties": {"name": "A"}, "objectWriteTraceId": "t"}]},
        "/crm/v3/objects/contacts/batch/read": {
            "inputs": [{"id": "1"}],
            "properties": ["email"],
            "propertiesWithHistory": [],
            "idProperty": "email",
        },
        "/crm/v3/lists": {"name": "L", "objectTypeId": "0-1", "processingType": "MANUAL", "listFolderId": 3},
    }

    def mutations(value: Any) -> Iterator[Any]:
        yield None
        yield [value]
        yield "text"
        yield 2**40
        if isinstance(value, dict):
            for key in value:
                yield {k: v for k, v in value.items() if k != key}
                for sub in mutations(value[key]):
                    yield {**value, key: sub}
        if isinstance(value, list) and value:
            yield []
            for sub in mutations(value[0]):
                yield [sub]

    checked = 0
    with httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for path, body in good.items():
            for mutated in mutations(body):
                http.post(path, json=mutated)
                checked += 1
    assert checked > 100
    assert emu.validator_disagreements == []  # "both" mode compared every one of them


def test_a_batch_read_without_properties_with_history_is_refused(client: HubSpot, emu: HubSpotEmulator) -> None:
    """HubSpot's published documents require `propertiesWithHistory` in a batch read; the SDK's
    model leaves it out unless it is given."""
    api = client.crm.contacts.batch_api
    with pytest.raises(ApiException) as refused:
        api.read(BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id="1")], properties=["email"]))
    assert refused.value.status == 400 and "propertiesWithHistory" in refused.value.body
    assert json.loads(refused.value.body)["category"] == "VALIDATION_ERROR"
    assert [i.path for i in emu.invalid_requests] == ["/crm/v3/objects/contacts/batch/read"]
    emu.invalid_requests.clear()  # the one invalid request was this test's own
    read = api.read(
        BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id="1")], properties=["email"], properties_with_history=[])
    )
    assert read.results == []
