"""The Mailchimp emulator through the official SDK over real HTTP: Mailchimp's paths, payloads,
limits, rules and error shapes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("mailchimp_marketing")

from mailchimp_marketing import Client  # noqa: E402
from mailchimp_marketing.api_client import ApiClientError  # noqa: E402

from activation_emulators.mailchimp import MailchimpEmulator, subscriber_hash  # noqa: E402
from activation_emulators.mailchimp.cli import main  # noqa: E402


@pytest.fixture
def emu() -> Iterator[MailchimpEmulator]:
    with MailchimpEmulator() as e:
        yield e


def client(emu: MailchimpEmulator, key: str | None = None) -> Any:
    c = Client()
    c.set_config({"api_key": key or emu.api_key, "server": emu.dc})
    c.api_client.host = emu.url
    return c


def problem(call: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiClientError) as err:
        call(*args, **kwargs)
    doc = json.loads(err.value.text)  # problem+json reaches the SDK's caller as text
    assert set(doc) >= {"type", "title", "status", "detail", "instance"} and doc["status"] == err.value.status_code
    return err.value.status_code, doc


def test_batch_subscribe_answers_200_with_per_member_errors(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("News")
    emu.add_merge_field(list_id, "SEATS", "number")
    emu.add_merge_field(list_id, "SIGNUP", "date")
    lists = client(emu).lists
    reply = lists.batch_list_members(
        list_id,
        {
            "update_existing": True,
            "members": [
                {"email_address": "a@x.io", "status": "subscribed", "merge_fields": {"FNAME": "A", "SEATS": 3, "SIGNUP": "2026-01-31"}},
                {"email_address": "b@x.io", "status": "subscribed", "merge_fields": {"SEATS": "many"}},
                {"email_address": "c@x.io", "status": "subscribed", "merge_fields": {"SIGNUP": "2026-02-30"}},
                {"email_address": "nope", "status": "subscribed"},
                {"email_address": "d@x.io", "status": "sleepy"},
            ],
        },
    )
    assert (reply["total_created"], reply["total_updated"], reply["error_count"]) == (1, 0, 4)
    assert [m["email_address"] for m in reply["new_members"]] == ["a@x.io"]
    assert {e["email_address"]: (e["error_code"], e["field"], e["field_message"]) for e in reply["errors"]} == {
        "b@x.io": ("ERROR_GENERIC", "SEATS", "Please enter a number"),
        "c@x.io": ("ERROR_GENERIC", "SIGNUP", "Please enter the date"),
        "nope": ("ERROR_GENERIC", "email_address", "Please provide a valid email address."),
        "d@x.io": ("ERROR_GENERIC", "status", "Value is not one of: subscribed, unsubscribed, cleaned, pending, transactional"),
    }
    member = lists.get_list_member(list_id, subscriber_hash("A@X.io"))
    assert (member["id"], member["status"], member["merge_fields"]["SEATS"], member["merge_fields"]["LNAME"]) == (
        subscriber_hash("a@x.io"),
        "subscribed",
        3,
        "",
    )
    # without update_existing an existing member is an error; with it, merge fields merge
    again = lists.batch_list_members(list_id, {"members": [{"email_address": "a@x.io", "status": "subscribed"}]})
    assert again["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS" and "already a list member" in again["errors"][0]["error"]
    update = lists.batch_list_members(
        list_id, {"update_existing": True, "members": [{"email_address": "a@x.io", "status": "subscribed", "merge_fields": {"SEATS": 4}}]}
    )
    assert update["total_updated"] == 1 and emu.members(list_id)["a@x.io"]["merge_fields"] == {
        "FNAME": "A",
        "LNAME": "",
        "ADDRESS": "",
        "PHONE": "",
        "BIRTHDAY": "",
        "SEATS": 4,
        "SIGNUP": "2026-01-31",
    }


def test_more_than_500_members_is_refused_whole(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("News")
    members = [{"email_address": f"p{i}@x.io", "status": "subscribed"} for i in range(501)]
    status, doc = problem(client(emu).lists.batch_list_members, list_id, {"members": members})
    assert (status, doc["title"]) == (400, "Invalid Resource") and "500" in doc["errors"][0]["message"]
    assert emu.members(list_id) == {}
    assert client(emu).lists.batch_list_members(list_id, {"members": members[:500]})["total_created"] == 500


def test_unsubscribed_cleaned_and_deleted_members_are_never_subscribed_again(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("News")
    for email, status in (
        ("u@x.io", "unsubscribed"),
        ("c@x.io", "cleaned"),
        ("s@x.io", "subscribed"),
        ("f@x.io", "subscribed"),
        ("arch@x.io", "subscribed"),
    ):
        emu.add_member(list_id, email, status)
    emu.forget(list_id, "f@x.io")
    lists = client(emu).lists
    lists.delete_list_member(list_id, subscriber_hash("arch@x.io"))  # archive: 204, comes back when re-added
    assert "arch@x.io" not in emu.members(list_id) and emu.members(list_id, archived=True)["arch@x.io"]["status"] == "archived"
    body = {
        "update_existing": True,
        "members": [{"email_address": e, "status": "subscribed"} for e in ("u@x.io", "c@x.io", "s@x.io", "f@x.io", "arch@x.io")],
    }
    reply = lists.batch_list_members(list_id, body)
    errors = {e["email_address"]: e["error"] for e in reply["errors"]}
    assert set(errors) == {"u@x.io", "c@x.io", "f@x.io"}
    assert "is in a compliance state due to unsubscribe, bounce, or compliance review" in errors["u@x.io"]
    assert "was permanently deleted and cannot be re-imported" in errors["f@x.io"]
    assert emu.members(list_id)["arch@x.io"]["status"] == "subscribed"
    status, doc = problem(lists.update_list_member, list_id, subscriber_hash("u@x.io"), {"status": "subscribed"})
    assert (status, doc["title"]) == (400, "Member In Compliance State")
    # PUT with status_if_new leaves an existing member's status alone, and can unsubscribe
    lists.set_list_member(
        list_id, subscriber_hash("u@x.io"), {"email_address": "u@x.io", "status_if_new": "subscribed", "merge_fields": {"FNAME": "U"}}
    )
    assert emu.members(list_id)["u@x.io"]["status"] == "unsubscribed"
    lists.update_list_member(list_id, subscriber_hash("s@x.io"), {"status": "unsubscribed"})
    assert emu.members(list_id)["s@x.io"]["status"] == "unsubscribed"
    assert problem(lists.update_list_member, list_id, subscriber_hash("ghost@x.io"), {"status": "unsubscribed"})[0] == 404
    assert problem(lists.delete_list_member, list_id, subscriber_hash("arch@x.io") + "0")[0] == 404


def test_tags_are_static_segments(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("News")
    for e in ("a@x.io", "b@x.io", "c@x.io"):
        emu.add_member(list_id, e)
    lists = client(emu).lists
    seg = lists.create_segment(list_id, {"name": "VIP", "static_segment": []})
    reply = lists.batch_segment_members({"members_to_add": ["a@x.io", "b@x.io", "ghost@x.io"], "members_to_remove": []}, list_id, seg["id"])
    assert (reply["total_added"], reply["errors"]) == (
        2,
        [{"email_addresses": ["ghost@x.io"], "error": "Email addresses were not found in the list"}],
    )
    lists.update_list_member_tags(
        list_id, subscriber_hash("c@x.io"), {"tags": [{"name": "VIP", "status": "active"}, {"name": "New", "status": "active"}]}
    )
    lists.update_list_member_tags(list_id, subscriber_hash("a@x.io"), {"tags": [{"name": "VIP", "status": "inactive"}]})
    assert emu.tag_members(list_id, "VIP") == {"b@x.io", "c@x.io"} and emu.tag_members(list_id, "New") == {"c@x.io"}
    assert [t["name"] for t in lists.get_list_member_tags(list_id, subscriber_hash("c@x.io"))["tags"]] == ["VIP", "New"]
    assert [s["name"] for s in lists.list_segments(list_id, type="static")["segments"]] == ["VIP", "New"]
    status, doc = problem(lists.batch_segment_members, {"members_to_add": [f"p{i}@x.io" for i in range(501)]}, list_id, seg["id"])
    assert status == 400 and "500" in doc["errors"][0]["message"]
    assert problem(lists.create_segment, list_id, {"name": "VIP", "static_segment": []})[0] == 400


def test_auth_merge_fields_lists_and_faults_in_mailchimps_shapes(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("News")
    c = client(emu)
    assert c.ping.get() == {"health_status": "Everything's Chimpy!"}
    assert [a["name"] for a in c.lists.get_all_lists(count=1000)["lists"]] == ["News"]
    assert [f["tag"] for f in c.lists.get_list_merge_fields(list_id)["merge_fields"]] == ["FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"]
    c.lists.add_list_merge_field(list_id, {"tag": "PLAN", "name": "Plan", "type": "dropdown", "options": {"choices": ["a", "b"]}})
    assert problem(c.lists.add_list_merge_field, list_id, {"tag": "PLAN", "type": "text"})[0] == 400
    status, doc = problem(c.lists.get_list, "nope")
    assert (status, doc["title"], doc["type"]) == (404, "Resource Not Found", "https://mailchimp.com/developer/marketing/docs/errors/")
    status, doc = problem(client(emu, "0" * 32 + "-us9").ping.get)  # a key of another data center
    assert (status, doc["title"]) == (401, "API Key Invalid")
    anonymous = Client()
    anonymous.api_client.host = emu.url
    status, doc = problem(anonymous.ping.get)
    assert (status, doc["title"]) == (401, "API Key Missing")
    emu.faults.inject("error", status=503)
    status, doc = problem(c.ping.get)
    assert (status, doc["title"]) == (503, "Service Unavailable")
    assert [r.status for r in emu.request_log][-3:] == [401, 401, 503]


def test_more_simultaneous_connections_than_the_limit_get_429(emu: MailchimpEmulator) -> None:
    emu.connection_limit, emu.latency = 1, 0.5
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def ping() -> None:
        barrier.wait()
        try:
            client(emu).ping.get()
            statuses.append(200)
        except ApiClientError as e:
            statuses.append(e.status_code)
            assert "simultaneous connections" in json.loads(e.text)["detail"]

    threads = [threading.Thread(target=ping) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 429] and emu.throttled == 1 and emu.max_inflight == 1


def test_command_line_serves_until_stopped(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def serve(self: MailchimpEmulator, banner: str) -> None:
        with self:
            print(banner.format(url=self.url))
            assert client(self, "k-us1").lists.get_all_lists()["total_items"] == 1
            assert [f["tag"] for f in client(self, "k-us1").lists.get_list_merge_fields(next(iter(self.lists())))["merge_fields"]][
                -1
            ] == "PLAN"

    monkeypatch.setattr(MailchimpEmulator, "serve_until_signal", serve)
    assert main(["--port", "0", "--list", "Newsletter", "--merge-field", "PLAN"]) == 0
    out = capsys.readouterr().out
    assert "audience 'Newsletter': list id" in out and "Mailchimp emulator on http://127.0.0.1:" in out
