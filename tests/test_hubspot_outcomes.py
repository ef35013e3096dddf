"""HubSpot: what each call's outcome means for its rows (issue 13, item 6), through the official
SDK over real HTTP to the emulator. An answer that never comes, a 429, an answer that does not
echo what it wrote, a swap of emails, a rejection quoting an email, a refusal answering a retry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, make_project

from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.webhook import WebhookReceiver

TOKEN = "pat-na1-test-0123456789"
DESTINATION = """\
  hs:
    type: hubspot
    token: "${HUBSPOT_TOKEN}"
    base_url: "${HUBSPOT_URL}"
    requests_per_second: 500
    max_retries: 0
    read_timeout_seconds: 0.5
"""
SYNC = """\
  users_to_hs: {from: user, to: hs, object: contacts, mode: mirror, match: {email: email}, fields: {jobtitle: plan}}
"""


@pytest.fixture
def emu() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(tokens={TOKEN}, log_bodies=True) as e:
        yield e


def project(root: Path, rx: WebhookReceiver, emu: HubSpotEmulator, *, n: int = 40, destination: str = DESTINATION) -> Project:
    p = make_project(root, rx, n=n, orders=4 * n)
    text = (p.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:\n" + destination, 1)
    (p.root / "syncs.yaml").write_text(text + SYNC)
    p.env = {"HUBSPOT_TOKEN": TOKEN, "HUBSPOT_URL": emu.url}
    return p


def contacts(emu: HubSpotEmulator) -> dict[str, str]:
    return {r["email"]: r.get("jobtitle", "") for r in emu.records("contacts").values()}


def wanted(p: Project) -> dict[str, str]:
    return {v["email"]: v["plan"] for v in p.model_users().values()}


def test_a_write_never_answered_times_out_and_leaves_its_rows_possibly_delivered(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    """The connection is accepted and the answer never comes (the emulator stays silent for a
    minute): the read timeout ends the call, and its rows are possibly delivered, not refused."""
    p = project(tmp_path / "p", rx, emu)
    emu.faults.inject("timeout", seconds=60, match="/batch/upsert")
    result = p.json("run", "users_to_hs", expect=1)["syncs"][0]
    assert emu.faults.pending == 0
    assert (result["acknowledged"], result["rejected_by_destination"], result["unconfirmed"]) == (0, 0, 40)
    status = next(s for s in p.json("status", expect=1)["syncs"] if s["sync"] == "users_to_hs")
    assert status["rejected_rows"] and all(e["stage"] == "unknown" and "timed out" in e["reason"] for e in status["rejected_rows"])
    # possibly delivered: resent next run, and all there
    assert p.json("run", "users_to_hs")["syncs"][0]["acknowledged"] == 40
    assert contacts(emu) == wanted(p)


def test_a_run_against_a_tight_rolling_window_paces_itself_with_few_429s(tmp_path: Path, rx: WebhookReceiver) -> None:
    """HubSpot counts requests in a rolling window (100 or 190 per 10 s; here 6 per second, so
    the test is quick) shared with the account's other apps, so the configured rate may be far
    above it. The destination keeps to the limit HubSpot states in its headers, and a 429 waits
    for the window to clear: every row arrives, with hardly any 429."""
    with HubSpotEmulator(tokens={TOKEN}, rate_limit=(6, 1.0)) as emu:
        p = project(tmp_path / "p", rx, emu, n=1500, destination=DESTINATION.replace("max_retries: 0", "max_retries: 3"))
        result = p.json("run", "users_to_hs")["syncs"][0]
        assert result["acknowledged"] == 1500 and contacts(emu) == wanted(p)
        assert emu.throttled <= 2, f"{emu.throttled} requests were throttled"
        assert emu.invalid_requests == []


def test_the_daily_limit_stops_the_run_at_once_and_says_so(tmp_path: Path, rx: WebhookReceiver) -> None:
    """A DAILY 429 clears at midnight: retrying it only spends the next day's quota."""
    with HubSpotEmulator(tokens={TOKEN}, daily_limit=1) as emu:
        p = project(tmp_path / "p", rx, emu, destination=DESTINATION.replace("max_retries: 0", "max_retries: 3"))
        result = p.json("run", "users_to_hs", expect=1)["syncs"][0]
        assert result["status"] == "failed" and "daily request limit" in result["error"]
        assert emu.throttled == 1, "the daily 429 is not retried"
        # it passes by itself: not terminal (the daemon does not pause the sync), but not before an hour
        assert result["terminal"] is False and result["retry_after"] == 3600, result


