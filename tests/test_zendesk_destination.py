"""Zendesk, end to end: the real CLI, a real DuckDB warehouse, the official SDK (zenpy) over
real HTTP to the local Zendesk emulator."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenpy")

from conftest import Project  # noqa: E402

from activation_emulators.webhook import WebhookReceiver  # noqa: E402
from activation_emulators.zendesk import ZendeskEmulator  # noqa: E402

TOKEN = "zd-token-3b8e1f0a"

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'Person ' || i AS full_name,
       'Person' || i || '@Example.com' AS email,
       ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
       CAST(i * 50 AS DECIMAL(12, 2)) AS ltv,
       DATE '2026-05-01' + INTERVAL (i) DAY AS signed_up,
       i % 2 = 0 AS beta
FROM range({n}) t(i);
CREATE OR REPLACE TABLE src.companies AS
SELECT 'c' || i AS company_id, 'Company ' || i AS company_name, ['smb', 'mid', 'ent'][1 + i % 3] AS tier
FROM range(5) t(i);
"""

YAML = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
entities:
  person: {{table: src.people, key: user_id}}
  company: {{table: src.companies, key: company_id}}
audiences:
  vips: {{entity: person, where: "ltv >= 1000"}}
destinations:
  zd:
    type: zendesk
    subdomain: acme
    email: agent@example.com
    token: "${{ZENDESK_TOKEN}}"
    base_url: "${{ZENDESK_URL}}"
    job_poll_seconds: 0.01
    max_retries: 3
syncs:
  people:
    from: person
    to: zd
    mode: mirror
    match: {{email: email}}
    fields: {{name: full_name, plan: plan, ltv: ltv, signed_up: signed_up, beta: beta}}
  vip_tag:
    from: vips
    to: zd
    mode: audience
    audience: VIP
    match: {{email: email}}
    fields: {{name: full_name}}
  companies:
    from: company
    to: zd
    object: organizations
    mode: mirror
    match: {{external_id: company_id}}
    fields: {{name: company_name, tier: tier}}
"""


@pytest.fixture
def emu() -> Iterator[ZendeskEmulator]:
    with ZendeskEmulator(tokens={TOKEN}, job_polls=2) as e:
        e.add_user_field("plan", "dropdown", ["free", "pro", "enterprise", "team"])
        e.add_user_field("ltv", "decimal")
        e.add_user_field("signed_up", "date")
        e.add_user_field("beta", "checkbox")
        e.add_organization_field("tier", "text")
        yield e


def make(tmp_path: Path, emu: ZendeskEmulator, rx: WebhookReceiver, n: int = 230) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML.format()))
    p = Project(root, rx, env={"ZENDESK_TOKEN": TOKEN, "ZENDESK_URL": emu.url})
    p.sql(PEOPLE_SQL.format(n=n))
    return p


def model(p: Project) -> dict[str, dict[str, Any]]:
    """What the people sync must leave at Zendesk, by Zendesk's identity (the email, without case)."""
    rows = p.sql("SELECT full_name, email, plan, ltv, CAST(signed_up AS DATE), beta FROM src.people")
    return {
        e.lower(): {"name": n, "user_fields": {"plan": pl, "ltv": float(ltv), "signed_up": str(s), "beta": b}}
        for n, e, pl, ltv, s, b in rows
    }


def held(emu: ZendeskEmulator) -> dict[str, dict[str, Any]]:
    return {e: {"name": u["name"], "user_fields": u["user_fields"]} for e, u in emu.people().items()}


