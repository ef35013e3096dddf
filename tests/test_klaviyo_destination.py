"""Klaviyo, end to end: the real CLI, a real DuckDB warehouse and the official SDK (klaviyo-api)
over real HTTP to the local Klaviyo emulator."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project

from activation.destinations.klaviyo.destination import klaviyo_value
from activation_emulators.klaviyo import KlaviyoEmulator
from activation_emulators.webhook import WebhookReceiver

KEY = "pk_klaviyo_test_9c2e71"

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'Person' || i || '@Example.com' AS email,
       'First' || i AS first_name,
       ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
       CAST(i * 50 AS DECIMAL(12, 2)) AS ltv,
       i % 2 = 0 AS active,
       TIMESTAMP '2026-05-01 12:00:00' + INTERVAL (i) DAY AS signed_up,
       ['a', 'b'] AS tags
FROM range({n}) t(i);
"""

YAML = """
version: 1
warehouse: {type: duckdb, path: warehouse.duckdb}
entities:
  person: {table: src.people, key: user_id}
audiences:
  vips: {entity: person, where: "ltv >= 1000"}
destinations:
  kl: {type: klaviyo, api_key: "${KLAVIYO_API_KEY}", base_url: "${KLAVIYO_URL}", poll_seconds: 0.01, max_retries: 3}
syncs:
  people:
    from: person
    to: kl
    mode: mirror
    max_removal: 100%
    match: {email: email}
    fields: {first_name: first_name, plan: plan, ltv: ltv, active: active, signed_up: signed_up, tags: tags}
  vips_list:
    from: vips
    to: kl
    mode: audience
    audience: VIPs
    max_removal: 100%
    match: {email: email}
"""

IMPORT = "/api/profile-bulk-import-jobs"


@pytest.fixture
def emu() -> Iterator[KlaviyoEmulator]:
    with KlaviyoEmulator(api_keys={KEY}) as e:
        yield e


def make(tmp_path: Path, emu: KlaviyoEmulator, rx: WebhookReceiver, n: int = 40) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML))
    p = Project(root, rx, env={"KLAVIYO_API_KEY": KEY, "KLAVIYO_URL": emu.url})
    p.sql(PEOPLE_SQL.format(n=n))
    return p


def model(p: Project, where: str = "true") -> dict[str, dict[str, Any]]:
    """What Klaviyo must hold, from the warehouse, keyed by the lower-cased email (Klaviyo's identity)."""
    rows = p.sql(f"SELECT email, first_name, plan, ltv, active, strftime(signed_up, '%Y-%m-%dT%H:%M:%SZ') FROM src.people WHERE {where}")
    return {
        e.lower(): {
            "first_name": first,
            "properties": {"plan": plan, "ltv": int(ltv), "active": active, "signed_up": ts, "tags": ["a", "b"]},
        }
        for e, first, plan, ltv, active, ts in rows
    }


def held(emu: KlaviyoEmulator) -> dict[str, dict[str, Any]]:
    """The profiles that can be marketed to (a removal suppresses), as the model is written."""
    live = set(emu.held())
    return {e: {"first_name": p.get("first_name"), "properties": p["properties"]} for e, p in emu.profiles().items() if e in live}


def run(p: Project, sync: str, expect: int = 0) -> dict[str, Any]:
    result = p.cli("run", sync, "--json", expect=expect)
    assert KEY not in result.output
    [out] = json.loads(result.stdout)["syncs"]
    return out


def test_mirror_loads_reruns_nothing_changes_and_suppresses_by_identity(tmp_path: Path, rx: WebhookReceiver, emu: KlaviyoEmulator) -> None:
    p = make(tmp_path, emu, rx)
    first = run(p, "people")
    assert (first["status"], first["acknowledged"]) == ("success", 40), first
    assert held(emu) == model(p), "the end state equals the model, by Klaviyo's identity"
    assert [r.path for r in emu.request_log if r.method == "POST"] == ["/api/profile-suppression-bulk-delete-jobs", IMPORT]

    before = emu.request_count
    again = run(p, "people")
    assert again["status"] == "up_to_date" and emu.request_count == before, "a no-op re-run sends 0 requests"

    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id IN ('u0001', 'u0002', 'u0003')")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0010', 'u0011')")
    changed = run(p, "people")
    assert changed["status"] == "success" and changed["released"] == 2, changed
    new = emu.request_log[before:]
    [job] = [r for r in new if r.path == IMPORT]
    sent = [x["attributes"] for x in job.body["data"]["attributes"]["profiles"]["data"]]
    assert [a["properties"] for a in sent] == [{"plan": "team"}] * 3, "only the changed field is sent"
    assert emu.suppressed() == {"person10@example.com": "USER_SUPPRESSED", "person11@example.com": "USER_SUPPRESSED"}
    assert held(emu) == model(p)

    # a suppressed row that returns is unsuppressed (only manual suppressions are lifted)
    p.sql(
        "INSERT INTO src.people VALUES ('u0010', 'Person10@Example.com', 'First10', 'pro', 500, true, TIMESTAMP '2026-05-11 12:00:00', ['a', 'b'])"
    )
    assert run(p, "people")["acknowledged"] == 1
    assert held(emu) == model(p) and emu.suppressed() == {"person11@example.com": "USER_SUPPRESSED"}


