"""Braze, end to end: the real CLI, a real DuckDB warehouse, the shared HTTP client over real
HTTP to the local Braze emulator (activation_emulators.braze)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from conftest import Project

from activation.destinations.base import ConfigError, SyncTarget
from activation.destinations.braze.destination import BrazeDestination, _until_reset, braze_value
from activation.destinations.braze.spec import BrazeDestinationSpec
from activation_emulators.braze import BrazeEmulator

KEY = "braze-test-key-5d1e0c"

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'person' || i || '@example.com' AS email,
       'First' || i AS first_name,
       ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
       CAST(i * 50 AS DECIMAL(12, 2)) AS ltv,
       i % 2 = 0 AS active,
       TIMESTAMP '2026-05-01 12:00:00' + INTERVAL (i) DAY AS signed_up,
       DATE '1990-03-01' + INTERVAL (i % 28) DAY AS birthday,
       ['tag' || (i % 3), 'all'] AS tags
FROM range({n}) t(i);
"""

YAML = """
version: 1
warehouse: {type: duckdb, path: warehouse.duckdb}
entities:
  person: {table: src.people, key: user_id}
audiences:
  vips: {entity: person, where: "ltv >= 5000"}
destinations:
  braze: {type: braze, api_key: "${BRAZE_API_KEY}", rest_endpoint: "${BRAZE_URL}", max_retries: 5}
syncs:
  profiles:
    from: person
    to: braze
    mode: mirror
    match: {external_id: user_id}
    fields: {email: email, first_name: first_name, plan: plan, ltv: ltv, active: active, signed_up: signed_up, dob: birthday, tags: tags}
  vips:
    from: vips
    to: braze
    mode: audience
    audience: is_vip
    match: {external_id: user_id}
"""


@pytest.fixture
def emu() -> Iterator[BrazeEmulator]:
    with BrazeEmulator(api_keys={KEY}) as e:
        yield e


def project(root: Path, emu: BrazeEmulator, n: int) -> Project:
    root.mkdir(parents=True)
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML))
    p = Project(root, None, env={"BRAZE_API_KEY": KEY, "BRAZE_URL": emu.url})
    con = duckdb.connect(str(p.warehouse))
    con.execute(PEOPLE_SQL.format(n=n))
    con.close()
    return p


def model(p: Project) -> dict[str, dict[str, Any]]:
    """What Braze must hold after `profiles`, computed from the warehouse apart from activation."""
    rows = p.sql(
        "SELECT user_id, email, first_name, plan, CAST(ltv AS BIGINT), active, strftime(signed_up, '%Y-%m-%dT%H:%M:%SZ'), "
        "strftime(birthday, '%Y-%m-%d'), tags FROM src.people"
    )
    keys = ("email", "first_name", "plan", "ltv", "active", "signed_up", "dob", "tags")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def held(emu: BrazeEmulator, drop: tuple[str, ...] = ("is_vip",)) -> dict[str, dict[str, Any]]:
    return {k: {f: v for f, v in profile.items() if f not in drop} for k, profile in emu.profiles().items()}


def run(p: Project, sync: str, expect: int = 0) -> dict[str, Any]:
    result = p.cli("run", sync, "--json", expect=expect)
    assert KEY not in result.output
    [out] = json.loads(result.stdout)["syncs"]
    return out  # type: ignore[no-any-return]


def test_first_load_noop_changes_removals_and_audience_end_equal_to_the_model(tmp_path: Path, emu: BrazeEmulator) -> None:
    p = project(tmp_path / "p", emu, n=120)
    first = run(p, "profiles")
    assert first["status"] == "success" and first["acknowledged"] == 120, first
    assert held(emu) == model(p)
    tracks = [r for r in emu.request_log if r.path == "/users/track"]
    assert [len(r.body["attributes"]) for r in tracks] in ([75, 45], [45, 75]), "75 attribute objects per call, Braze's limit"
    assert emu.attribute_types["ltv"] == "Number" and emu.attribute_types["signed_up"] == "Time"
    assert emu.attribute_types["active"] == "Boolean" and emu.attribute_types["tags"] == "Array"

    before = emu.request_count()
    again = run(p, "profiles")
    assert again["status"] == "up_to_date" and again["sent"] == 0 and emu.request_count() == before, "a no-op rerun sends nothing"

    p.sql("UPDATE src.people SET plan = 'churned' WHERE user_id IN ('u0001', 'u0002', 'u0003', 'u0004', 'u0005')")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0010', 'u0011', 'u0012')")
    log_from = len(emu.request_log)
    third = run(p, "profiles")
    assert third["status"] == "success" and third["released"] == 3, third
    sent = emu.request_log[log_from:]
    [track] = [r for r in sent if r.path == "/users/track"]
    assert track.body["attributes"] == [{"external_id": f"u000{i}", "plan": "churned"} for i in range(1, 6)], "changed attributes only"
    [delete] = [r for r in sent if r.path == "/users/delete"]
    assert sorted(delete.body["external_ids"]) == ["u0010", "u0011", "u0012"]
    assert held(emu) == model(p)

    vips = run(p, "vips")
    assert vips["status"] == "success"
    is_vip = {k for k, v in emu.profiles().items() if v.get("is_vip") is True}
    assert is_vip == {k for k, v in model(p).items() if v["ltv"] >= 5000} and len(is_vip) == 20
    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0100', 'u0101')")
    assert run(p, "vips")["released"] == 2
    assert emu.profiles()["u0100"]["is_vip"] is False and emu.profiles()["u0101"]["is_vip"] is False
    assert len({k for k, v in emu.profiles().items() if v.get("is_vip") is True}) == 18