def test_load_rerun_change_remove_and_faults_end_equal_to_the_model(tmp_path: Path, rx: WebhookReceiver, emu: ZendeskEmulator) -> None:
    p = make(tmp_path, emu, rx)
    result = p.json("run", "people")["syncs"][0]
    assert (result["status"], result["acknowledged"]) == ("success", 230), result
    jobs = [r for r in emu.request_log if r.path.endswith("create_or_update_many.json")]
    assert [len(r.body["users"]) for r in jobs] == [100, 100, 30], "at most 100 users per job"
    assert held(emu) == model(p), "typed per field: decimal, date, checkbox, dropdown"
    assert result["destination_report"]["details"]["created"] == 230

    before = emu.request_count
    assert p.json("run", "people")["syncs"][0]["status"] == "up_to_date"
    assert emu.request_count == before, "an unchanged run makes no API call"

    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id IN ('u0001', 'u0002')")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0003', 'u0004', 'u0005')")
    result = p.json("run", "people")["syncs"][0]
    assert (result["plan"]["counts"]["changed"], result["plan"]["counts"]["removed"]) == (2, 3), result
    [job] = [r.body["users"] for r in emu.request_log[before:] if r.path.endswith("create_or_update_many.json")]
    assert sorted((u["email"], u["user_fields"]) for u in job) == [
        ("Person1@Example.com", {"plan": "team"}),
        ("Person2@Example.com", {"plan": "team"}),
    ], "only what changed"
    [gone] = [r for r in emu.request_log[before:] if r.path.endswith("destroy_many.json")]
    assert len(gone.query["ids"].split(",")) == 3, "deleted by Zendesk id, in one job"
    assert held(emu) == model(p) and len(model(p)) == 227
    assert {u["email"] for u in emu.deleted_users.values()} == {f"person{i}@example.com" for i in (3, 4, 5)}

    # faults: a refused row, 429s on the job endpoint and the job's status, a job whose answer is lost
    p.sql("UPDATE src.people SET ltv = ltv + 1")
    p.sql("UPDATE src.people SET email = 'not an email' WHERE user_id = 'u0007'")
    emu.faults.inject("throttle", n=2, retry_after=0, match="create_or_update_many")
    emu.faults.inject("throttle", n=1, retry_after=0, match="/job_statuses/")
    result = p.json("run", "people", expect=1)["syncs"][0]
    assert result["status"] == "partial" and result["rejected_by_destination"] == 1, result
    assert result["destination_report"]["throttled"] == 3
    status = p.json("status", expect=None)
    [reason] = [e["reason"] for s in status["syncs"] if s["sync"] == "people" for e in s["rejected_rows"]]
    assert "not properly formatted" in reason
    p.sql("UPDATE src.people SET email = 'person7@example.org' WHERE user_id = 'u0007'")
    p.sql("UPDATE src.people SET ltv = ltv + 1")
    emu.faults.inject("drop_after", n=1, match="create_or_update_many")  # the job ran; its answer is lost: queued again
    emu.faults.inject("error", n=1, status=500, match="/job_statuses/")
    result = p.json("run", "people")["syncs"][0]
    assert (result["status"], result["destination_report"]["retries"]) == ("success", 2), result
    assert held(emu) == model(p), "nothing lost, nothing duplicated"
    assert p.json("run", "people")["syncs"][0]["status"] == "up_to_date"


def test_audience_tags_and_untags_without_deleting(tmp_path: Path, rx: WebhookReceiver, emu: ZendeskEmulator) -> None:
    p = make(tmp_path, emu, rx, n=30)
    p.cli("run", "vip_tag")
    vips = {f"person{i}@example.com" for i in range(20, 30)}  # ltv = 50 * i >= 1000
    assert emu.tagged("vip") == vips
    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0020', 'u0021')")
    p.sql("UPDATE src.people SET ltv = 5000 WHERE user_id = 'u0005'")
    result = p.json("run", "vip_tag")["syncs"][0]
    assert (result["plan"]["counts"]["added"], result["plan"]["counts"]["removed"]) == (1, 2)
    assert emu.tagged("vip") == vips - {"person20@example.com", "person21@example.com"} | {"person5@example.com"}
    assert "person20@example.com" in emu.people(), "untagged, not deleted"


def test_organizations_by_external_id_and_a_refused_credential(tmp_path: Path, rx: WebhookReceiver, emu: ZendeskEmulator) -> None:
    p = make(tmp_path, emu, rx, n=3)
    assert p.json("run", "companies")["syncs"][0]["acknowledged"] == 5
    assert {k: (o["name"], o["organization_fields"]["tier"]) for k, o in emu.organizations().items()}["c4"] == ("Company 4", "mid")
    p.sql("DELETE FROM src.companies WHERE company_id = 'c1'")
    p.sql("UPDATE src.companies SET company_name = 'Renamed' WHERE company_id = 'c2'")
    p.cli("run", "companies")
    assert {k: o["name"] for k, o in emu.organizations().items()} == {
        "c0": "Company 0",
        "c2": "Renamed",
        "c3": "Company 3",
        "c4": "Company 4",
    }

    p.env["ZENDESK_TOKEN"] = "wrong-token-value"
    p.sql("UPDATE src.people SET plan = 'team'")
    out = p.cli("run", "people", "--json", expect=1)
    assert '"terminal": true' in out.stdout and "wrong-token-value" not in out.output and TOKEN not in out.output
    p.env["ZENDESK_TOKEN"] = TOKEN
    emu.user_fields.pop("beta")
    problems = p.cli("validate", "--remote", expect=2).output
    assert "no active custom user field with key 'beta'" in problems
