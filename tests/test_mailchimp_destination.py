"""Mailchimp, end to end: the real CLI, a real DuckDB warehouse, the official SDK
(mailchimp-marketing) over real HTTP to the local Mailchimp emulator."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mailchimp_marketing")

from conftest import Project  # noqa: E402

from activation.destinations.base import DestinationError, RowOp, SyncTarget  # noqa: E402
from activation.destinations.mailchimp.destination import MailchimpDestination  # noqa: E402
from activation.destinations.mailchimp.spec import MailchimpDestinationSpec  # noqa: E402
from activation_emulators.mailchimp import MailchimpEmulator  # noqa: E402
from activation_emulators.webhook import WebhookReceiver  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef-us1"

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'First' || i AS first_name, 'Last' || i AS last_name,
       'person' || i || '@example.com' AS email,
       ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
       CAST(i * 50 AS DECIMAL(12, 2)) AS ltv,
       TIMESTAMP '2026-05-01 12:00:00' + INTERVAL (i) DAY AS signed_up,
       '1990-03-' || lpad(CAST(1 + i % 28 AS VARCHAR), 2, '0') AS birthday
FROM range({n}) t(i);
"""

YAML = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
entities:
  person: {{table: src.people, key: user_id}}
audiences:
  vips: {{entity: person, where: "ltv >= 1000"}}
destinations:
  mc:
    type: mailchimp
    api_key: "${{MAILCHIMP_API_KEY}}"
    base_url: "${{MAILCHIMP_URL}}"
    list_name: Customers
    max_retries: 3{extra}
syncs:
  members:
    from: person
    to: mc
    mode: {mode}
    match: {{email_address: email}}
    fields: {{FNAME: first_name, LNAME: last_name, PLAN: plan, LTV: ltv, SIGNUP: signed_up, BIRTHDAY: birthday{more}}}
  vips_tag:
    from: vips
    to: mc
    mode: audience
    audience: VIP
    match: {{email_address: email}}
    fields: {{FNAME: first_name}}
