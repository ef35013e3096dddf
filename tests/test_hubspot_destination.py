"""HubSpot end to end: the CLI, a real DuckDB warehouse, the official SDK, over real HTTP to
the emulator, which validates every request against HubSpot's own OpenAPI documents."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, make_project

from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.webhook import WebhookReceiver

TOKEN = "pat-na1-test-0123456789"

HUBSPOT_YAML = """
  hs:
    type: hubspot
    token: "${HUBSPOT_TOKEN}"
    base_url: "${HUBSPOT_URL}"
    requests_per_second: 500
"""
SYNCS_YAML = """
  contacts_to_hs:
    from: user
    to: hs
    object: contacts
    mode: mirror
    match: {email: email}
    fields: {firstname: "{{ row.plan | upper }}", jobtitle: plan, lifetime_value: ltv}
  whales_to_hs:
    from: whales
    to: hs
    object: contacts
    mode: audience
    audience: Whales
    match: {email: email}
"""


@pytest.fixture
def emu() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(tokens={TOKEN}, log_bodies=True) as e:
        e.add_property("contacts", "lifetime_value", type="number")
        yield e


def hs_project(root: Path, rx: WebhookReceiver, emu: HubSpotEmulator, **kw: object) -> Project:
    p = make_project(root, rx, **kw)  # type: ignore[arg-type]
    text = (root / "syncs.yaml").read_text()
    text = text.replace(
        "destinations:\n",
        "destinations:\n"
        + textwrap.dedent(HUBSPOT_YAML).replace("\nhs:", "\n  hs:").replace("\n  ", "\n    ").replace("\n    hs:", "\n  hs:"),
        1,
    )
    (root / "syncs.yaml").write_text(text + textwrap.indent(textwrap.dedent(SYNCS_YAML).strip("\n"), "  ") + "\n")
    p.env = {"HUBSPOT_TOKEN": TOKEN, "HUBSPOT_URL": emu.url}
    return p


def contacts(emu: HubSpotEmulator) -> dict[str, dict[str, str]]:
    return {r["email"]: r for r in emu.records("contacts").values()}


def expected(p: Project) -> dict[str, dict[str, str]]:
    return {
        v["email"]: {"firstname": v["plan_upper"], "jobtitle": v["plan"], "lifetime_value": "" if v["ltv"] is None else str(v["ltv"])}
        for v in p.model_users().values()
    }


def same(emu: HubSpotEmulator, p: Project) -> None:
    got = {email: {k: r.get(k, "") for k in ("firstname", "jobtitle", "lifetime_value")} for email, r in contacts(emu).items()}
    assert got == expected(p)


def test_first_sync_creates_every_contact_and_an_unchanged_run_makes_no_call(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    p = hs_project(tmp_path / "p", rx, emu)
    result = p.json("run", "contacts_to_hs")["syncs"][0]
    assert result["acknowledged"] == 200
    same(emu, p)
    assert emu.invalid_requests == []
    upserts = [r for r in emu.request_log if r.path.endswith("/batch/upsert")]
    assert len(upserts) == 2 and all(len(r.body["inputs"]) == 100 for r in upserts)
    before = emu.request_count
    assert p.json("run", "contacts_to_hs")["syncs"][0]["status"] == "up_to_date"
    assert emu.request_count == before, "an unchanged run makes zero API calls"


def test_changed_rows_send_only_the_changed_properties(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    p = hs_project(tmp_path / "p", rx, emu)
    p.cli("run", "contacts_to_hs")
    p.sql("UPDATE src.users SET plan = 'team' WHERE user_id IN ('u0003', 'u0006')")
    before = len(emu.request_log)
    p.cli("run", "contacts_to_hs")
    sent = [r for r in emu.request_log[before:] if r.path.endswith("/batch/upsert")]
    assert len(sent) == 1
    inputs = sent[0].body["inputs"]
    assert sorted(i["id"] for i in inputs) == ["user3@example.com", "user6@example.com"]
    assert all(set(i["properties"]) == {"firstname", "jobtitle"} and i["idProperty"] == "email" for i in inputs)
    same(emu, p)
    assert emu.invalid_requests == []


def test_mirror_archives_what_left_the_model(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    p = hs_project(tmp_path / "p", rx, emu)
    p.cli("run", "contacts_to_hs")
    p.sql("DELETE FROM src.users WHERE user_id IN ('u0010', 'u0011', 'u0012')")
    p.cli("run", "contacts_to_hs")
    archived = [r for r in emu.request_log if r.path.endswith("/batch/archive")]
    assert len(archived) == 1 and len(archived[0].body["inputs"]) == 3
    same(emu, p)


def test_removals_are_archived_100_per_call(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    p = hs_project(tmp_path / "p", rx, emu)
    p.cli("run", "contacts_to_hs")
    p.sql("DELETE FROM src.users WHERE user_id >= 'u0080'")  # 120 of 200 leave
    p.cli("run", "contacts_to_hs", "--allow-removal")
    archived = [r for r in emu.request_log if r.path.endswith("/batch/archive")]
    assert sorted(len(r.body["inputs"]) for r in archived) == [20, 100]
    same(emu, p)
    assert emu.invalid_requests == []


def test_audience_mode_adds_and_removes_list_members(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    p = hs_project(tmp_path / "p", rx, emu)
    p.cli("run", "contacts_to_hs", "whales_to_hs")

    def members() -> set[str]:
        [list_id] = [i for i, meta in emu.lists().items() if meta["name"] == "Whales"]
        recs = emu.records("contacts")
        return {recs[m]["email"] for m in emu.list_members(list_id)}

    assert members() == {v["email"] for v in p.model_whales().values()}
    leaving = sorted(p.model_whales())[:2]
    p.sql(f"DELETE FROM src.orders WHERE user_id IN ('{leaving[0]}', '{leaving[1]}')")
    p.cli("run", "contacts_to_hs", "whales_to_hs")
    assert members() == {v["email"] for v in p.model_whales().values()}
    assert emu.invalid_requests == []


def test_invalid_rows_are_rejected_alone_and_retried(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    p = hs_project(tmp_path / "p", rx, emu)
    p.sql("UPDATE src.users SET email = 'not-an-email-' || user_id WHERE user_id IN ('u0007', 'u0150')")
    result = p.json("run", "contacts_to_hs", expect=1)["syncs"][0]
    assert (result["status"], result["acknowledged"], result["rejected_by_destination"]) == ("partial", 198, 2)
    status = next(s for s in p.json("status", expect=1)["syncs"] if s["sync"] == "contacts_to_hs")
    reasons = {e["row_key"]: e["reason"] for e in status["rejected_rows"]}
    assert set(reasons) == {"u0007", "u0150"} and all("INVALID_EMAIL" in r for r in reasons.values())
    # fixed in the warehouse: the next run sends exactly those two
    p.sql(
        "UPDATE src.users SET email = 'user' || CAST(CAST(substr(user_id, 2) AS INTEGER) AS VARCHAR) || '@example.com' "
        "WHERE user_id IN ('u0007', 'u0150')"
    )
    assert p.json("plan", "contacts_to_hs")["plans"][0]["counts"]["added"] == 2
    p.cli("run", "contacts_to_hs")
    same(emu, p)


def test_quota_is_respected_with_few_429s(tmp_path: Path, rx: WebhookReceiver) -> None:
    with HubSpotEmulator(tokens={TOKEN}, rate_limit=(10, 1.0)) as emu:
        emu.add_property("contacts", "lifetime_value", type="number")
        p = hs_project(tmp_path / "q", rx, emu, n=1500, orders=2000)
        text = (p.root / "syncs.yaml").read_text().replace("requests_per_second: 500", "requests_per_second: 9")
        (p.root / "syncs.yaml").write_text(text)
        p.cli("run", "contacts_to_hs")
        assert len(contacts(emu)) == 1500
        assert emu.throttled <= 2, f"{emu.throttled} requests were throttled"


def test_bad_token_stops_the_sync_and_validate_remote_names_unknown_properties(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    p = hs_project(tmp_path / "p", rx, emu)
    p.env["HUBSPOT_TOKEN"] = "pat-na1-wrong-token"
    result = p.json("run", "contacts_to_hs", expect=1)["syncs"][0]
    assert result["status"] == "failed" and "401" in result["error"] and "wrong-token" not in result["error"]
    p.env["HUBSPOT_TOKEN"] = TOKEN
    text = (p.root / "syncs.yaml").read_text().replace("lifetime_value: ltv", "lifetime_valu: ltv")
    (p.root / "syncs.yaml").write_text(text)
    out = p.cli("validate", "--remote", expect=2).output
    assert "has no property 'lifetime_valu'" in out and "contacts_to_hs" in out


TYPED_SYNC = """
  typed_to_hs:
    from: user
    to: hs
    object: contacts
    mode: upsert
    match: {email: email}
    fields: {plan: plan, seats: seats, spend: spend, vip: vip, signed_up: signed_up, last_login: last_login,
             tools: tools, rank: rank_text}
