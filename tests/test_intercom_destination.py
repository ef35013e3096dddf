"""Intercom, end to end: the real CLI, a real DuckDB warehouse, the official SDK
(python-intercom) over real HTTP to the local Intercom emulator (activation_emulators.intercom)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

pytest.importorskip("intercom")

from conftest import Project  # noqa: E402

from activation.destinations.base import ConfigError, SyncTarget  # noqa: E402
from activation.destinations.intercom.api import until_reset  # noqa: E402
from activation.destinations.intercom.destination import IntercomDestination, intercom_value  # noqa: E402
from activation.destinations.intercom.spec import IntercomDestinationSpec  # noqa: E402
from activation_emulators.intercom import IntercomEmulator  # noqa: E402

TOKEN = "intercom-test-token-8c2f1e"

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'person' || i || '@example.com' AS email,
       'Person ' || i AS full_name,
       ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
       CAST(i * 50 AS DECIMAL(12, 2)) AS ltv,
       i % 2 = 0 AS active,
       TIMESTAMP '2026-05-01 12:00:00' + INTERVAL (i) DAY AS signed_up,
       DATE '2027-01-01' + INTERVAL (i % 28) DAY AS renewal,
       ['tag' || (i % 3), 'all'] AS labels,
       'c' || (i % 5) AS company
FROM range({n}) t(i);
CREATE OR REPLACE TABLE src.companies AS
SELECT 'c' || i AS company_id, 'Company ' || i AS name, ['seed', 'growth'][1 + i % 2] AS tier, 10 * (i + 1) AS size
FROM range(5) t(i);
"""

YAML = """
version: 1
warehouse: {type: duckdb, path: warehouse.duckdb}
entities:
  person: {table: src.people, key: user_id}
  company: {table: src.companies, key: company_id}
audiences:
  vips: {entity: person, where: "ltv >= 2500"}
destinations:
  ic: {type: intercom, token: "${INTERCOM_TOKEN}", base_url: "${INTERCOM_URL}", max_retries: 4}
syncs:
  contacts:
    from: person
    to: ic
    object: contacts
    mode: mirror
    match: {external_id: user_id}
    fields: {email: email, name: full_name, signed_up_at: signed_up, plan: plan, ltv: ltv, active: active, renewal: renewal, labels: labels}
  vips:
    from: vips
    to: ic
    mode: audience
    audience: VIP
    match: {external_id: user_id}
  companies:
    from: company
    to: ic
    object: companies
    mode: mirror
    match: {company_id: company_id}
    fields: {name: name, size: size, tier: tier}
"""


@pytest.fixture
def emu() -> Iterator[IntercomEmulator]:
    with IntercomEmulator(tokens={TOKEN}) as e:
        for name, data_type in (("plan", "string"), ("ltv", "float"), ("active", "boolean"), ("renewal", "date"), ("labels", "string")):
            e.add_attribute("contact", name, data_type)
        e.add_attribute("company", "tier", "string")
        yield e


def project(root: Path, emu: IntercomEmulator, n: int) -> Project:
    root.mkdir(parents=True)
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML))
    p = Project(root, None, env={"INTERCOM_TOKEN": TOKEN, "INTERCOM_URL": emu.url})
    con = duckdb.connect(str(p.warehouse))
    con.execute(PEOPLE_SQL.format(n=n))
    con.close()
    return p


def model(p: Project) -> dict[str, dict[str, Any]]:
    """What Intercom must hold after `contacts`, by external_id, computed from the warehouse apart from activation."""
    rows = p.sql(
        "SELECT user_id, email, full_name, epoch(signed_up), plan, CAST(ltv AS DOUBLE), active, epoch(CAST(renewal AS TIMESTAMP)), "
        "array_to_string(labels, ', ') FROM src.people"
    )
    return {
        r[0]: {
            "email": r[1],
            "name": r[2],
            "signed_up_at": int(r[3]),
            "custom_attributes": {"plan": r[4], "ltv": r[5], "active": r[6], "renewal": int(r[7]), "labels": r[8]},
        }
        for r in rows
    }


def held(emu: IntercomEmulator) -> dict[str, dict[str, Any]]:
    return {
        c["external_id"]: {
            "email": c["email"],
            "name": c["name"],
            "signed_up_at": c["signed_up_at"],
            "custom_attributes": c["custom_attributes"],
        }
        for c in emu.live_contacts()
    }


