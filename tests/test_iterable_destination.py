"""Iterable, end to end: the real CLI, a real DuckDB warehouse and the shared HTTP client over
real HTTP to the local Iterable emulator."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project

from activation.destinations.base import RowOp, SyncTarget
from activation.destinations.iterable.destination import IterableDestination, iterable_value
from activation.destinations.iterable.spec import IterableDestinationSpec
from activation_emulators.iterable import IterableEmulator
from activation_emulators.webhook import WebhookReceiver

KEY = "iterable-test-key-5d1e0a"

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'Person' || i || '@Example.com' AS email,
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
  it: {type: iterable, api_key: "${ITERABLE_API_KEY}", base_url: "${ITERABLE_URL}", max_retries: 3}
syncs:
  users:
    from: person
    to: it
    mode: mirror
    max_removal: 100%
    match: {email: email}
    fields: {plan: plan, ltv: ltv, active: active, signed_up: signed_up, tags: tags}
  vips_list:
    from: vips
    to: it
    mode: audience
    audience: VIPs
    max_removal: 100%
    match: {email: email}
"""


@pytest.fixture
def emu() -> Iterator[IterableEmulator]:
    with IterableEmulator(api_keys={KEY}) as e:
        yield e


def make(tmp_path: Path, emu: IterableEmulator, rx: WebhookReceiver, n: int = 40) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML))
    p = Project(root, rx, env={"ITERABLE_API_KEY": KEY, "ITERABLE_URL": emu.url})
    p.sql(PEOPLE_SQL.format(n=n))
    return p


def model(p: Project, where: str = "true") -> dict[str, dict[str, Any]]:
    """What Iterable must hold, from the warehouse, typed as Iterable types it."""
    rows = p.sql(f"SELECT email, plan, ltv, active, strftime(signed_up, '%Y-%m-%d %H:%M:%S') FROM src.people WHERE {where}")
    return {
        e.lower(): {"plan": plan, "ltv": int(ltv), "active": active, "signed_up": f"{ts} +00:00", "tags": ["a", "b"]}
        for e, plan, ltv, active, ts in rows
    }


def held(emu: IterableEmulator) -> dict[str, dict[str, Any]]:
    return {k: u["dataFields"] for k, u in emu.users().items()}


def run(p: Project, sync: str, expect: int = 0) -> dict[str, Any]:
    result = p.cli("run", sync, "--json", expect=expect)
    assert KEY not in result.output
    import json

    [out] = json.loads(result.stdout)["syncs"]
    return out


def test_mirror_loads_reruns_nothing_changes_and_removes_by_identity(tmp_path: Path, rx: WebhookReceiver, emu: IterableEmulator) -> None:
    p = make(tmp_path, emu, rx)
    first = run(p, "users")
    assert (first["status"], first["acknowledged"]) == ("success", 40), first
    assert held(emu) == model(p), "the end state equals the model, keyed by the lower-cased email"
    assert emu.fields() == {"plan": "string", "ltv": "long", "active": "boolean", "signed_up": "date", "tags": "string[]"}
    assert [r.path for r in emu.request_log] == ["/api/users/bulkUpdate"]

    before = emu.request_count
    again = run(p, "users")
    assert again["status"] == "up_to_date" and emu.request_count == before, "a no-op re-run sends 0 requests"

    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id IN ('u0001', 'u0002', 'u0003')")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0010', 'u0011')")
    changed = run(p, "users")
    assert changed["status"] == "success" and changed["released"] == 2, changed
    new = emu.request_log[before:]
    [bulk] = [r for r in new if r.path == "/api/users/bulkUpdate"]
    assert [u["dataFields"] for u in bulk.body["users"]] == [{"plan": "team"}] * 3, "only the changed field is sent"
    assert sorted(r.path for r in new if r.method == "DELETE") == ["/api/users/Person10@Example.com", "/api/users/Person11@Example.com"]
    assert held(emu) == model(p)


