"""Customer.io, end to end: the real CLI, a real DuckDB warehouse and the official SDK
(customerio) over real HTTP to the local Track API emulator."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import Project

from activation.destinations.base import RowOp, SyncTarget
from activation.destinations.customerio.destination import CustomerioDestination, customerio_value
from activation.destinations.customerio.spec import CustomerioDestinationSpec
from activation_emulators.customerio import CustomerioEmulator
from activation_emulators.webhook import WebhookReceiver

SITE = "site-7c1d"
KEY = "customerio-test-key-9b2e4f"
BATCH = "/api/v2/batch"

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
  cio: {type: customerio, site_id: "${CUSTOMERIO_SITE_ID}", api_key: "${CUSTOMERIO_API_KEY}", url: "${CUSTOMERIO_URL}", max_retries: 3}
syncs:
  people:
    from: person
    to: cio
    mode: mirror
    max_removal: 100%
    match: {id: user_id}
    fields: {email: email, plan: plan, ltv: ltv, active: active, created_at: signed_up, tags: tags}
  vips_segment:
    from: vips
    to: cio
    mode: audience
    audience: "1"
    max_removal: 100%
    match: {id: user_id}
"""


@pytest.fixture
def emu() -> Iterator[CustomerioEmulator]:
    with CustomerioEmulator(credentials={(SITE, KEY)}) as e:
        yield e


def make(tmp_path: Path, emu: CustomerioEmulator, rx: WebhookReceiver, n: int = 40) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML))
    p = Project(root, rx, env={"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_URL": emu.url})
    p.sql(PEOPLE_SQL.format(n=n))
    return p


def model(p: Project, where: str = "true") -> dict[str, dict[str, Any]]:
    """What Customer.io must hold, from the warehouse, typed as Customer.io types it (by id)."""
    rows = p.sql(f"SELECT user_id, email, plan, ltv, active, epoch(signed_up) FROM src.people WHERE {where}")
    return {
        k: {"email": e, "plan": plan, "ltv": int(ltv), "active": active, "created_at": int(ts), "tags": ["a", "b"]}
        for k, e, plan, ltv, active, ts in rows
    }


def run(p: Project, sync: str, expect: int = 0) -> dict[str, Any]:
    result = p.cli("run", sync, "--json", expect=expect)
    assert KEY not in result.output
    [out] = json.loads(result.stdout)["syncs"]
    return out


def test_mirror_loads_reruns_nothing_changes_and_removes_by_identity(tmp_path: Path, rx: WebhookReceiver, emu: CustomerioEmulator) -> None:
    p = make(tmp_path, emu, rx)
    first = run(p, "people")
    assert (first["status"], first["acknowledged"]) == ("success", 40), first
    assert emu.people() == model(p), "the end state equals the model, keyed by id, timestamps in UNIX seconds"
    assert [r.path for r in emu.request_log] == [BATCH], "40 people in one v2 batch call"

    before = emu.request_count
    again = run(p, "people")
    assert again["status"] == "up_to_date" and emu.request_count == before, "a no-op re-run sends 0 requests"

    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id IN ('u0001', 'u0002', 'u0003')")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0010', 'u0011')")
    changed = run(p, "people")
    assert changed["status"] == "success" and changed["released"] == 2, changed
    ops = [op for r in emu.request_log[before:] for op in r.body["batch"]]
    writes = [op for op in ops if op["action"] == "identify"]
    assert [op["attributes"] for op in writes] == [{"plan": "team"}] * 3, "only the changed attribute is sent"
    assert sorted(op["identifiers"]["id"] for op in ops if op["action"] == "delete") == ["u0010", "u0011"]
    assert emu.people() == model(p)


def test_partial_failures_and_429s_lose_nothing(tmp_path: Path, rx: WebhookReceiver, emu: CustomerioEmulator) -> None:
    p = make(tmp_path, emu, rx)
    p.sql("UPDATE src.people SET plan = repeat('x', 1200) WHERE user_id = 'u0004'")  # over the 1000-byte value limit
    emu.faults.inject("throttle", n=2, retry_after=None, match=BATCH)
    result = run(p, "people", expect=1)
    assert result["status"] == "partial", result
    assert result["acknowledged"] == 39 and result["rejected_by_destination"] == 1, result
    assert result["destination_report"]["throttled"] == 2
    status = p.json("status", expect=None)
    reasons = {e["row_key"]: e["reason"] for s in status["syncs"] if s["sync"] == "people" for e in s["rejected_rows"]}
    assert reasons == {"u0004": "invalid attributes.plan: attribute values are limited to 1000 bytes"}, reasons
    assert emu.people() == model(p, "user_id <> 'u0004'"), "everything else arrived once, by identity"

    # fixed at the source, with the answer of the write lost: resent, applied once
    p.sql("UPDATE src.people SET plan = 'pro' WHERE user_id = 'u0004'")
    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id = 'u0006'")
    emu.faults.inject("drop_after", n=1, match=BATCH)
    before = emu.request_count
    assert run(p, "people")["status"] == "success"
    assert emu.faults.injected["drop_after"] == 1
    bodies = [r.body for r in emu.request_log[before:] if r.path == BATCH]
    assert len(bodies) == 2 and bodies[0] == bodies[1], "the same request, resent"
    assert sorted(op["identifiers"]["id"] for op in bodies[0]["batch"]) == ["u0004", "u0006"]
    assert emu.people() == model(p)
    assert run(p, "people")["status"] == "up_to_date"


