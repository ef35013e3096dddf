"""Rows a destination applied but never acknowledged (the answer was lost, the run failed or
was killed): the next run does not know their record ids. Found by the soak: such a row whose
match value then changed, or which then left the model, must still end with exactly one
record (or none), found by its last delivered identity, never a duplicate or an orphan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, make_project

from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.salesforce import Field, SalesforceEmulator
from activation_emulators.webhook import WebhookReceiver

DESTINATIONS = """\
  hs: {type: hubspot, token: tok, base_url: "${HUBSPOT_URL}", requests_per_second: 500, max_retries: 0}
  sf:
    type: salesforce
    instance_url: "https://${SF_INSTANCE}"
    session_id: "${SF_TOKEN}"
    transport_url: "${SF_URL}"
    bulk_poll_seconds: 0.01
    max_retries: 0
"""
SYNCS = """\
  users_to_hs: {from: user, to: hs, object: contacts, mode: mirror, match: {email: email}, fields: {jobtitle: plan}}
  whales_to_hs: {from: whales, to: hs, object: contacts, mode: audience, audience: Whales, match: {email: email}}
  users_to_sf: {from: user, to: sf, object: Contact, mode: mirror, match: {Email_Key__c: email}, fields: {LastName: plan, Email: email}}
  whales_to_sf: {from: whales, to: sf, object: Contact, mode: audience, audience: Whales, match: {Email: email}}