def run(p: Project, sync: str, expect: int = 0) -> dict[str, Any]:
    result = p.cli("run", sync, "--json", expect=expect)
    assert TOKEN not in result.output
    [out] = json.loads(result.stdout)["syncs"]
    return out  # type: ignore[no-any-return]


def test_first_load_noop_changes_removals_audience_and_companies_end_equal_to_the_model(tmp_path: Path, emu: IntercomEmulator) -> None:
    p = project(tmp_path / "p", emu, n=60)
    first = run(p, "contacts")
    assert first["status"] == "success" and first["acknowledged"] == 60, first
    assert held(emu) == model(p)
    assert emu.versions == {"2.14"}, "the Intercom-Version header is sent"
    assert emu.request_count("/contacts", "POST") == 60 and emu.request_count("/contacts/search") == 60, "search, then create"

    before = emu.request_count()
    again = run(p, "contacts")
    assert again["status"] == "up_to_date" and again["sent"] == 0 and emu.request_count() == before, "a no-op rerun sends nothing"

    p.sql("UPDATE src.people SET plan = 'churned' WHERE user_id IN ('u0001', 'u0002', 'u0003', 'u0004')")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0010', 'u0011', 'u0012')")
    log_from = len(emu.request_log)
    third = run(p, "contacts")
    assert third["status"] == "success" and third["released"] == 3, third
    sent = emu.request_log[log_from:]
    puts = [r for r in sent if r.method == "PUT"]
    assert len(puts) == 4 and not [r for r in sent if r.path == "/contacts/search"], "known contacts are updated by their Intercom id"
    assert sorted(r.path.split("/")[2] for r in sent if r.path.endswith("/archive")) == sorted(
        c["id"] for c in emu.archived_contacts()
    ) and {c["external_id"] for c in emu.archived_contacts()} == {"u0010", "u0011", "u0012"}, "mirror archives (on_remove: archive)"
    assert held(emu) == model(p)

    p.sql("INSERT INTO src.people SELECT * REPLACE ('u0011' AS user_id) FROM src.people WHERE user_id = 'u0013'")
    p.sql("UPDATE src.people SET email = 'person11@example.com' WHERE user_id = 'u0011'")
    assert run(p, "contacts")["status"] == "success"
    assert "u0011" in held(emu) and len(emu.archived_contacts()) == 2, (
        "a contact back in the model is unarchived (409 archived), not duplicated"
    )
    assert held(emu) == model(p)

    vips = run(p, "vips")
    assert vips["status"] == "success" and vips["acknowledged"] == 10, vips
    by_ext = {c["id"]: c["external_id"] for c in emu.live_contacts()}
    assert {by_ext[i] for i in emu.tagged("VIP")} == {f"u00{i}" for i in range(50, 60)}
    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0050', 'u0051')")
    assert run(p, "vips")["released"] == 2
    assert {by_ext[i] for i in emu.tagged("VIP")} == {f"u00{i}" for i in range(52, 60)}, "untagged on leaving; still contacts"
    assert "u0050" in held(emu)

    assert run(p, "companies")["acknowledged"] == 5
    p.sql("DELETE FROM src.companies WHERE company_id = 'c4'")
    p.sql("UPDATE src.companies SET tier = 'scale' WHERE company_id = 'c0'")
    assert run(p, "companies")["released"] == 1
    companies = {c["company_id"]: (c["name"], c["size"], c["custom_attributes"]["tier"]) for c in emu.companies.values()}
    assert companies == {r[0]: (r[1], r[3], r[2]) for r in p.sql("SELECT company_id, name, tier, size FROM src.companies")}


