"""`--sandbox`: a project rehearsed end to end against local emulators, touching nothing real."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import hubspot_documents_or_skip, make_project

from activation_emulators.webhook import WebhookReceiver

HUBSPOT = """
  hs: {type: hubspot, token: "${HUBSPOT_TOKEN}"}
"""


def test_sandbox_run_uses_emulators_and_writes_nothing_real(tmp_path: Path, rx: WebhookReceiver) -> None:
    hubspot_documents_or_skip()  # the summary says "0 invalid requests" only where requests were validated
    p = make_project(tmp_path / "s", rx)
    text = (p.root / "syncs.yaml").read_text()
    text = text.replace("destinations:\n", "destinations:" + HUBSPOT, 1)
    text += """  contacts_to_hs:
    from: user
    to: hs
    object: contacts
    match: {email: email}
    fields: {lifetime_value: ltv, jobtitle: plan}
"""
    (p.root / "syncs.yaml").write_text(text)
    before = hashlib.sha256(p.warehouse.read_bytes()).hexdigest()
    # no HUBSPOT_TOKEN and a real webhook URL in the environment: the sandbox replaces both
    result = p.cli("run", "--sandbox")
    assert "local HubSpot" in result.stdout and "holds 200 contacts" in result.stdout and "0 invalid requests" in result.stdout
    assert "holds 200 rows of users_to_hook" in result.stdout
    assert rx.request_count == 0, "the real webhook was not called"
    assert hashlib.sha256(p.warehouse.read_bytes()).hexdigest() == before, "warehouse and state untouched"
    plan = p.json("plan", "--sandbox")["plans"]
    assert {pl["sync"]: pl["counts"]["added"] for pl in plan}["contacts_to_hs"] == 200
    # and the real project still has delivered nothing
    assert all(pl["counts"]["delivered"] == 0 for pl in p.json("plan", "users_to_hook")["plans"])


def test_sandbox_hubspot_properties_are_typed_from_the_model(tmp_path: Path, rx: WebhookReceiver) -> None:
    from activation.project.loader import load_project
    from activation.session import Session
    from activation_emulators.sandbox import sandbox

    p = make_project(tmp_path / "t", rx)
    p.sql(
        "ALTER TABLE src.users ADD COLUMN active BOOLEAN; UPDATE src.users SET active = seats > 2;"
        "ALTER TABLE src.users ADD COLUMN seen_at TIMESTAMP; UPDATE src.users SET seen_at = TIMESTAMP '2024-05-01 10:00:00'"
    )
    text = (p.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:" + HUBSPOT, 1)
    (p.root / "syncs.yaml").write_text(
        text
        + """  contacts_to_hs:
    from: user
    to: hs
    object: contacts
    match: {email: email}
    fields: {lifetime_value: ltv, spend: spend, active: active, seen_at: seen_at, jobtitle: plan, shout: "{{ row.plan | upper }}"}
"""
    )
    with sandbox(load_project(p.root)) as box, Session(box.loaded, dry_run=True, sandbox_state=box.state_url) as s:
        box.add_properties(s, s.prepare(["contacts_to_hs"]))
        defs = box.emulators["hs"].property_definitions("contacts")
    assert {f: defs[f]["type"] for f in ("lifetime_value", "spend", "active", "seen_at", "shout")} == {
        "lifetime_value": "number",
        "spend": "number",
        "active": "bool",
        "seen_at": "datetime",
        "shout": "string",
    }
    assert defs["jobtitle"]["hubspotDefined"], "HubSpot's own properties are left as they are"


def test_sandbox_serves_mailchimp_with_the_audience_and_merge_tags_the_syncs_use(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "m", rx)
    text = (p.root / "syncs.yaml").read_text()
    text = text.replace(
        "destinations:\n", 'destinations:\n  mc: {type: mailchimp, api_key: "${MAILCHIMP_API_KEY}", list_id: "${MAILCHIMP_LIST}"}\n', 1
    )
    text += """  whales_to_mailchimp:
    from: whales
    to: mc
    mode: audience
    audience: Whales
    match: {email_address: email}
    fields: {PLAN: plan, LTV: ltv}
"""
    (p.root / "syncs.yaml").write_text(text)
    result = p.cli("run", "whales_to_mailchimp", "--sandbox")  # no key, no list id: the sandbox supplies both
    whales = len(p.model_whales())
    assert "local Mailchimp at http://127.0.0.1:" in result.stdout and f"holds {whales} members" in result.stdout
    errors = p.json("run", "whales_to_mailchimp", expect=2)["errors"]
    assert any("MAILCHIMP_API_KEY is not set" in e for e in errors), "outside the sandbox the missing key is an error"
    (p.root / "syncs.yaml").write_text(text.replace("PLAN: plan", "plan: plan"))
    errors = p.json("run", "whales_to_mailchimp", "--sandbox", expect=2)["errors"]
    assert any("mailchimp `fields:` are merge tags" in e and "'plan'" in e for e in errors)