"""


def test_values_are_converted_by_property_type_and_bad_ones_reject_only_their_row(
    tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator
) -> None:
    for name, kind in {
        "plan": {"type": "enumeration", "field_type": "select", "options": ["free", "pro", "enterprise"]},
        "seats": {"type": "number"},
        "spend": {"type": "number"},
        "vip": {"type": "bool"},
        "signed_up": {"type": "date"},
        "last_login": {"type": "datetime"},
        "rank": {"type": "number"},
        "tools": {"type": "enumeration", "field_type": "checkbox", "options": ["crm", "bi", "etl"]},
    }.items():
        emu.add_property("contacts", name, **kind)
    p = hs_project(tmp_path / "p", rx, emu)
    (p.root / "syncs.yaml").write_text(
        (p.root / "syncs.yaml").read_text() + textwrap.indent(textwrap.dedent(TYPED_SYNC).strip("\n"), "  ") + "\n"
    )
    # vip is text ('yes'/'no') and signed_up a timestamp: HubSpot would refuse both as they are.
    p.sql("""ALTER TABLE src.users ADD COLUMN vip VARCHAR; ALTER TABLE src.users ADD COLUMN signed_up TIMESTAMP;
             ALTER TABLE src.users ADD COLUMN last_login TIMESTAMP; ALTER TABLE src.users ADD COLUMN tools VARCHAR[];
             ALTER TABLE src.users ADD COLUMN rank_text VARCHAR;
             UPDATE src.users SET vip = CASE WHEN seats > 3 THEN 'yes' ELSE 'no' END,
                    signed_up = TIMESTAMP '2024-01-01 18:45:00' + seats * INTERVAL 1 DAY,
                    last_login = TIMESTAMP '2024-05-01 09:30:00' + seats * INTERVAL 1 HOUR,
                    tools = CASE WHEN seats % 2 = 0 THEN ['crm', 'etl'] ELSE ['bi'] END, rank_text = CAST(seats AS VARCHAR);
             UPDATE src.users SET plan = 'gold' WHERE user_id = 'u0005';
             UPDATE src.users SET rank_text = 'n/a' WHERE user_id = 'u0009';""")
    result = p.json("run", "typed_to_hs", expect=1)["syncs"][0]
    assert (result["acknowledged"], result["rejected_by_destination"]) == (198, 2)
    assert emu.invalid_requests == []
    reads = [r for r in emu.request_log if r.path == "/crm/v3/properties/contacts"]
    assert len(reads) == 1, "property definitions are read once per run"
    # u0004: seats 4; spend DECIMAL 40.00
    got = contacts(emu)["user4@example.com"]
    assert {k: got[k] for k in ("plan", "seats", "spend", "vip", "signed_up", "last_login", "tools", "rank")} == {
        "plan": "pro",
        "seats": "4",
        "spend": "40",
        "vip": "true",
        "signed_up": "2024-01-05",
        "last_login": "2024-05-01T13:30:00.000Z",
        "tools": "crm;etl",
        "rank": "4",
    }
    assert "user5@example.com" not in contacts(emu) and "user9@example.com" not in contacts(emu)
    status = next(s for s in p.json("status", expect=1)["syncs"] if s["sync"] == "typed_to_hs")
    reasons = {e["row_key"]: e["reason"] for e in status["rejected_rows"]}
    assert reasons == {
        "u0005": "field 'plan': a str value that is not one of the property's options (enterprise, free, pro)",
        "u0009": "field 'rank': cannot convert a str value to a HubSpot number (it is not a number)",
    }

    # fixed in the warehouse: the next run sends exactly those two (reading the definitions once more)
    p.sql("UPDATE src.users SET plan = 'pro' WHERE user_id = 'u0005'; UPDATE src.users SET rank_text = '2' WHERE user_id = 'u0009'")
    before = len(emu.request_log)
    assert p.json("run", "typed_to_hs")["syncs"][0]["acknowledged"] == 2
    assert [r.path for r in emu.request_log[before:]] == ["/crm/v3/properties/contacts", "/crm/v3/objects/contacts/batch/upsert"]
    assert contacts(emu)["user9@example.com"]["rank"] == "2"
    before = emu.request_count
    assert p.json("run", "typed_to_hs")["syncs"][0]["status"] == "up_to_date"
    assert emu.request_count == before, "an unchanged run makes zero API calls"


def test_a_list_create_whose_answer_is_lost_finds_the_list_it_made(tmp_path: Path, rx: WebhookReceiver, emu: HubSpotEmulator) -> None:
    """The retried create is refused (list names are unique); the list made the first time is used."""
    p = hs_project(tmp_path / "p", rx, emu)
    p.cli("run", "contacts_to_hs")
    emu.faults.inject("drop_after", match="POST /crm/v3/lists")
    result = p.json("run", "whales_to_hs")["syncs"][0]
    assert result["status"] == "success"
    [(list_id, meta)] = emu.lists().items()
    recs = emu.records("contacts")
    assert meta["name"] == "Whales" and {recs[m]["email"] for m in emu.list_members(list_id)} == {
        v["email"] for v in p.model_whales().values()
    }