def test_audience_is_manual_segment_membership(tmp_path: Path, rx: WebhookReceiver, emu: CustomerioEmulator) -> None:
    p = make(tmp_path, emu, rx)
    result = run(p, "vips_segment", expect=1)
    assert result["status"] == "failed" and result["terminal"] is True and "no manual segment 1" in result["error"], result
    segment = emu.create_segment("VIPs")
    result = run(p, "vips_segment")
    assert result["status"] == "success" and result["acknowledged"] == 20, result
    vips = {k for k in model(p, "ltv >= 1000")}
    assert emu.members(segment) == vips and set(emu.identities()) == vips, "identified, then added"
    paths = [r.path for r in emu.request_log if r.status == 200]
    assert paths == [BATCH, BATCH, f"/api/v1/segments/{segment}/add_customers"], "identified (again), then added"
    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0030', 'u0031')")
    assert run(p, "vips_segment")["released"] == 2
    assert emu.members(segment) == vips - {"u0030", "u0031"}
    assert "u0030" in emu.people(), "leaving the segment keeps the person"


def test_a_bad_key_stops_the_sync_and_validate_remote_checks_it(tmp_path: Path, rx: WebhookReceiver, emu: CustomerioEmulator) -> None:
    p = make(tmp_path, emu, rx)
    p.env["CUSTOMERIO_API_KEY"] = "wrong-key-123456"
    result = run(p, "people", expect=1)
    assert result["status"] == "failed" and result["terminal"] is True and "HTTP 401" in result["error"], result
    assert [r.status for r in emu.request_log] == [401], "a refused credential is not retried"
    assert "wrong-key-123456" not in result["error"]
    out = p.cli("validate", "--remote", expect=None).output
    assert "refused the Track API credentials" in out and "wrong-key-123456" not in out
    p.env["CUSTOMERIO_API_KEY"] = KEY
    out = p.cli("validate", "--remote", expect=None).output
    assert "refused" not in out, out


def test_values_are_typed_as_customerio_types_them() -> None:
    noon = int(datetime(2026, 5, 1, 12, tzinfo=timezone.utc).timestamp())
    assert customerio_value("2026-05-01T12:00:00") == noon, "a time without a zone is UTC"
    assert customerio_value("2026-05-01 14:00:00+02:00") == customerio_value("2026-05-01T12:00:00Z") == noon
    assert customerio_value("2026-05-01T14:00:00+0200") == noon
    assert customerio_value(datetime(2026, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == noon
    assert customerio_value(date(2026, 5, 1)) == customerio_value("2026-05-01") == noon - 12 * 3600
    assert customerio_value(Decimal("50.00")) == 50 and customerio_value(Decimal("2.5")) == 2.5
    assert customerio_value(float("nan")) is None and customerio_value(None) is None
    assert customerio_value([True, 1, "x", {"at": "2026-05-01T12:00:00Z"}]) == [True, 1, "x", {"at": noon}]
    assert customerio_value("2026-13-01") == "2026-13-01", "not a date: kept as text"


def test_an_email_workspace_folds_case_and_segments_by_email() -> None:
    with CustomerioEmulator(credentials={(SITE, KEY)}, identify_by="email") as emu:
        segment = emu.create_segment("VIPs")
        spec = CustomerioDestinationSpec(type="customerio", site_id=SITE, api_key=KEY, url=emu.url, identify_by="email")
        dest = CustomerioDestination("cio", spec, ".")
        target = SyncTarget(sync="s", mode="audience", match_fields=["email"], fields=["plan"], audience=str(segment))
        dest.check_target(target)
        assert dest.identities(target, "k", {"email": " A@Example.com"}) == ("a@example.com",)
        ops = [RowOp("upsert", "a", {"email": "A@Example.com", "plan": "pro"}), RowOp("upsert", "b", {"email": "nope", "plan": "x"})]
        results = {r.key: r for r in dest.push(target, ops)}
        assert results["a"].ok and not results["b"].ok and "identifiers.email" in (results["b"].error or "")
        assert emu.people() == {"a@example.com": {"plan": "pro"}} and emu.members(segment) == {"a@example.com"}
        [add] = [r for r in emu.request_log if r.path.endswith("/add_customers")]
        assert add.query == "id_type=email" and add.body == {"ids": ["A@Example.com"]}, "only the identified row is added"
        assert all(r.ok for r in dest.push(target, [RowOp("remove", "a@example.com", {"email": "a@example.com"})]))
        assert emu.members(segment) == set() and "a@example.com" in emu.people()
        dest.close()


def test_a_cut_answer_is_resent_and_a_garbled_one_leaves_rows_possibly_delivered(emu: CustomerioEmulator) -> None:
    spec = CustomerioDestinationSpec(type="customerio", site_id=SITE, api_key=KEY, url=emu.url, max_retries=2)
    dest = CustomerioDestination("cio", spec, ".", sleep=lambda _: None)
    target = SyncTarget(sync="s", mode="mirror", match_fields=["id"], fields=["plan"])
    op = RowOp("upsert", "a", {"id": "a", "plan": "pro"})
    emu.faults.inject("truncate", n=1, match=BATCH)
    [cut] = dest.push(target, [op])
    assert cut.ok and emu.faults.injected["truncate"] == 1, "a cut answer is no answer: resent, applied once"
    emu.faults.inject("garble", n=1, match=BATCH)
    [garbled] = dest.push(target, [op])
    assert not garbled.ok and garbled.unknown, "a 200 that cannot be read: possibly delivered"
    assert emu.people() == {"a": {"plan": "pro"}}
    dest.close()
