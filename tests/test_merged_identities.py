"""`identity_conflicts: merge`: rows that map to one record all write to it (the last write
wins) and it goes only when none is left. Found by the soak (pairs of users sharing an email
that differs only by case): the two rows went in one request, Salesforce refused both
(DUPLICATE_VALUE: an external id twice in a batch) on every run, so the shared contact and its
campaign membership never arrived, and Mailchimp refused one of them ("another row in this
batch has the same email_address"). Rows writing one record now go in separate batches.
Found next: when the row that wrote a shared record last left, the record kept its values
for good (the rows left were unchanged, so nothing wrote it again); now the end of the run
writes it again with the values of a row still mapping to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, make_project

from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.salesforce import Field, SalesforceEmulator
from activation_emulators.webhook import WebhookReceiver

pytest.importorskip("mailchimp_marketing")

KEY = "0123456789abcdef0123456789abcdef-us1"
DESTINATIONS = """\
  sf:
    type: salesforce
    instance_url: "https://${SF_INSTANCE}"
    session_id: "${SF_TOKEN}"
    transport_url: "${SF_URL}"
    bulk_poll_seconds: 0.01
    max_retries: 0
  mc: {type: mailchimp, api_key: "${MC_KEY}", base_url: "${MC_URL}", list_name: Customers, max_retries: 0}
"""
SYNCS = """\
  users_to_sf: {from: user, to: sf, object: Contact, mode: mirror, match: {Email_Key__c: email},
                fields: {LastName: plan, Email: email}, identity_conflicts: merge}
  whales_to_sf: {from: whales, to: sf, object: Contact, mode: audience, audience: Whales, match: {Email: email},
                 identity_conflicts: merge}
  users_to_mc: {from: user, to: mc, mode: mirror, match: {email_address: email}, fields: {FNAME: plan},
                identity_conflicts: merge}
  whales_to_mc: {from: whales, to: mc, mode: audience, audience: Whales, match: {email_address: email},
                 identity_conflicts: merge}