def test_upsert_results_that_do_not_echo_the_email_are_matched_by_record_id(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    """HubSpot does not document that an upsert's result echoes the idProperty's value, nor the
    order of results: without the echo, results are matched by record id, read back."""
    emu.echo_id_property = False
    emu.api.shuffle_results = True
    p = project(tmp_path / "p", rx, emu)
    result = p.json("run", "users_to_hs")["syncs"][0]
    assert (result["acknowledged"], result["unconfirmed"], result["rejected_by_destination"]) == (40, 0, 0)
    assert contacts(emu) == wanted(p)
    ids = {r["email"]: i for i, r in emu.records("contacts").items()}
    # the record ids were kept: a removal archives by id, without looking the email up
    p.sql("DELETE FROM src.users WHERE user_id = 'u0005'")
    before = len(emu.request_log)
    p.json("run", "users_to_hs")
    archived = [r for r in emu.request_log[before:] if r.path.endswith("/batch/archive")]
    assert [r.path for r in emu.request_log[before:]] == ["/crm/v3/objects/contacts/batch/archive"]
    assert archived[0].body["inputs"] == [{"id": ids["user5@example.com"]}]
    assert contacts(emu) == wanted(p)
    assert emu.invalid_requests == []


def test_a_row_the_answer_does_not_account_for_is_possibly_delivered(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    """No echo and the read-back fails: the rows were written, but nothing says which record is
    whose. They are possibly delivered (resent next run), never acknowledged or refused."""
    emu.echo_id_property = False
    p = project(tmp_path / "p", rx, emu)
    emu.faults.inject("error", status=400, match="/batch/read")
    result = p.json("run", "users_to_hs", expect=1)["syncs"][0]
    assert (result["acknowledged"], result["unconfirmed"], result["rejected_by_destination"]) == (0, 40, 0)
    assert p.json("run", "users_to_hs")["syncs"][0]["acknowledged"] == 40
    assert contacts(emu) == wanted(p)


def test_two_rows_swapping_emails_both_end_right(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    """Row 1 takes row 2's email and row 2 row 1's in one run: each email ends with its new
    row's values, nothing is archived or duplicated, and the next run has nothing to do."""
    p = project(tmp_path / "p", rx, emu)
    p.json("run", "users_to_hs")
    p.sql(
        "UPDATE src.users SET plan = 'swapped-' || user_id WHERE user_id IN ('u0001', 'u0002');"
        "UPDATE src.users SET email = CASE user_id WHEN 'u0001' THEN 'user2@example.com' ELSE 'user1@example.com' END "
        "WHERE user_id IN ('u0001', 'u0002')"
    )
    result = p.json("run", "users_to_hs")["syncs"][0]
    assert (result["acknowledged"], result["rejected_by_destination"], result["unconfirmed"]) == (2, 0, 0)
    assert contacts(emu) == wanted(p) and contacts(emu)["user1@example.com"] == "swapped-u0002"
    assert len(emu.records("contacts")) == 40 and emu.records("contacts", archived=True) == {}
    assert p.json("plan", "users_to_hs")["plans"][0]["counts"] | {"model_rows": 0, "delivered": 0, "unchanged": 0} == {
        "model_rows": 0,
        "delivered": 0,
        "added": 0,
        "changed": 0,
        "removed": 0,
        "unchanged": 0,
        "rejected": 0,
        "released": 0,
    }
    assert emu.invalid_requests == []


def state_text(p: Project) -> str:
    """Every value in every table of the state store (schema activation_state, in the warehouse), as text."""
    import duckdb

    con = duckdb.connect(str(p.warehouse), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'activation_state'").fetchall()
        assert tables, "the state store is in the warehouse"
        return "\n".join(repr(row) for (t,) in tables for row in con.execute(f'SELECT * FROM activation_state."{t}"').fetchall())
    finally:
        con.close()


def test_rejection_reasons_keep_no_email_address(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    """HubSpot quotes the value it refuses ("Email address … is invalid"), in shapes a generic
    email pattern misses (no top-level domain, a space in it): the reasons stored and shown
    name the row, not the person."""
    bad = {"u0007": "Jane.Doe@example", "u0009": "john smith@example.com"}
    p = project(tmp_path / "p", rx, emu)
    for key, email in bad.items():
        p.sql(f"UPDATE src.users SET email = '{email}' WHERE user_id = '{key}'")
    result = p.json("run", "users_to_hs", expect=1)["syncs"][0]
    assert (result["acknowledged"], result["rejected_by_destination"]) == (38, 2)
    status = next(s for s in p.json("status", expect=1)["syncs"] if s["sync"] == "users_to_hs")
    reasons = {e["row_key"]: e["reason"] for e in status["rejected_rows"]}
    assert set(reasons) == set(bad) and all("INVALID_EMAIL" in r and "<email>" in r for r in reasons.values()), reasons
    assert all(r.startswith("Property values were not valid") for r in reasons.values()), "only whole values are replaced"
    shown = p.cli("history", "users_to_hs", "--json", expect=None).stdout + p.cli("status", "--json", expect=None).stdout
    for text in (shown, state_text(p)):
        for needle in ("Jane.Doe", "jane.doe", "john smith", "smith@"):
            assert needle not in text


@pytest.mark.parametrize("taker", ["u0001", "u0002"])
def test_an_email_passed_along_a_chain_of_rows_ends_on_the_right_rows(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator, taker: str
) -> None:
    """One row takes a new email and another takes the first one's old email, each in its own
    push (batch_size 1), the taker first or second: the taker's values land on the contact of
    that email, the new email gets a contact of its own, the email no row holds any more is
    archived. (A rename in place of the first contact, as the core's check allows, would move
    the taker's values away with it when the taker is sent first.)"""
    p = project(tmp_path / "p", rx, emu)
    text = (p.root / "syncs.yaml").read_text().replace("fields: {jobtitle: plan}}", "fields: {jobtitle: plan}, batch_size: 1}")
    (p.root / "syncs.yaml").write_text(text)
    p.json("run", "users_to_hs")
    mover = "u0002" if taker == "u0001" else "u0001"
    taken, left = f"user{int(mover[1:])}@example.com", f"user{int(taker[1:])}@example.com"
    p.sql(
        f"UPDATE src.users SET plan = 'moved-' || user_id WHERE user_id IN ('u0001', 'u0002');"
        f"UPDATE src.users SET email = CASE user_id WHEN '{taker}' THEN '{taken}' ELSE 'new@example.com' END "
        "WHERE user_id IN ('u0001', 'u0002')"
    )
    result = p.json("run", "users_to_hs")["syncs"][0]
    assert (result["acknowledged"], result["released"], result["rejected_by_destination"], result["unconfirmed"]) == (3, 1, 0, 0)
    assert contacts(emu) == wanted(p) and left not in contacts(emu)
    assert contacts(emu)[taken] == f"moved-{taker}" and contacts(emu)["new@example.com"] == f"moved-{mover}"
    assert p.json("plan", "users_to_hs")["plans"][0]["counts"]["released"] == 0


def test_a_refusal_answering_a_retry_of_a_write_that_may_have_landed_leaves_rows_possibly_delivered(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    """A 502 (HubSpot may have applied the batch), then every later attempt refused: the rows are
    possibly delivered, not refused; bisecting the batch does not make them any less so."""
    p = project(tmp_path / "p", rx, emu, destination=DESTINATION.replace("max_retries: 0", "max_retries: 1"))
    emu.faults.inject("error", status=502, match="/batch/upsert")
    emu.faults.inject("error", n=1000, status=400, match="/batch/upsert")
    result = p.json("run", "users_to_hs", expect=1)["syncs"][0]
    assert (result["acknowledged"], result["rejected_by_destination"], result["unconfirmed"]) == (0, 0, 40)
    emu.faults.clear()
    assert p.json("run", "users_to_hs")["syncs"][0]["acknowledged"] == 40
    assert contacts(emu) == wanted(p)


def test_a_create_applied_whose_answer_was_lost_is_not_refused_by_its_retry(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    """insert mode: HubSpot creates the contacts, the answer is lost; the retry is answered with
    a CONFLICT for every input (they exist now, made by the first attempt). Not refused: insert
    never touches an existing record, so a record already there is the row delivered (with the
    id HubSpot names), as Salesforce counts a DUPLICATE_VALUE."""
    p = project(tmp_path / "p", rx, emu, destination=DESTINATION.replace("max_retries: 0", "max_retries: 1"))
    text = (
        (p.root / "syncs.yaml")
        .read_text()
        .replace(
            "users_to_hs: {from: user, to: hs, object: contacts, mode: mirror",
            "users_to_hs: {from: user, to: hs, object: contacts, mode: insert",
        )
    )
    (p.root / "syncs.yaml").write_text(text)
    emu.faults.inject("drop_after", match="/batch/create")
    result = p.json("run", "users_to_hs")["syncs"][0]
    assert [r.path for r in emu.request_log if r.path.endswith("/batch/create")] == ["/crm/v3/objects/contacts/batch/create"] * 2
    assert (result["acknowledged"], result["rejected_by_destination"], result["unconfirmed"]) == (40, 0, 0)
    assert contacts(emu) == wanted(p)
    assert p.json("run", "users_to_hs")["syncs"][0]["status"] == "up_to_date"


def test_a_per_input_error_answering_a_retry_leaves_that_row_possibly_delivered(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    """The first attempt was applied and its answer lost; the retry's 207 lists an error for one
    input. It may be HubSpot's view of its own earlier write: possibly delivered, not refused.
    The same error in an answer to a first attempt is a rejection."""
    emu.batch_errors = "multi-status"  # every failed input is a 207 entry
    p = project(tmp_path / "p", rx, emu, destination=DESTINATION.replace("max_retries: 0", "max_retries: 1"))
    p.sql("UPDATE src.users SET email = 'not-an-email' WHERE user_id = 'u0007'")
    emu.faults.inject("drop_after", match="/batch/upsert")
    result = p.json("run", "users_to_hs", expect=1)["syncs"][0]
    assert (result["acknowledged"], result["rejected_by_destination"], result["unconfirmed"]) == (39, 0, 1)
    result = p.json("run", "users_to_hs", expect=1)["syncs"][0]  # resent: refused on a first attempt
    assert (result["acknowledged"], result["rejected_by_destination"], result["unconfirmed"]) == (0, 1, 0)


def test_every_retry_is_ours_not_a_hidden_one_of_the_sdk(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    """urllib3 under the SDK retries GET, PUT and DELETE three times by itself: a retry nobody
    counts, paces or tells from a first attempt (a PUT refused on its retry may be HubSpot's
    answer to its own earlier write). The SDK's retries are off: every retry is the
    destination's own, counted and limited."""
    p = project(tmp_path / "p", rx, emu, destination=DESTINATION.replace("max_retries: 0", "max_retries: 2"))
    emu.faults.inject("drop", n=1, match="GET /crm/v3/properties/contacts")
    result = p.json("run", "users_to_hs")["syncs"][0]
    assert emu.faults.injected["drop"] == 1
    assert result["status"] == "success" and result["destination_report"]["retries"] == 1, result
    assert contacts(emu) == wanted(p)