def test_partial_failures_and_429s_lose_nothing(tmp_path: Path, rx: WebhookReceiver, emu: IterableEmulator) -> None:
    p = make(tmp_path, emu, rx)
    p.sql("UPDATE src.people SET email = 'not-an-email' WHERE user_id = 'u0004'")
    emu.forget("person5@example.com")
    emu.faults.inject("throttle", n=2, retry_after=None, match="/api/users/bulkUpdate")
    result = run(p, "users", expect=1)
    assert result["status"] == "partial", result
    assert result["acknowledged"] == 38 and result["rejected_by_destination"] == 2, result
    assert result["destination_report"]["throttled"] == 2
    status = p.json("status", expect=None)
    reasons = {e["row_key"]: e["reason"] for s in status["syncs"] if s["sync"] == "users" for e in s["rejected_rows"]}
    assert reasons["u0004"].startswith("InvalidEmail") and reasons["u0005"].startswith("Forgotten"), reasons
    assert held(emu) == model(p, "user_id NOT IN ('u0004', 'u0005')"), "everything else arrived once, by identity"

    # fixed at the source, with the answer of the write lost: resent, applied once
    p.sql("UPDATE src.people SET email = 'person4@example.com' WHERE user_id = 'u0004'")
    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id = 'u0006'")
    emu.faults.inject("drop_after", n=1, match="/api/users/bulkUpdate")
    before = emu.request_count
    run(p, "users", expect=1)  # u0005 stays forgotten: refused again (after a lost answer: possibly delivered)
    assert emu.faults.injected["drop_after"] == 1
    bodies = [r.body for r in emu.request_log[before:] if r.path == "/api/users/bulkUpdate"]
    assert len(bodies) == 2 and bodies[0] == bodies[1], "the same request, resent"
    assert sorted(u["email"] for u in bodies[0]["users"]) == ["Person5@Example.com", "Person6@Example.com", "person4@example.com"]
    assert held(emu) == model(p, "user_id <> 'u0005'")
    again = run(p, "users", expect=1)
    assert again["acknowledged"] == 0 and again["rejected_by_destination"] == 1, "only the forgotten user is tried again"
    assert held(emu) == model(p, "user_id <> 'u0005'")


def test_audience_is_list_membership_and_leaving_unsubscribes(tmp_path: Path, rx: WebhookReceiver, emu: IterableEmulator) -> None:
    p = make(tmp_path, emu, rx)
    result = run(p, "vips_list")
    assert result["status"] == "success" and result["acknowledged"] == 20, result
    [(list_id, name)] = emu.lists().items()
    assert name == "VIPs" and result["destination_report"]["details"]["list_id"] == list_id
    assert emu.list_members(list_id) == {e for e in model(p, "ltv >= 1000")}
    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0030', 'u0031')")
    assert run(p, "vips_list")["released"] == 2
    assert emu.list_members(list_id) == {e for e in model(p, "ltv >= 1000")}
    assert "person30@example.com" in emu.users(), "leaving the list keeps the user"


def test_a_bad_key_stops_the_sync_and_validate_remote_checks_key_and_list(
    tmp_path: Path, rx: WebhookReceiver, emu: IterableEmulator
) -> None:
    p = make(tmp_path, emu, rx)
    p.env["ITERABLE_API_KEY"] = "wrong-key-123456"
    result = run(p, "users", expect=1)
    assert result["status"] == "failed" and result["terminal"] is True and "BadApiKey" in result["error"], result
    assert "wrong-key-123456" not in result["error"]
    out = p.cli("validate", "--remote", expect=None).output
    assert "BadApiKey" in out and "wrong-key-123456" not in out
    p.env["ITERABLE_API_KEY"] = KEY
    out = p.cli("validate", "--remote", expect=None).output
    assert "no list named 'VIPs'" in out


def test_values_are_typed_as_iterable_types_them() -> None:
    assert iterable_value("2026-05-01T12:00:00") == "2026-05-01 12:00:00 +00:00"
    assert iterable_value("2026-05-01T14:00:00+02:00") == "2026-05-01 12:00:00 +00:00"
    assert iterable_value("2026-05-01") == "2026-05-01"
    assert iterable_value([1, "x", True, 2.5, {"d": "2026-05-01 12:00:00Z"}]) == [1, "x", True, 2.5, {"d": "2026-05-01 12:00:00 +00:00"}]


def test_by_user_id_deletes_through_the_user_id_path() -> None:
    with IterableEmulator(api_keys={KEY}, identify_by="userId") as emu:
        spec = IterableDestinationSpec(type="iterable", api_key=KEY, base_url=emu.url, identify_by="userId")
        dest = IterableDestination("it", spec, ".")
        target = SyncTarget(sync="s", mode="mirror", match_fields=["userId"], fields=["plan"])
        dest.check_target(target)
        ops = [RowOp("upsert", "a", {"userId": "A/1", "plan": "pro"}), RowOp("upsert", "b", {"userId": "b2", "plan": "free"})]
        assert all(r.ok for r in dest.push(target, ops))
        assert set(emu.users()) == {"A/1", "b2"} and emu.users()["A/1"]["dataFields"] == {"plan": "pro"}
        assert all(r.ok for r in dest.push(target, [RowOp("remove", "A/1", {"userId": "A/1"}), RowOp("remove", "zz", {"userId": "zz"})]))
        assert set(emu.users()) == {"b2"}
        assert [r.path for r in emu.request_log if r.method == "DELETE"] == ["/api/users/byUserId/A/1", "/api/users/byUserId/zz"]
        dest.close()