"""


@dataclass
class McProject(Project):
    emu: MailchimpEmulator = field(default=None)  # type: ignore[assignment]
    list_id: str = ""

    @property
    def key(self) -> str:
        return self.env["MAILCHIMP_API_KEY"]

    @key.setter
    def key(self, value: str) -> None:
        self.env["MAILCHIMP_API_KEY"] = value

    def members(self, **kw: bool) -> dict[str, dict[str, Any]]:
        return self.emu.members(self.list_id, **kw)

    def batches(self, since: int = 0) -> list[list[dict[str, Any]]]:
        """The member arrays of every batch subscribe call."""
        return [r.body["members"] for r in self.emu.request_log[since:] if r.method == "POST" and r.path == f"/3.0/lists/{self.list_id}"]

    def rejected(self, sync: str) -> dict[str, str]:
        status = self.json("status", expect=None)
        return {e["row_key"]: e["reason"] for s in status["syncs"] if s["sync"] == sync for e in s["rejected_rows"]}


@pytest.fixture
def emu() -> Iterator[MailchimpEmulator]:
    with MailchimpEmulator(api_keys={KEY}) as e:
        yield e


def make(
    tmp_path: Path, emu: MailchimpEmulator, rx: WebhookReceiver, *, n: int = 30, mode: str = "upsert", extra: str = "", more: str = ""
) -> McProject:
    list_id = emu.create_list("Customers")
    for tag, type_ in (("PLAN", "dropdown"), ("LTV", "number"), ("SIGNUP", "date")):
        emu.add_merge_field(
            list_id, tag, type_, options={"choices": ["free", "pro", "enterprise", "team"]} if type_ == "dropdown" else None
        )
    root = tmp_path / "proj"
    root.mkdir()
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML.format(mode=mode, extra=extra, more=more)))
    p = McProject(root, rx, env={"MAILCHIMP_API_KEY": KEY, "MAILCHIMP_URL": emu.url}, emu=emu, list_id=list_id)
    p.sql(PEOPLE_SQL.format(n=n))
    return p


def test_first_run_adds_every_member_unchanged_run_sends_nothing_changed_rows_send_changed_fields(
    tmp_path: Path, rx: WebhookReceiver, emu: MailchimpEmulator
) -> None:
    p = make(tmp_path, emu, rx, n=1203)
    result = p.json("run", "members")["syncs"][0]
    assert (result["status"], result["acknowledged"]) == ("success", 1203)
    assert [len(b) for b in p.batches()] == [500, 500, 203], "at most 500 members per call"
    members = p.members()
    assert len(members) == 1203
    m7 = members["person7@example.com"]
    assert m7["status"] == "subscribed"
    assert m7["merge_fields"] == {
        "FNAME": "First7",
        "LNAME": "Last7",
        "PLAN": "pro",
        "LTV": 350,
        "SIGNUP": "2026-05-08",
        "BIRTHDAY": "03/08",
        "ADDRESS": "",
        "PHONE": "",
    }
    assert result["destination_report"]["details"] == {"list_id": p.list_id, "created": 1203}

    before = emu.request_count
    assert p.json("run", "members")["syncs"][0]["status"] == "up_to_date"
    assert emu.request_count == before, "an unchanged run makes no API call"

    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id IN ('u0001', 'u0002')")
    p.cli("run", "members")
    [batch] = p.batches(before)
    assert sorted((m["email_address"], m["merge_fields"]) for m in batch) == [
        ("person1@example.com", {"PLAN": "team"}),
        ("person2@example.com", {"PLAN": "team"}),
    ]
    assert p.members()["person1@example.com"]["merge_fields"]["FNAME"] == "First1"


@pytest.mark.parametrize("on_remove, status", [("archive", "archived"), ("unsubscribe", "unsubscribed")])
def test_mirror_removes_rows_that_left_per_on_remove(
    tmp_path: Path, rx: WebhookReceiver, emu: MailchimpEmulator, on_remove: str, status: str
) -> None:
    p = make(tmp_path, emu, rx, mode="mirror", extra=f"\n    on_remove: {on_remove}")
    p.cli("run", "members")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0003', 'u0004')")
    p.sql("UPDATE src.people SET email = 'renamed9@example.com' WHERE user_id = 'u0009'")  # an identity change
    result = p.json("run", "members")["syncs"][0]
    assert (result["status"], result["plan"]["counts"]["removed"], result["plan"]["counts"]["changed"]) == ("success", 2, 1)
    everyone = p.members(archived=True)
    gone = {"person3@example.com", "person4@example.com", "person9@example.com"}
    assert {e for e, m in everyone.items() if m["status"] == status} == gone
    assert everyone["renamed9@example.com"]["status"] == "subscribed"
    assert everyone["renamed9@example.com"]["merge_fields"]["FNAME"] == "First9"
    assert p.json("run", "members")["syncs"][0]["status"] == "up_to_date"


def test_audience_tags_entering_members_and_untags_leaving_ones(tmp_path: Path, rx: WebhookReceiver, emu: MailchimpEmulator) -> None:
    p = make(tmp_path, emu, rx)
    result = p.json("run", "vips_tag")["syncs"][0]
    vips = {f"person{i}@example.com" for i in range(20, 30)}  # ltv = 50 * i >= 1000
    assert emu.tag_members(p.list_id, "VIP") == vips
    assert set(p.members()) == vips and p.members()["person25@example.com"]["merge_fields"]["FNAME"] == "First25"
    assert result["destination_report"]["details"]["tagged"] == 10
    tag_calls = [r for r in emu.request_log if "/segments/" in r.path]
    assert len(tag_calls) == 1 and len(tag_calls[0].body["members_to_add"]) == 10

    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0020', 'u0021')")
    p.sql("UPDATE src.people SET ltv = 5000 WHERE user_id = 'u0005'")
    p.sql("UPDATE src.people SET email = 'vip27@example.org' WHERE user_id = 'u0027'")
    before = emu.request_count
    result = p.json("run", "vips_tag")["syncs"][0]
    counts = result["plan"]["counts"]
    assert (counts["added"], counts["removed"], counts["changed"]) == (1, 2, 1)
    want = vips - {"person20@example.com", "person21@example.com", "person27@example.com"} | {"person5@example.com", "vip27@example.org"}
    assert emu.tag_members(p.list_id, "VIP") == want
    assert p.members()["person20@example.com"]["status"] == "subscribed", "untag only: the member stays on the list"
    # members who enter are tagged while rows are written; those who leave are untagged when the
    # run releases what no row holds any more (the old email of u0027 among them)
    tag_calls = [r for r in emu.request_log[before:] if "/segments/" in r.path]
    assert sorted(e for r in tag_calls for e in r.body.get("members_to_add", [])) == ["person5@example.com", "vip27@example.org"]
    assert sorted(e for r in tag_calls for e in r.body.get("members_to_remove", [])) == [
        "person20@example.com",
        "person21@example.com",
        "person27@example.com",
    ]


def test_per_member_errors_reject_exactly_those_rows_and_are_retried(tmp_path: Path, rx: WebhookReceiver, emu: MailchimpEmulator) -> None:
    p = make(tmp_path, emu, rx)
    emu.add_member(p.list_id, "person5@example.com", "unsubscribed")  # unsubscribed in Mailchimp, before our first sync
    p.sql("UPDATE src.people SET email = 'not-an-email' WHERE user_id = 'u0004'")
    p.sql("UPDATE src.people SET birthday = 'someday' WHERE user_id = 'u0006'")
    p.sql("UPDATE src.people SET plan = 'gold' WHERE user_id = 'u0007'")
    result = p.json("run", "members", expect=1)["syncs"][0]
    assert (result["status"], result["acknowledged"], result["rejected_by_destination"]) == ("partial", 26, 4)
    assert p.rejected("members") == {
        "u0004": "not-an-email looks fake or invalid, please enter a real email address. "
        "(email_address: Please provide a valid email address.)",
        # the state keeps no email address: Mailchimp's message names the member, the key names the row
        "u0005": "<email> is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
        "u0006": "Your merge fields were invalid. (BIRTHDAY: Please enter a month (01-12) and a day (01-31) separated by a slash.)",
        "u0007": "Your merge fields were invalid. (PLAN: Please choose one of the options.)",
    }
    assert len([e for e, m in p.members().items() if m["status"] == "subscribed"]) == 26
    assert "compliance state" in p.cli("status", expect=1).stdout

    p.sql("UPDATE src.people SET email = 'fixed4@example.com' WHERE user_id = 'u0004'")
    p.sql("UPDATE src.people SET birthday = '1990-01-01', plan = 'pro' WHERE user_id IN ('u0006', 'u0007')")
    before = emu.request_count
    result = p.json("run", "members", expect=1)["syncs"][0]
    assert (result["sent"], result["acknowledged"]) == (4, 3), "only the rejected rows are sent again"
    assert sum(len(b) for b in p.batches(before)) == 4
    assert p.rejected("members").keys() == {"u0005"}, "an unsubscribed contact is never resubscribed"
    assert p.members()["person5@example.com"]["status"] == "unsubscribed"


def test_429_5xx_and_dropped_answers_are_retried(tmp_path: Path, rx: WebhookReceiver, emu: MailchimpEmulator) -> None:
    p = make(tmp_path, emu, rx, n=12)
    emu.faults.inject("throttle", match=f"POST /3.0/lists/{p.list_id}")
    emu.faults.inject("error", status=503, match=f"POST /3.0/lists/{p.list_id}")
    emu.faults.inject("drop_after", match=f"POST /3.0/lists/{p.list_id}")  # applied, but the answer is lost
    result = p.json("run", "members")["syncs"][0]
    assert (result["status"], result["acknowledged"]) == ("success", 12)
    report = result["destination_report"]
    assert (report["throttled"], report["retries"]) == (1, 3)
    assert [r.status for r in emu.request_log if r.method == "POST"] == [429, 503, 200, 200]
    assert len(p.members()) == 12
    assert p.json("history", "members")["runs"][0]["details"]["throttled"] == 1


def test_bad_key_stops_the_sync_and_validate_remote_checks_list_and_merge_fields(
    tmp_path: Path, rx: WebhookReceiver, emu: MailchimpEmulator
) -> None:
    p = make(tmp_path, emu, rx, more=", SHOE: plan")
    out = p.cli("validate", "--remote", expect=2).output
    assert "the Mailchimp audience has no merge field 'SHOE'" in out and "FNAME, LNAME" in out
    emu.add_merge_field(p.list_id, "SHOE", "text")
    emu.add_merge_field(p.list_id, "COMPANY", "text", required=True)
    out = p.cli("validate", "--remote", expect=2).output
    assert "merge field 'COMPANY' is required" in out and "SHOE" not in out

    p.key = "ffffffffffffffffffffffffffffffff-us1"
    result = p.json("run", "members", expect=1)["syncs"][0]
    assert result["status"] == "failed" and "API Key Invalid" in result["error"] and p.key not in result["error"]
    assert p.members() == {}
    out = p.cli("validate", "--remote", expect=2).output
    assert "Mailchimp refused the API key (401 API Key Invalid" in out and p.key not in out


# ---------------------------------------------------------------- the destination alone


def destination(emu: MailchimpEmulator, list_id: str, sleeps: list[float] | None = None, **spec: Any) -> MailchimpDestination:
    spec = {"type": "mailchimp", "api_key": KEY, "base_url": emu.url, "list_id": list_id, **spec}
    return MailchimpDestination("mc", MailchimpDestinationSpec(**spec), ".", sleep=(sleeps if sleeps is not None else []).append)


def target(mode: str = "upsert", fields: tuple[str, ...] = ("FNAME",), **kw: Any) -> SyncTarget:
    return SyncTarget(sync="s", mode=mode, match_fields=["email_address"], fields=list(fields), **kw)


def upsert(email: str, **values: Any) -> RowOp:
    return RowOp("upsert", email.split("@")[0], {"email_address": email, "FNAME": "F", **values})


def test_pending_and_transactional_never_change_an_existing_members_status(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("L")
    emu.add_member(list_id, "was-subscribed@x.io", "subscribed")
    emu.add_member(list_id, "was-unsubscribed@x.io", "unsubscribed")
    dest = destination(emu, list_id, status_if_new="pending", concurrency=3)
    results = dest.push(target(), [upsert("new@x.io"), upsert("was-subscribed@x.io"), upsert("was-unsubscribed@x.io", FNAME="U")])
    assert all(r.ok for r in results)
    members = emu.members(list_id)
    assert {e: m["status"] for e, m in members.items()} == {
        "new@x.io": "pending",
        "was-subscribed@x.io": "subscribed",
        "was-unsubscribed@x.io": "unsubscribed",
    }
    assert members["was-unsubscribed@x.io"]["merge_fields"]["FNAME"] == "U"
    assert {r.method for r in emu.request_log if "/members/" in r.path} == {"PUT"}
    emu.forget(list_id, "new@x.io")
    [r] = dest.push(target(), [upsert("new@x.io")])
    assert not r.ok and "was permanently deleted and cannot be re-imported" in (r.error or "")


def test_concurrency_stays_within_the_connection_limit_and_429s_are_retried(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("L")
    emu.connection_limit, emu.latency = 2, 0.02
    ops = [upsert(f"p{i}@x.io") for i in range(12)]
    dest = destination(emu, list_id, status_if_new="transactional", concurrency=2)
    assert all(r.ok for r in dest.push(target(), ops))
    assert emu.throttled == 0 and dest.report().throttled == 0 and emu.max_inflight == 2
    over = destination(emu, list_id, status_if_new="transactional", concurrency=6, max_retries=10)
    assert all(r.ok for r in over.push(target(), [upsert(f"q{i}@x.io") for i in range(12)]))
    report = over.report()
    assert report.throttled == emu.throttled, "every 429 is counted, and retried"
    if report.throttled:  # (the threads race: how many 429s is not fixed; that each costs a slot is)
        assert report.details["concurrency_lowered_to"] == max(1, 6 - report.throttled)
    assert len(emu.members(list_id)) == 24


def test_retries_are_bounded_and_a_bad_key_is_not_retried(emu: MailchimpEmulator) -> None:
    list_id = emu.create_list("L")
    sleeps: list[float] = []
    dest = destination(emu, list_id, sleeps, max_retries=2)
    emu.faults.inject("error", n=3, status=500, match=f"POST /3.0/lists/{list_id}")
    with pytest.raises(DestinationError, match="still failing after 2 retries: HTTP 500 Internal Server Error") as err:
        dest.push(target(), [upsert("a@x.io")])
    assert err.value.retryable and len(sleeps) == 2 and 0 < sleeps[0] < sleeps[1]
    assert emu.members(list_id) == {}
    emu.faults.inject("timeout", seconds=3.0, match=f"POST /3.0/lists/{list_id}")
    quick = destination(emu, list_id, sleeps, timeout_seconds=1.0)  # generous: the machine may be busy
    assert quick.push(target(), [upsert("a@x.io")])[0].ok, "a timed-out call is retried"
    bad = destination(emu, list_id, sleeps, api_key="0" * 32 + "-us7")
    before = emu.request_count
    with pytest.raises(DestinationError, match="401 API Key Invalid") as err:
        bad.push(target(), [upsert("b@x.io")])
    assert not err.value.retryable and emu.request_count == before + 1


def test_batch_size_is_capped_and_config_is_checked(emu: MailchimpEmulator) -> None:
    dest = destination(emu, "abc")
    assert dest.batch_size(None) == 500 and dest.batch_size(10_000) == 500 and dest.batch_size(50) == 50
    with pytest.raises(Exception, match="at most 500|less than or equal to 500"):
        MailchimpDestinationSpec(type="mailchimp", list_id="x", batch_size=501)
    with pytest.raises(Exception, match="exactly one of `list_id` or `list_name`"):
        MailchimpDestinationSpec(type="mailchimp")
    for bad, message in (
        (target(fields=("first_name",)), "merge tags"),
        (SyncTarget(sync="s", mode="upsert", match_fields=["email"]), "email_address"),
        (target(mode="audience"), "needs `audience:`"),
        (target(mode="insert"), "does not support mode 'insert'"),
    ):
        with pytest.raises(Exception, match=message):
            dest.check_target(bad)
    with pytest.raises(Exception, match="needs mode: audience"):
        destination(emu, "abc", on_remove="untag").check_target(target(mode="mirror"))
    missing = destination(emu, "nope")
    with pytest.raises(DestinationError, match="no audience with list id 'nope'"):
        missing.push(target(), [upsert("a@x.io")])


def test_connection_slots_give_one_up_per_429_and_earn_it_back() -> None:
    from activation.destinations.mailchimp.api import Slots

    slots = Slots(4, regain_after=3)
    for _ in range(5):
        slots.throttled()
    assert (slots.limit, slots.lowest) == (1, 1), "never below one"
    for _ in range(7):
        with slots:
            slots.succeeded()
    assert (slots.limit, slots.lowest, slots.ceiling) == (3, 1, 4)


def test_validate_remote_lists_the_audiences_when_the_configured_one_is_missing(emu: MailchimpEmulator) -> None:
    emu.create_list("Customers", "c0ffee0001")
    dest = destination(emu, "nope")
    assert dest.check_remote(target()) == ["Mailchimp has no audience with list id 'nope' (audiences: 'Customers' (c0ffee0001))"]
    by_name = MailchimpDestination(
        "mc", MailchimpDestinationSpec(type="mailchimp", api_key=KEY, base_url=emu.url, list_name="Customers"), "."
    )
    assert by_name.check_remote(target(fields=("FNAME", "NOPE"))) == [
        "the Mailchimp audience has no merge field 'NOPE' (merge fields: FNAME, LNAME, ADDRESS, PHONE, BIRTHDAY)"
    ]


def test_a_refusal_answering_a_retry_after_a_lost_answer_leaves_the_member_possibly_delivered(
    tmp_path: Path, rx: WebhookReceiver, emu: MailchimpEmulator
) -> None:
    """The first attempt was applied and its answer lost; the retry's per-member errors may be
    Mailchimp's view of that first write, so those rows are not taken as refused: they stay
    possibly delivered (resent next run, when a clean answer decides)."""
    p = make(tmp_path, emu, rx, n=6)
    p.sql("UPDATE src.people SET plan = 'gold' WHERE user_id = 'u0002'")  # refused on every attempt
    emu.faults.inject("drop_after", match=f"POST /3.0/lists/{p.list_id}")
    result = p.json("run", "members", expect=1)["syncs"][0]
    assert (result["status"], result["acknowledged"], result["rejected_by_destination"], result["unconfirmed"]) == ("partial", 5, 0, 1), (
        result
    )
    assert "PLAN: Please choose one of the options." in p.rejected("members")["u0002"]  # shown, as unknown

    result = p.json("run", "members", expect=1)["syncs"][0]  # a clean answer: now it is refused
    assert (result["sent"], result["rejected_by_destination"], result["unconfirmed"]) == (1, 1, 0), result
    assert "PLAN: Please choose one of the options." in p.rejected("members")["u0002"]
    assert len(p.members()) == 5