"""
SYNC_NAMES = ("users_to_sf", "whales_to_sf", "users_to_mc")


@pytest.fixture
def sf() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as e:
        e.add_field("Contact", Field("Email_Key__c", external_id=True, unique=True))
        yield e


@pytest.fixture
def mc() -> Iterator[MailchimpEmulator]:
    with MailchimpEmulator(api_keys={KEY}) as e:
        e.create_list("Customers")
        yield e


@pytest.fixture
def p(tmp_path: Path, rx: WebhookReceiver, sf: SalesforceEmulator, mc: MailchimpEmulator) -> Project:
    proj = make_project(tmp_path / "p", rx, n=40, orders=160)
    text = (proj.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:\n" + DESTINATIONS, 1)
    (proj.root / "syncs.yaml").write_text(text + SYNCS)
    proj.env = {"SF_INSTANCE": sf.instance, "SF_TOKEN": sf.token, "SF_URL": sf.url, "MC_KEY": KEY, "MC_URL": mc.url}
    return proj


def sf_contacts(sf: SalesforceEmulator) -> dict[str, str]:
    return {r["Email_Key__c"].lower(): r["LastName"] for r in sf.records("Contact").values()}


def sf_members(sf: SalesforceEmulator) -> set[str]:
    contacts = sf.records("Contact")
    return {contacts[m["ContactId"]]["Email"].lower() for m in sf.records("CampaignMember").values()}


def mc_members(mc: MailchimpEmulator) -> dict[str, str]:
    [list_id] = mc.lists()
    return {e: m["merge_fields"]["FNAME"] for e, m in mc.members(list_id).items()}


def test_rows_sharing_a_record_in_one_batch_all_arrive_and_it_stays_while_one_is_left(
    p: Project, sf: SalesforceEmulator, mc: MailchimpEmulator
) -> None:
    # u0015 and u0016 share user5's email (case aside), u0017 user8's: all whales (ltv >= 100),
    # all in one batch (40 rows) with the row they share with
    p.sql("UPDATE src.users SET email = 'USER5@EXAMPLE.COM', plan = 'pro' WHERE user_id = 'u0015'")
    p.sql("UPDATE src.users SET email = 'User5@Example.com', plan = 'free' WHERE user_id = 'u0016'")
    p.sql("UPDATE src.users SET email = 'user8@EXAMPLE.com' WHERE user_id = 'u0017'")
    plans = {"u0005": "enterprise", "u0015": "pro", "u0016": "free"}
    shared = {"user5@example.com", "user8@example.com"}
    runs = p.json("run", *SYNC_NAMES)["syncs"]
    assert [r["status"] for r in runs] == ["success"] * 3, runs
    emails = {v["email"].lower() for v in p.model_users().values()}
    whales = {v["email"].lower() for v in p.model_whales().values()}
    assert len(emails) == 37 and shared <= emails and shared <= whales
    assert set(sf_contacts(sf)) == set(mc_members(mc)) == emails and sf_members(sf) == whales
    counts = [plan["counts"] for plan in p.json("plan", *SYNC_NAMES)["plans"]]
    assert all(c["added"] == c["changed"] == c["released"] == 0 for c in counts), counts

    # the rows that wrote the shared record last leave, one row stays: the record is still
    # there (with its campaign membership) and holds the values of the row that stays, not
    # those of a row that left
    written = {sf_contacts(sf)["user5@example.com"], mc_members(mc)["user5@example.com"]}
    [stays] = [k for k in sorted(plans) if plans[k] not in written][:1]
    leave = sorted(set(plans) - {stays})
    p.sql(f"DELETE FROM src.users WHERE user_id IN {tuple(leave)}")
    runs = p.json("run", *SYNC_NAMES)["syncs"]
    assert [r["status"] for r in runs] == ["success"] * 3, runs
    assert sf_contacts(sf)["user5@example.com"] == mc_members(mc)["user5@example.com"] == plans[stays]
    emails = {v["email"].lower() for v in p.model_users().values()}
    whales = {v["email"].lower() for v in p.model_whales().values()}
    assert set(sf_contacts(sf)) == set(mc_members(mc)) == emails and sf_members(sf) == whales
    assert "user5@example.com" in whales
    counts = [plan["counts"] for plan in p.json("plan", *SYNC_NAMES)["plans"]]
    assert all(c["added"] == c["changed"] == c["released"] == 0 for c in counts), counts

    # the last one leaves: the record goes
    p.sql(f"DELETE FROM src.users WHERE user_id = '{stays}'")
    p.json("run", *SYNC_NAMES, "--allow-removal")
    assert "user5@example.com" not in sf_contacts(sf) and "user5@example.com" not in mc_members(mc)
    assert "user5@example.com" not in sf_members(sf)


def test_a_hubspot_contact_two_rows_share_stays_in_mirror_and_list_while_one_is_left(tmp_path: Path, rx: WebhookReceiver) -> None:
    """Issue 13's first case, where it was found: two rows whose emails differ only by case
    share one HubSpot contact; when one left, `mirror` archived the contact and the audience
    dropped it from the list while the other row still needed it, for good."""
    from activation_emulators.hubspot import HubSpotEmulator

    with HubSpotEmulator(tokens={"tok"}) as hs:
        hs.add_property("contacts", "jobtitle")
        proj = make_project(tmp_path / "h", rx, n=40, orders=160)
        text = (
            (proj.root / "syncs.yaml")
            .read_text()
            .replace(
                "destinations:\n",
                'destinations:\n  hs: {type: hubspot, token: tok, base_url: "${HUBSPOT_URL}", requests_per_second: 500, max_retries: 0}\n',
                1,
            )
        )
        (proj.root / "syncs.yaml").write_text(
            text
            + """\
  users_to_hs: {from: user, to: hs, object: contacts, mode: mirror, match: {email: email}, fields: {jobtitle: plan},
                identity_conflicts: merge, max_removal: 100%}
  whales_to_hs: {from: whales, to: hs, object: contacts, mode: audience, audience: Whales, match: {email: email},
                 identity_conflicts: merge, max_removal: 100%}
"""
        )
        proj.env = {"HUBSPOT_URL": hs.url}
        proj.sql("UPDATE src.users SET email = 'USER5@Example.COM' WHERE user_id = 'u0015'")  # u0005's, case aside

        def contacts() -> set[str]:
            return {r["email"].lower() for r in hs.records("contacts").values()}

        def members() -> set[str]:
            [list_id] = hs.lists()
            records = hs.records("contacts")
            return {records[m]["email"].lower() for m in hs.list_members(list_id)}

        assert [r["status"] for r in proj.json("run", "users_to_hs", "whales_to_hs")["syncs"]] == ["success"] * 2
        assert "user5@example.com" in contacts() and "user5@example.com" in members()
        proj.sql("DELETE FROM src.users WHERE user_id = 'u0005'")  # one leaves, u0015 still maps to the contact
        proj.json("run", "users_to_hs", "whales_to_hs")
        assert "user5@example.com" in contacts() and "user5@example.com" in members()
        assert contacts() == {v["email"].lower() for v in proj.model_users().values()}
        proj.sql("DELETE FROM src.users WHERE user_id = 'u0015'")  # the last one leaves: the contact goes
        proj.json("run", "users_to_hs", "whales_to_hs")
        assert "user5@example.com" not in contacts() and "user5@example.com" not in members()