def test_a_refused_user_is_rejected_alone_and_429s_5xx_and_lost_answers_lose_nothing(tmp_path: Path, emu: BrazeEmulator) -> None:
    p = project(tmp_path / "p", emu, n=200)
    p.sql("UPDATE src.people SET email = 'not an email' WHERE user_id = 'u0007'")
    emu.track_limit, emu.track_window = 1, 1.0  # the workspace's rate limit, tiny: 3 calls at once, 2 get a 429
    first = run(p, "profiles", expect=1)
    assert first["status"] == "partial" and first["rejected_by_destination"] == 1 and first["acknowledged"] == 199, first
    assert first["destination_report"]["throttled"] >= 2 and emu.throttled >= 2, "waited out until X-RateLimit-Reset"
    want = model(p)
    del want["u0007"]  # Braze refuses an invalid email: the user is neither created nor updated
    assert held(emu) == want
    assert "Invalid email" in p.cli("status", "profiles", expect=None).output, "Braze's reason is kept with the rejected row"

    emu.track_limit = 3000
    p.sql("UPDATE src.people SET email = 'person7@example.com' WHERE user_id = 'u0007'")
    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id < 'u0150'")
    emu.faults.inject("error", n=1, status=500, match="POST /users/track")
    emu.faults.inject("drop_after", n=1, match="POST /users/track")  # applied, its answer lost: resent
    emu.faults.inject("throttle", n=1, retry_after=0, match="POST /users/track")
    second = run(p, "profiles")
    assert second["status"] == "success" and second["acknowledged"] == 150, second
    assert emu.faults.injected == {"error": 1, "drop_after": 1, "throttle": 1}
    assert held(emu) == model(p), "nothing lost, nothing doubled: Braze upserts by external_id"
    assert run(p, "profiles")["status"] == "up_to_date"


def test_a_whole_call_refused_rejects_its_rows_and_a_refused_key_is_terminal(tmp_path: Path, emu: BrazeEmulator) -> None:
    p = project(tmp_path / "p", emu, n=10)
    emu.faults.inject("error", n=1, status=400, match="POST /users/track")
    first = run(p, "profiles", expect=1)
    assert first["rejected_by_destination"] == 10 and emu.profiles() == {}, first
    p.env["BRAZE_API_KEY"] = "another-key-123456"
    refused = run(p, "profiles", expect=1)
    assert refused["status"] == "failed" and refused["terminal"] is True, refused
    assert "another-key-123456" not in str(refused)
    assert emu.request_count("/users/track") == 2, "a refused key is not retried"
    p.env["BRAZE_API_KEY"] = KEY
    assert run(p, "profiles")["status"] == "success" and held(emu) == model(p)


def test_values_are_typed_as_braze_stores_them() -> None:
    assert braze_value("signed_up", "2026-05-01T12:00:00") == "2026-05-01T12:00:00Z"
    assert braze_value("signed_up", "2026-05-01 12:00:00.5+02:00") == "2026-05-01T12:00:00.5+02:00"
    assert braze_value("dob", "1990-03-01T00:00:00") == "1990-03-01"
    assert braze_value("tags", ["a", 1, None, True, "a"]) == ["a", "1", "true"]
    assert [braze_value("x", v) for v in (3, 2.5, False, None, "text", {"a": 1})] == [3, 2.5, False, None, "text", {"a": 1}]


def test_the_wait_after_a_429_is_until_braze_s_reset() -> None:
    response = httpx.Response(429, headers={"X-RateLimit-Reset": "1000"})
    assert _until_reset(response, now=lambda: 998.5) == 1.5
    assert _until_reset(response, now=lambda: 1001.0) == 0.0
    assert _until_reset(httpx.Response(429)) is None


def test_check_target_and_remote(emu: BrazeEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BrazeDestinationSpec(type="braze", api_key=KEY, rest_endpoint=emu.url)
    dest = BrazeDestination("braze", spec, ".")
    with pytest.raises(ConfigError, match="external_id"):
        dest.check_target(SyncTarget(sync="s", mode="upsert", match_fields=["email"]))
    with pytest.raises(ConfigError, match="audience"):
        dest.check_target(SyncTarget(sync="s", mode="audience", match_fields=["external_id"]))
    target = SyncTarget(sync="s", mode="audience", match_fields=["external_id"], fields=["plan", "ltv"], audience="is_vip")
    dest.check_target(target)
    emu.blocklist("ltv")
    assert dest.check_remote(target) == ["the Braze custom attribute 'ltv' is blocklisted: Braze drops what is written to it"]
    bad = BrazeDestination("braze", spec.model_copy(update={"api_key": "wrong-key-0000"}), ".")
    [problem] = bad.check_remote(target)
    assert "refused the API key" in problem and "wrong-key-0000" not in problem