def test_partial_failures_429s_and_lost_answers_lose_nothing(tmp_path: Path, rx: WebhookReceiver, emu: KlaviyoEmulator) -> None:
    p = make(tmp_path, emu, rx)
    p.sql("UPDATE src.people SET email = 'not-an-email' WHERE user_id = 'u0004'")
    emu.faults.inject("throttle", n=2, retry_after=0, match=f"POST {IMPORT}")
    emu.faults.inject("error", n=1, status=502, match="/import-errors")
    result = run(p, "people", expect=1)
    assert result["status"] == "partial", result
    assert result["acknowledged"] == 39 and result["rejected_by_destination"] == 1, result
    assert result["destination_report"]["throttled"] == 2
    status = p.json("status", expect=None)
    reasons = {e["row_key"]: e["reason"] for s in status["syncs"] if s["sync"] == "people" for e in s["rejected_rows"]}
    assert reasons["u0004"].startswith("invalid: Invalid email address"), reasons
    assert held(emu) == model(p, "user_id <> 'u0004'"), "everything else arrived once, by identity"

    # fixed at the source, with the answer of the import lost: resent, applied once
    p.sql("UPDATE src.people SET email = 'person4@example.com' WHERE user_id = 'u0004'")
    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id = 'u0006'")
    emu.faults.inject("drop_after", n=1, match=f"POST {IMPORT}")
    before = emu.request_count
    assert run(p, "people")["status"] == "success"
    assert emu.faults.injected["drop_after"] == 1
    bodies = [r.body for r in emu.request_log[before:] if r.path == IMPORT]
    assert len(bodies) == 2 and bodies[0] == bodies[1], "the same job, resent"
    assert held(emu) == model(p) and len(emu.profiles()) == 40, "no duplicate profile"
    assert run(p, "people")["status"] == "up_to_date"


def test_audience_is_list_membership_and_leaving_removes_from_the_list(tmp_path: Path, rx: WebhookReceiver, emu: KlaviyoEmulator) -> None:
    p = make(tmp_path, emu, rx)
    result = run(p, "vips_list")
    assert result["status"] == "success" and result["acknowledged"] == 20, result
    [(list_id, name)] = emu.lists().items()
    assert name == "VIPs" and result["destination_report"]["details"]["list_id"] == list_id
    assert emu.list_members(list_id) == set(model(p, "ltv >= 1000"))
    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0030', 'u0031')")
    assert run(p, "vips_list")["released"] == 2
    assert emu.list_members(list_id) == set(model(p, "ltv >= 1000"))
    assert "person30@example.com" in emu.profiles() and not emu.suppressed(), "leaving the list keeps the profile"


def test_on_remove_delete_requests_a_data_privacy_deletion(tmp_path: Path, rx: WebhookReceiver, emu: KlaviyoEmulator) -> None:
    p = make(tmp_path, emu, rx, n=6)
    text = (p.root / "syncs.yaml").read_text().replace("max_retries: 3}", "max_retries: 3, on_remove: delete}")
    (p.root / "syncs.yaml").write_text(text.replace("  vips_list:", "  unused:").replace("mode: audience", "mode: upsert"))
    assert run(p, "people")["acknowledged"] == 6
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0001', 'u0002')")
    assert run(p, "people")["released"] == 2
    assert [r.path for r in emu.request_log if r.path == "/api/data-privacy-deletion-jobs"] == ["/api/data-privacy-deletion-jobs"] * 2
    assert set(emu.profiles()) == set(model(p)) and not emu.suppressed()


def test_a_bad_key_stops_the_sync_and_validate_remote_checks_key_and_list(
    tmp_path: Path, rx: WebhookReceiver, emu: KlaviyoEmulator
) -> None:
    p = make(tmp_path, emu, rx)
    p.env["KLAVIYO_API_KEY"] = "pk_wrong_key_123456"
    result = run(p, "people", expect=1)
    assert result["status"] == "failed" and result["terminal"] is True and "not_authenticated" in result["error"], result
    assert "pk_wrong_key_123456" not in result["error"]
    out = p.cli("validate", "--remote", expect=None).output
    assert "not_authenticated" in out and "pk_wrong_key_123456" not in out
    p.env["KLAVIYO_API_KEY"] = KEY
    assert p.cli("validate", "--remote", expect=None).exit_code == 0


def test_values_are_typed_as_klaviyo_types_them() -> None:
    assert klaviyo_value("2026-05-01T12:00:00") == "2026-05-01T12:00:00Z"
    assert klaviyo_value("2026-05-01 14:00:00+02:00") == "2026-05-01T12:00:00Z"
    assert klaviyo_value("2026-05-01") == "2026-05-01"
    assert klaviyo_value([1, "x", True, 2.5, {"d": "2026-05-01T12:00:00Z"}]) == [1, "x", True, 2.5, {"d": "2026-05-01T12:00:00Z"}]