"""


@pytest.fixture
def hs() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(tokens={"tok"}) as e:
        yield e


@pytest.fixture
def sf() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as e:
        e.add_field("Contact", Field("Email_Key__c", external_id=True, unique=True))
        yield e


@pytest.fixture
def p(tmp_path: Path, rx: WebhookReceiver, hs: HubSpotEmulator, sf: SalesforceEmulator) -> Project:
    proj = make_project(tmp_path / "p", rx, n=40, orders=160)
    text = (proj.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:\n" + DESTINATIONS, 1)
    (proj.root / "syncs.yaml").write_text(text + SYNCS)
    proj.env = {"HUBSPOT_URL": hs.url, "SF_INSTANCE": sf.instance, "SF_TOKEN": sf.token, "SF_URL": sf.url}
    return proj


def hs_contacts(hs: HubSpotEmulator) -> dict[str, str]:
    return {r["email"]: r.get("jobtitle", "") for r in hs.records("contacts").values()}


def hs_members(hs: HubSpotEmulator) -> set[str]:
    [list_id] = hs.lists()
    records = hs.records("contacts")
    return {records[m]["email"] for m in hs.list_members(list_id)}


def sf_contacts(sf: SalesforceEmulator) -> dict[str, str]:
    return {r["Email_Key__c"]: r["LastName"] for r in sf.records("Contact").values()}


def sf_members(sf: SalesforceEmulator) -> set[str]:
    contacts = sf.records("Contact")
    return {contacts[m["ContactId"]]["Email"] for m in sf.records("CampaignMember").values()}


def test_a_record_delivered_without_acknowledgement_is_renamed_not_duplicated(
    p: Project, hs: HubSpotEmulator, sf: SalesforceEmulator
) -> None:
    hs.faults.inject("drop_after", match="/batch/upsert")  # HubSpot applies the batch; we never hear back
    sf.faults.inject("drop_after", match="/composite/sobjects")
    runs = p.json("run", "users_to_hs", "users_to_sf", expect=1)["syncs"]
    # HubSpot's rows are possibly delivered (the answer was lost); Salesforce fails the batch
    assert [r["status"] for r in runs] == ["partial", "failed"] and runs[0]["unconfirmed"] == 40
    assert len(hs_contacts(hs)) == len(sf_contacts(sf)) == 40  # applied all the same
    p.sql("UPDATE src.users SET email = 'renamed@example.com' WHERE user_id = 'u0003'")
    p.json("run", "users_to_hs", "users_to_sf")
    want = {v["email"]: v["plan"] for v in p.model_users().values()}
    assert hs_contacts(hs) == want and sf_contacts(sf) == want  # user3@example.com was renamed, not left behind


def test_members_added_without_acknowledgement_are_removed_when_they_leave(p: Project, hs: HubSpotEmulator, sf: SalesforceEmulator) -> None:
    p.json("run", "users_to_hs", "users_to_sf")
    hs.faults.inject("drop_after", n=1, match="/memberships/add-and-remove")  # max_retries 0: one attempt, its answer lost
    sf.faults.inject("drop_after", match="/composite/sobjects")
    runs = p.json("run", "whales_to_hs", "whales_to_sf", expect=1)["syncs"]
    assert hs.faults.pending == 0 and sf.faults.pending == 0, "each fault struck this run"
    # HubSpot's members are possibly added (the answer was lost); Salesforce fails the batch
    assert [r["status"] for r in runs] == ["partial", "failed"] and runs[0]["unconfirmed"] == len(p.model_whales())
    whales = {v["email"] for v in p.model_whales().values()}
    assert hs_members(hs) == sf_members(sf) == whales
    leaving = sorted(p.model_whales())[:3]
    p.sql(f"DELETE FROM src.orders WHERE user_id IN {tuple(leaving)}")
    p.json("run", "whales_to_hs", "whales_to_sf", "--allow-removal")
    whales = {v["email"] for v in p.model_whales().values()}
    assert len(whales) > 0 and hs_members(hs) == sf_members(sf) == whales


def test_an_audience_of_hundreds_is_read_and_changed_in_calls_of_at_most_100(tmp_path: Path, rx: WebhookReceiver) -> None:
    with HubSpotEmulator(tokens={"tok"}, log_bodies=True) as hs:
        p = make_project(tmp_path / "big", rx, n=360, orders=3600)
        text = (p.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:\n" + DESTINATIONS.splitlines()[0] + "\n", 1)
        (p.root / "syncs.yaml").write_text(text + "\n".join(SYNCS.splitlines()[:2]) + "\n")
        p.env = {"HUBSPOT_URL": hs.url}
        p.json("run", "users_to_hs", "whales_to_hs")
        assert hs_members(hs) == {v["email"] for v in p.model_whales().values()} and len(hs_members(hs)) > 250
        p.sql("DELETE FROM src.orders WHERE user_id < 'u0250'")  # 250 members leave, and are archived nowhere
        p.json("run", "whales_to_hs", "--allow-removal")
        assert hs_members(hs) == {v["email"] for v in p.model_whales().values()}
        batches = [r for r in hs.request_log if r.path.endswith(("/batch/read", "/batch/upsert", "/batch/archive"))]
        assert batches and max(len(r.body["inputs"]) for r in batches) <= 100
        assert hs.invalid_requests == []


def test_a_new_identity_sent_by_a_run_that_died_is_removed_with_the_old_one(tmp_path: Path, rx: WebhookReceiver) -> None:
    """Mailchimp changes a member's email in two calls (add the new member, archive the old).
    A run that stops between them leaves both live; when that row later leaves the model,
    both must go (the recovery keeps the old identity as a release, removed once no row maps to it)."""
    from test_mailchimp_destination import KEY, make

    with MailchimpEmulator(api_keys={KEY}) as emu:
        p = make(tmp_path, emu, rx, mode="mirror")
        p.json("run", "members")
        p.sql("UPDATE src.people SET email = 'moved@example.com' WHERE user_id = 'u0003'")
        emu.faults.inject("unauthorized", match="DELETE")  # the archive of person3@ stops the run
        assert p.json("run", "members", expect=1)["syncs"][0]["status"] == "failed"
        assert {"moved@example.com", "person3@example.com"} <= set(p.members())  # both live now
        p.sql("DELETE FROM src.people WHERE user_id = 'u0003'")
        p.json("run", "members")
        live = set(p.members())
        assert "moved@example.com" not in live and "person3@example.com" not in live
        assert live == {f"person{i}@example.com" for i in range(30) if i != 3}
        assert p.json("plan", "members")["plans"][0]["counts"]["removed"] == 0  # the old identity's release is done too


def test_nothing_is_released_when_the_identity_did_not_change(p: Project, hs: HubSpotEmulator) -> None:
    hs.faults.inject("drop_after", match="/batch/upsert")
    p.json("run", "users_to_hs", expect=1)
    p.sql("UPDATE src.users SET plan = 'team' WHERE user_id = 'u0001'")
    hs.faults.inject("drop_after", match="/batch/upsert")
    p.json("run", "users_to_hs", expect=1)  # u0001 in flight again, same email
    result = p.json("run", "users_to_hs")["syncs"][0]
    assert result["plan"]["counts"]["removed"] == 0  # u0001 still claims its email: nothing released
    assert hs_contacts(hs) == {v["email"]: v["plan"] for v in p.model_users().values()}


def test_a_removal_applied_without_acknowledgement_is_undone_when_the_row_returns(project: Project) -> None:
    """The vendor removed the member, the run never heard back; the member is back in the
    audience before the next run. Found by the soak (Google Ads, Salesforce campaigns): the
    row still looked delivered and unchanged, so it was never sent again."""
    project.cli("run", "whales_to_hook")
    whales = sorted(project.model_whales())
    leaving = whales[0]
    saved = project.sql(f"SELECT * FROM src.orders WHERE user_id = '{leaving}'")
    project.sql(f"DELETE FROM src.orders WHERE user_id = '{leaving}'")
    project.rx.faults.inject("drop_after", n=3)  # the removal is applied; every answer is lost
    assert project.json("run", "whales_to_hook", expect=1)["syncs"][0]["status"] == "failed"
    assert leaving not in project.rx.records("whales_to_hook")  # removed at the destination
    values = ", ".join(f"('{u}', {a})" for u, a in saved)
    project.sql(f"INSERT INTO src.orders VALUES {values}")  # back in the audience
    project.json("run", "whales_to_hook")
    assert project.rx.records("whales_to_hook") == project.model_whales()


def test_a_rename_applied_by_a_run_that_was_killed_keeps_the_record(p: Project, sf: SalesforceEmulator) -> None:
    """Found by the soak: a run renamed a Contact in place (its external id changed), Salesforce
    applied it, and the process was killed before it heard back. The next run released the old
    email with the record's Id, and deleted the renamed record: the row was lost."""
    import os
    import signal
    import subprocess
    import sys
    import time

    p.json("run", "users_to_sf")
    p.sql("UPDATE src.users SET email = 'renamed@example.com' WHERE user_id = 'u0003'")
    sf.faults.inject("late", seconds=60, match="PATCH /services/data")  # applied; the answer never comes
    before = sf.request_count
    child = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "users_to_sf", "--project", str(p.root)],
        env={**os.environ, **p.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while sf.faults.pending and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        assert sf.faults.pending == 0, "the rename never reached Salesforce"
        while "renamed@example.com" not in sf_contacts(sf) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sf_contacts(sf).get("renamed@example.com"), "Salesforce applied the rename"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert sf.request_count > before
    sf.faults.clear()
    assert p.json("run", "users_to_sf")["syncs"][0]["status"] == "success"
    want = {v["email"]: v["plan"] for v in p.model_users().values()}
    assert sf_contacts(sf) == want, "the renamed record is kept, the old email is gone"


@pytest.mark.parametrize("batch_size", [1, 50])
def test_an_email_handed_on_in_one_run_is_not_renamed_away(p: Project, sf: SalesforceEmulator, batch_size: int) -> None:
    """Found by an oracle keeping records by email: u0001 takes user2's email while u0002 moves
    on to a new one. Salesforce may rename u0002's record only if no row claims user2 any
    more; u0001 does, in this very run (an earlier push, or the same one), so renaming it
    would take the record u0001 writes to and leave user2 with none."""
    text = (
        (p.root / "syncs.yaml")
        .read_text()
        .replace("fields: {LastName: plan, Email: email}}", f"fields: {{LastName: plan, Email: email}}, batch_size: {batch_size}}}")
    )
    (p.root / "syncs.yaml").write_text(text)
    p.json("run", "users_to_sf")
    p.sql(
        "UPDATE src.users SET plan = 'moved-' || user_id WHERE user_id IN ('u0001', 'u0002');"
        "UPDATE src.users SET email = CASE user_id WHEN 'u0001' THEN 'user2@example.com' ELSE 'new2@example.com' END "
        "WHERE user_id IN ('u0001', 'u0002')"
    )
    assert p.json("run", "users_to_sf")["syncs"][0]["status"] == "success"
    want = {v["email"]: v["plan"] for v in p.model_users().values()}
    assert sf_contacts(sf) == want
    assert p.json("run", "users_to_sf")["syncs"][0]["status"] == "up_to_date"


def test_a_salesforce_refusal_answering_a_retry_after_a_lost_answer_leaves_the_row_possibly_delivered(
    p: Project, sf: SalesforceEmulator
) -> None:
    """The first attempt was applied and its answer lost; the retry found the record locked
    (UNABLE_TO_LOCK_ROW). Recording the row as never sent left the contact behind for good
    once the row left the model."""
    text = (p.root / "syncs.yaml").read_text().replace("    max_retries: 0\n", "    max_retries: 2\n", 1)
    (p.root / "syncs.yaml").write_text(text)
    p.sql("DELETE FROM src.users WHERE user_id = 'u0005'")
    p.json("run", "users_to_sf")
    p.sql("INSERT INTO src.users VALUES ('u0005', 'user5@example.com', 'pro', 1, 50)")
    sf.faults.inject("drop_after", match="/composite/sobjects")  # applied, the answer lost
    sf.lock_rows("user5@example.com", after=1)  # the retry finds the record locked
    result = p.json("run", "users_to_sf", expect=1)["syncs"][0]
    assert result["status"] == "partial" and result["unconfirmed"] == 1 and result["rejected_by_destination"] == 0, result
    assert "user5@example.com" in sf_contacts(sf)
    p.sql("DELETE FROM src.users WHERE user_id = 'u0005'")
    p.json("run", "users_to_sf")
    assert "user5@example.com" not in sf_contacts(sf), "the contact left with its row"