def test_a_refused_row_is_rejected_alone_and_429s_5xx_and_lost_answers_lose_nothing(tmp_path: Path, emu: IntercomEmulator) -> None:
    p = project(tmp_path / "p", emu, n=40)
    p.sql("UPDATE src.people SET email = 'not an email' WHERE user_id = 'u0007'")
    emu.rate_limit, emu.window = 2400, 0.25  # 10 calls per quarter second: the load is throttled, then waited out
    first = run(p, "contacts", expect=1)
    assert first["status"] == "partial" and first["rejected_by_destination"] == 1 and first["acknowledged"] == 39, first
    assert first["destination_report"]["throttled"] >= 1 and emu.throttled >= 1, "429s waited out until X-RateLimit-Reset"
    want = model(p)
    del want["u0007"]
    assert held(emu) == want
    assert "Email is invalid" in p.cli("status", "contacts", expect=None).output, "Intercom's reason is kept with the rejected row"

    emu.rate_limit, emu.window = 10_000, 10.0
    emu.search_lag = 60.0  # new contacts are not found by search: a resent create meets a 409 naming the contact
    p.sql("UPDATE src.people SET email = 'person7@example.com' WHERE user_id = 'u0007'")
    p.sql(
        "INSERT INTO src.people SELECT * REPLACE ('u9' || user_id AS user_id, 'x' || email AS email) FROM src.people WHERE user_id < 'u0005'"
    )
    p.sql("UPDATE src.people SET plan = 'team' WHERE user_id < 'u0020'")
    emu.faults.inject("drop_after", n=2, match="POST /contacts:create")  # applied, the answer lost: resent
    emu.faults.inject("error", n=1, status=500, match="PUT /contacts")
    emu.faults.inject("throttle", n=1, retry_after=0, match="POST /contacts/search")
    second = run(p, "contacts")
    assert second["status"] == "success" and second["acknowledged"] == 25, second
    assert emu.faults.injected == {"drop_after": 2, "error": 1, "throttle": 1}
    assert held(emu) == model(p), "nothing lost, nothing doubled: one contact per external_id"
    assert run(p, "contacts")["status"] == "up_to_date"


def test_a_refused_token_is_terminal_and_prints_no_secret(tmp_path: Path, emu: IntercomEmulator) -> None:
    p = project(tmp_path / "p", emu, n=5)
    p.env["INTERCOM_TOKEN"] = "another-token-123456"
    refused = run(p, "contacts", expect=1)
    assert refused["status"] == "failed" and refused["terminal"] is True, refused
    assert "another-token-123456" not in json.dumps(refused) and "Access Token Invalid" in refused["error"]
    assert emu.request_count() == 1, "a refused token is not retried"
    p.env["INTERCOM_TOKEN"] = TOKEN
    assert run(p, "contacts")["status"] == "success" and held(emu) == model(p)


def test_values_are_typed_as_intercom_stores_them() -> None:
    assert intercom_value("date", "2026-05-01T12:00:00") == 1777636800
    assert intercom_value("date", "2026-05-01 14:00:00+02:00") == 1777636800
    assert intercom_value("date", "2026-05-01") == 1777593600
    assert intercom_value("integer", 12.0) == 12 and intercom_value("float", 3) == 3.0
    assert intercom_value("boolean", "TRUE") is True and intercom_value("string", True) == "true"
    assert intercom_value("string", ["a", 1, True]) == "a, 1, true" and intercom_value(None, None) is None
    assert until_reset({"X-RateLimit-Reset": "1000"}, now=lambda: 998.5) == 1.5 and until_reset({}) is None


def test_check_target_and_remote(emu: IntercomEmulator) -> None:
    spec = IntercomDestinationSpec(type="intercom", token=TOKEN, base_url=emu.url)
    dest = IntercomDestination("ic", spec, ".")
    with pytest.raises(ConfigError, match="external_id or email"):
        dest.check_target(SyncTarget(sync="s", mode="upsert", match_fields=["user_id"]))
    with pytest.raises(ConfigError, match="tags contacts"):
        dest.check_target(SyncTarget(sync="s", object="companies", mode="audience", match_fields=["company_id"], audience="x"))
    lead = IntercomDestination("ic", spec.model_copy(update={"role": "lead"}), ".")
    with pytest.raises(ConfigError, match="lead"):
        lead.check_target(SyncTarget(sync="s", mode="upsert", match_fields=["external_id"]))
    target = SyncTarget(sync="s", mode="mirror", match_fields=["external_id"], fields=["email", "plan", "nickname"])
    dest.check_target(target)
    [problem] = dest.check_remote(target)
    assert "no custom data attribute 'nickname'" in problem
    bad = IntercomDestination("ic", spec.model_copy(update={"token": "wrong-token-0000"}), ".")
    [problem] = bad.check_remote(target)
    assert "refused" in problem and "wrong-token-0000" not in problem
