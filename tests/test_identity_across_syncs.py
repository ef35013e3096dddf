"""Two syncs to one vendor, one of which writes the record the other's membership hangs on.
Found by the soak (seed 11, emails going A -> B -> A across killed runs)."""

from __future__ import annotations

from pathlib import Path

from conftest import Project, make_project
from test_merged_identities import DESTINATIONS, KEY, SYNCS
from test_unacknowledged import hs, p, sf, sf_contacts, sf_members  # noqa: F401  (fixtures)

from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.salesforce import SalesforceEmulator
from activation_emulators.webhook import WebhookReceiver


def test_a_campaign_member_survives_its_contact_renamed_by_another_sync(
    p: Project,
    sf: SalesforceEmulator,
    hs: HubSpotEmulator,
) -> None:
    p.json("run", "users_to_sf", "whales_to_sf")
    whales = {v["email"] for v in p.model_whales().values()}
    assert "user3@example.com" in whales and sf_members(sf) == whales

    p.sql("UPDATE src.users SET email = 'moved3@example.com' WHERE user_id = 'u0003'")  # A -> B
    p.json("run", "users_to_sf", "whales_to_sf")  # the Contact is renamed in place, then the campaign follows
    whales = {v["email"] for v in p.model_whales().values()}
    assert "moved3@example.com" in whales and sf_members(sf) == whales

    p.sql("UPDATE src.users SET email = 'user3@example.com' WHERE user_id = 'u0003'")  # and back: B -> A
    p.json("run", "users_to_sf", "whales_to_sf")
    whales = {v["email"] for v in p.model_whales().values()}
    assert sf_members(sf) == whales


def test_a_campaign_member_survives_its_contact_going_a_b_a_while_the_campaign_sync_missed_b(
    p: Project, sf: SalesforceEmulator, hs: HubSpotEmulator
) -> None:
    """The Contact sync renames user3's Contact A -> B and the run dies before it hears back
    (the campaign sync never ran); the email goes back to A. The next run writes A (the rename's
    record id is unknown after the crash: a new Contact) and removes the Contact held under B,
    and with it the campaign membership the campaign sync still holds under A: the member was
    lost, and the campaign sync planned 0 changes."""
    p.json("run", "users_to_sf", "whales_to_sf")
    p.sql("UPDATE src.users SET email = 'moved3@example.com' WHERE user_id = 'u0003'")  # A -> B
    sf.faults.inject("drop_after", match="/composite/sobjects")  # Salesforce renames the Contact; the answer is lost, the run fails
    assert p.json("run", "users_to_sf", expect=1)["syncs"][0]["status"] == "failed"
    assert "moved3@example.com" in sf_contacts(sf)

    p.sql("UPDATE src.users SET email = 'user3@example.com' WHERE user_id = 'u0003'")  # B -> A
    p.json("run", "users_to_sf", "whales_to_sf")
    want = {v["email"]: v["plan"] for v in p.model_users().values()}
    assert sf_contacts(sf) == want
    whales = {v["email"] for v in p.model_whales().values()}
    assert "user3@example.com" in whales
    assert sf_members(sf) == whales


def test_a_tag_removed_while_another_sync_archived_its_member_does_not_come_back(tmp_path: Path, rx: WebhookReceiver) -> None:
    """`users_to_mc` (mirror) archives a member whose row left before `whales_to_mc` untags it;
    Mailchimp keeps an archived member's tags and cannot untag it, so the untag found nobody
    (taken as done). When another row, not a whale, later takes that email, the mirror
    brought the member back, and the Whales tag with it: a tag no row maps to, for good
    (soak seed 11: `pros_to_mailchimp_tag` orphaned 1). Now the untag of an archived member
    waits (the release stays, silently) and is done once the member is back."""
    with MailchimpEmulator(api_keys={KEY}) as mc:
        mc.create_list("Customers")
        proj = make_project(tmp_path / "p", rx, n=40, orders=160)
        text = (proj.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:\n" + DESTINATIONS, 1)
        (proj.root / "syncs.yaml").write_text(text + SYNCS)
        proj.env = {"SF_INSTANCE": "-", "SF_TOKEN": "-", "SF_URL": "-", "MC_KEY": KEY, "MC_URL": mc.url}
        proj.json("run", "users_to_mc", "whales_to_mc")
        [list_id] = mc.lists()
        assert "user3@example.com" in mc.tag_members(list_id, "Whales")  # u0003 is a whale

        proj.sql("DELETE FROM src.users WHERE user_id = 'u0003'")
        proj.json("run", "users_to_mc", "whales_to_mc", "--allow-removal")
        assert "user3@example.com" not in mc.members(list_id)
        proj.sql("UPDATE src.users SET email = 'user3@example.com' WHERE user_id = 'u0000'")  # not a whale
        proj.json("run", "users_to_mc", "whales_to_mc")
        assert "user3@example.com" in mc.members(list_id)
        whales = {v["email"] for v in proj.model_whales().values()}
        assert "user3@example.com" not in whales
        assert {e for e in mc.tag_members(list_id, "Whales") if e in mc.members(list_id)} == whales
