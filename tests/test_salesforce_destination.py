"""Salesforce destination, end to end: the real CLI, a real DuckDB warehouse, simple-salesforce
over real HTTP to the local Salesforce emulator (reached through the destination's `transport_url`).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

pytest.importorskip("simple_salesforce")

from activation.cli import app  # noqa: E402
from activation.destinations.base import DestinationError, RowOp, SyncTarget  # noqa: E402
from activation.destinations.salesforce.destination import SalesforceDestination  # noqa: E402
from activation.destinations.salesforce.spec import SalesforceDestinationSpec  # noqa: E402
from activation_emulators.salesforce import DEFAULT_USER, SalesforceEmulator  # noqa: E402

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'u' || lpad(CAST(i AS VARCHAR), 4, '0') AS user_id,
       'First' || i AS first_name, 'Last' || i AS last_name,
       'person' || i || '@example.com' AS email,
       ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
       CAST(i * 50 AS DECIMAL(12, 2)) AS ltv,
       '1990-01-' || lpad(CAST(1 + i % 28 AS VARCHAR), 2, '0') AS birthdate,
       TIMESTAMP '2024-05-01 12:00:00' + INTERVAL (i) HOUR AS last_seen,
       i % 2 = 0 AS opted_out
FROM range({n}) t(i);
"""

YAML = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
entities:
  person: {{table: src.people, key: user_id}}
audiences:
  vips: {{entity: person, where: "ltv >= 1000"}}
destinations:
  crm:
    type: salesforce
{auth}
    transport_url: "${{SF_URL}}"
    bulk_threshold: {bulk}
    bulk_poll_seconds: 0.01
    max_retries: 2
syncs:
  contacts:
    from: person
    to: crm
    object: Contact
    mode: {mode}
    match: {{External_Id__c: user_id}}
    fields:
      FirstName: first_name
      LastName: last_name
      Email: email
      Plan__c: plan
      Lifetime_Value__c: ltv
      Birthdate: birthdate
      Last_Seen_At__c: last_seen
      HasOptedOutOfEmail: opted_out{extra_field}
  vip_campaign:
    from: vips
    to: crm
    mode: audience
    audience: VIP customers
    match: {{Email: email}}
"""
SESSION_AUTH = """    instance_url: https://emulated.my.salesforce.com
    session_id: "${SF_TOKEN}\""""
PASSWORD_AUTH = """    username: integration@example.com
    password: "${SF_PASSWORD}"
    security_token: "${SF_SECURITY_TOKEN}\""""


@dataclass
class SfProject:
    root: Path
    emu: SalesforceEmulator
    runner: CliRunner = field(default_factory=CliRunner)

    def sql(self, statement: str) -> None:
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            con.execute(statement)
        finally:
            con.close()

    def cli(self, *args: str, expect: int | None = 0) -> Any:
        env = {"SF_URL": self.emu.url, "SF_TOKEN": self.emu.token, "SF_PASSWORD": DEFAULT_USER[1], "SF_SECURITY_TOKEN": DEFAULT_USER[2]}
        result = self.runner.invoke(app, [*args, "--project", str(self.root)], env=env)
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
        return result

    def json(self, *args: str, expect: int | None = 0) -> Any:
        return json.loads(self.cli(*args, "--json", expect=expect).stdout)

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {r["External_Id__c"]: r for r in self.emu.records("Contact").values()}

    def members(self) -> set[str]:
        """External ids of the Contacts in the VIP campaign."""
        contacts = self.emu.records("Contact")
        return {contacts[m["ContactId"]]["External_Id__c"] for m in self.emu.records("CampaignMember").values()}


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as e:
        yield e


def make(
    tmp_path: Path,
    emu: SalesforceEmulator,
    *,
    n: int = 30,
    mode: str = "upsert",
    bulk: int = 2000,
    auth: str = SESSION_AUTH,
    extra_field: str = "",
) -> SfProject:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML.format(auth=auth, bulk=bulk, mode=mode, extra_field=extra_field)))
    p = SfProject(root, emu)
    p.sql(PEOPLE_SQL.format(n=n))
    return p


def test_first_run_creates_then_unchanged_run_calls_nothing_then_only_changed_fields(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu)
    result = p.json("run", "contacts")["syncs"][0]
    assert (result["status"], result["acknowledged"]) == ("success", 30)
    contacts = p.contacts()
    assert len(contacts) == 30
    c7 = contacts["u0007"]
    assert (c7["FirstName"], c7["LastName"], c7["Email"], c7["Plan__c"]) == ("First7", "Last7", "person7@example.com", "pro")
    assert (c7["Lifetime_Value__c"], c7["Birthdate"], c7["HasOptedOutOfEmail"]) == (350.0, "1990-01-08", False)
    assert c7["Last_Seen_At__c"] == "2024-05-01T19:00:00.000+0000"
    # 1 describe + 1 collection of 30 records
    assert [(r.method, r.path.split("/v59.0/")[1]) for r in emu.request_log] == [
        ("GET", "sobjects/Contact/describe"),
        ("PATCH", "composite/sobjects/Contact/External_Id__c"),
    ]

    before = emu.request_count
    assert p.json("run", "contacts")["syncs"][0]["status"] == "up_to_date"
    assert emu.request_count == before, "an unchanged run must make no API call"

    p.sql("UPDATE src.people SET plan = 'free' WHERE user_id IN ('u0001', 'u0002')")
    p.cli("run", "contacts")
    [patch] = [r for r in emu.request_log[before:] if r.method == "PATCH"]
    assert sorted((r["External_Id__c"], sorted(r)) for r in patch.body["records"]) == [
        ("u0001", ["External_Id__c", "Plan__c", "attributes"]),
        ("u0002", ["External_Id__c", "Plan__c", "attributes"]),
    ]
    assert p.contacts()["u0001"]["Plan__c"] == "free" and p.contacts()["u0001"]["LastName"] == "Last1"


def test_mirror_removes_what_left_the_model(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu, mode="mirror")
    p.cli("run", "contacts")
    p.sql("DELETE FROM src.people WHERE user_id IN ('u0003', 'u0004')")
    result = p.json("run", "contacts")["syncs"][0]
    assert result["plan"]["counts"]["removed"] == 2 and result["status"] == "success"
    assert set(p.contacts()) == {f"u{i:04d}" for i in range(30)} - {"u0003", "u0004"}
    deleted = [r for r in emu.request_log if r.method == "DELETE"]
    assert len(deleted) == 1 and len(deleted[0].query["ids"].split(",")) == 2  # by stored Id, one call


def test_audience_adds_and_removes_campaign_members(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu)
    p.cli("run")  # contacts first, then the campaign (created on the way)
    [campaign] = emu.records("Campaign").values()
    assert campaign["Name"] == "VIP customers"
    vips = {f"u{i:04d}" for i in range(20, 30)}  # ltv = 50 * i >= 1000
    assert p.members() == vips
    p.sql("UPDATE src.people SET ltv = 0 WHERE user_id IN ('u0020', 'u0021')")
    p.sql("UPDATE src.people SET ltv = 5000 WHERE user_id = 'u0005'")
    result = p.json("run", "vip_campaign")["syncs"][0]
    assert (result["plan"]["counts"]["added"], result["plan"]["counts"]["removed"]) == (1, 2)
    assert p.members() == vips - {"u0020", "u0021"} | {"u0005"}
    # a person unknown to Salesforce is rejected with the reason
    p.sql("INSERT INTO src.people SELECT 'x0001', 'A', 'B', 'ghost@example.com', 'pro', 9000, '1990-01-01', TIMESTAMP '2024-01-01', true")
    result = p.json("run", "vip_campaign", expect=1)["syncs"][0]
    status = p.json("status", expect=1)
    row = next(s for s in status["syncs"] if s["sync"] == "vip_campaign")
    # the reason is kept without the person's email (the key names the row)
    assert [(e["row_key"], e["reason"]) for e in row["rejected_rows"]] == [("x0001", "no Contact with Email = '<email>'")]


def test_rejected_rows_show_the_api_reason_and_succeed_once_fixed(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu)
    p.sql("UPDATE src.people SET last_name = NULL WHERE user_id = 'u0003'")
    p.sql("UPDATE src.people SET email = 'not-an-email' WHERE user_id = 'u0004'")
    p.sql("UPDATE src.people SET birthdate = 'someday' WHERE user_id = 'u0005'")
    result = p.json("run", "contacts", expect=1)["syncs"][0]
    assert (result["status"], result["acknowledged"], result["rejected_by_destination"]) == ("partial", 27, 3)
    status = p.json("status", expect=1)
    row = next(s for s in status["syncs"] if s["sync"] == "contacts")
    assert {(e["row_key"], e["reason"]) for e in row["rejected_rows"]} == {
        ("u0003", "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]"),
        ("u0004", "INVALID_EMAIL_ADDRESS: Email: invalid email address: not-an-email"),
        ("u0005", "field Birthdate: cannot read 'someday' as a date (use YYYY-MM-DD)"),
    }
    assert set(p.contacts()) == {f"u{i:04d}" for i in range(30)} - {"u0003", "u0004", "u0005"}

    p.sql(
        "UPDATE src.people SET last_name = 'Fixed', email = 'ok@example.com', birthdate = '1990-02-02' "
        "WHERE user_id IN ('u0003', 'u0004', 'u0005')"
    )
    result = p.json("run", "contacts")["syncs"][0]
    assert (result["status"], result["sent"]) == ("success", 3)
    assert len(p.contacts()) == 30 and p.contacts()["u0003"]["LastName"] == "Fixed"


def test_bulk_path_above_threshold_maps_failed_rows_back(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu, n=60, bulk=25)
    p.sql("UPDATE src.people SET last_name = NULL WHERE user_id = 'u0010'")
    p.sql("UPDATE src.people SET email = 'broken' WHERE user_id = 'u0042'")
    result = p.json("run", "contacts", expect=1)["syncs"][0]
    assert (result["acknowledged"], result["rejected_by_destination"]) == (58, 2)
    [job] = emu.jobs()
    assert (job["operation"], job["object"], job["externalIdFieldName"]) == ("upsert", "Contact", "External_Id__c")
    assert job["numberRecordsProcessed"] == 60 and job["numberRecordsFailed"] == 2
    status = p.json("status", expect=1)
    reasons = {e["row_key"]: e["reason"] for s in status["syncs"] if s["sync"] == "contacts" for e in s["rejected_rows"]}
    assert reasons == {
        "u0010": "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]",
        "u0042": "INVALID_EMAIL_ADDRESS: Email: invalid email address: broken",
    }
    assert len(p.contacts()) == 58 and p.contacts()["u0011"]["Birthdate"] == "1990-01-12"

    # a cleared value travels as #N/A (an empty cell would leave the field unchanged)
    p.sql("UPDATE src.people SET email = NULL WHERE user_id < 'u0030'")
    p.sql("UPDATE src.people SET last_name = 'Back', email = 'back@example.com' WHERE user_id IN ('u0010', 'u0042')")
    p.cli("run", "contacts")
    assert len(emu.jobs()) == 2 and len(p.contacts()) == 60
    assert p.contacts()["u0001"]["Email"] is None and p.contacts()["u0001"]["LastName"] == "Last1"


def test_request_limit_and_503_are_retried(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu, n=10)
    emu.limit_next(1, match="composite")
    emu.fail_next(1, status=503, match="composite")
    result = p.json("run", "contacts")["syncs"][0]
    assert (result["status"], result["acknowledged"]) == ("success", 10)
    assert [r.status for r in emu.request_log if "composite" in r.path] == [503, 403, 200]
    assert len(p.contacts()) == 10


def test_the_orgs_daily_limit_stops_the_run_at_once_as_transient(tmp_path: Path, emu: SalesforceEmulator) -> None:
    """TotalRequests: the org's requests of the last 24 hours are used up. Retrying within the
    run only spends the next ones, and a reload fixes nothing: the run stops, not terminal,
    and the daemon waits an hour."""
    p = make(tmp_path, emu, n=10)
    p.cli("validate")
    emu.set_api_usage(used=15_000, limit=15_000)
    result = p.json("run", "contacts", expect=1)["syncs"][0]
    assert result["status"] == "failed" and "daily API request limit" in result["error"], result
    assert result["terminal"] is False and result["retry_after"] == 3600
    assert len([r for r in emu.request_log if r.status == 403]) == 1, "not retried"


def test_username_password_login(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu, n=5, auth=PASSWORD_AUTH)
    assert p.json("run", "contacts")["syncs"][0]["acknowledged"] == 5
    assert emu.request_log[0].path.startswith("/services/Soap/u/") and emu.request_log[0].host == "login.salesforce.com"
    assert len(p.contacts()) == 5
    assert DEFAULT_USER[1] not in p.cli("history", "contacts").stdout


def test_validate_remote_names_unknown_fields(tmp_path: Path, emu: SalesforceEmulator) -> None:
    p = make(tmp_path, emu, extra_field="\n      Shoe_Size__c: plan")
    out = p.cli("validate", "--remote", expect=2).output
    assert "Contact has no field 'Shoe_Size__c'" in out
    assert p.json("run", "contacts", expect=1)["syncs"][0]["status"] == "failed"  # nothing sent
    assert emu.records("Contact") == {}
    (p.root / "syncs.yaml").write_text((p.root / "syncs.yaml").read_text().replace("Shoe_Size__c: plan", "Title: plan"))
    p.cli("validate", "--remote")


# ---------------------------------------------------------------- the destination alone


def destination(emu: SalesforceEmulator, sleeps: list[float] | None = None, **spec: Any) -> SalesforceDestination:
    spec.setdefault("session_id", emu.token)
    spec = {"type": "salesforce", "instance_url": f"https://{emu.instance}", "transport_url": emu.url, "bulk_poll_seconds": 0.01, **spec}
    return SalesforceDestination("crm", SalesforceDestinationSpec(**spec), ".", sleep=(sleeps if sleeps is not None else []).append)


def target(mode: str = "upsert", fields: tuple[str, ...] = ("LastName",), **kw: Any) -> SyncTarget:
    return SyncTarget(sync="s", object="Contact", mode=mode, match_fields=["External_Id__c"], fields=list(fields), **kw)


def upsert(key: str, **values: Any) -> RowOp:
    return RowOp("upsert", key, {"External_Id__c": key, "LastName": "L", **values})


def test_retries_back_off_then_fail_the_batch(emu: SalesforceEmulator) -> None:
    sleeps: list[float] = []
    dest = destination(emu, sleeps, max_retries=2)
    emu.fail_next(3, status=500, match="composite")
    with pytest.raises(DestinationError, match="after 3 attempt") as err:
        dest.push(target(), [upsert("a")])
    assert err.value.retryable and len(sleeps) == 2 and 0 < sleeps[0] < sleeps[1] <= 1.0
    assert emu.records("Contact") == {}
    emu.drop_next(1, match="composite")  # a dropped connection is retried too
    assert dest.push(target(), [upsert("a")])[0].ok
    bulk = destination(emu, sleeps, bulk_threshold=0)
    emu.fail_bulk_jobs(1)  # a Bulk job that ends Failed is submitted again
    assert bulk.push(target(), [upsert("b")])[0].ok
    assert [j["state"] for j in emu.jobs()] == ["Failed", "JobComplete"] and len(sleeps) == 4  # 2 + the drop + the job


def test_expired_session_relogs_in_only_with_credentials(emu: SalesforceEmulator) -> None:
    user, password, token = DEFAULT_USER
    dest = destination(emu, username=user, password=password, security_token=token)
    assert dest.push(target(), [upsert("a")])[0].ok
    emu.expire_sessions()
    assert dest.push(target(), [upsert("b")])[0].ok
    assert sum(r.path.startswith("/services/Soap/") for r in emu.request_log) == 1  # the session id first

    plain = destination(emu, session_id=emu.token)
    emu.expire_sessions()
    with pytest.raises(DestinationError, match="INVALID_SESSION_ID") as err:
        plain.push(target(), [upsert("c")])
    assert not err.value.retryable


def test_update_insert_and_conversions(emu: SalesforceEmulator) -> None:
    existing = emu.create("Contact", {"LastName": "Old", "External_Id__c": "e1"})
    dest = destination(emu)
    t = target("update", fields=("Title", "Birthdate"))
    res = dest.push(
        t,
        [
            RowOp("update", "e1", {"External_Id__c": "e1", "Title": "CTO", "Birthdate": "2001-02-03T23:30:00-02:00"}),
            RowOp("update", "e2", {"External_Id__c": "e2", "Title": "CEO", "Birthdate": None}),
        ],
    )
    assert (res[0].ok, res[0].dest_id) == (True, existing)
    assert (res[1].ok, res[1].error) == (False, "no Contact with External_Id__c = 'e2'")
    assert emu.records("Contact")[existing]["Birthdate"] == "2001-02-04"  # the UTC date
    assert emu.find("Contact", "External_Id__c", "e2") is None

    ins = target("insert", fields=("LastName", "Lifetime_Value__c"))
    first = dest.push(
        ins,
        [
            RowOp("insert", "n1", {"External_Id__c": "n1", "LastName": "N", "Lifetime_Value__c": "12.50"}),
            RowOp("insert", "n2", {"External_Id__c": "n2", "LastName": "N", "Lifetime_Value__c": "lots"}),
        ],
    )
    assert first[0].ok and first[1].error == "field Lifetime_Value__c: cannot read 'lots' as a number"
    again = dest.push(ins, [RowOp("insert", "n1", {"External_Id__c": "n1", "LastName": "N", "Lifetime_Value__c": 1})])
    assert again[0].ok and again[0].dest_id == first[0].dest_id  # already there: a resend is harmless
    assert len(emu.find_all("Contact", "External_Id__c", "n1")) == 1


def test_partial_writes_fall_back_to_whole_rows_and_renames_keep_the_record(emu: SalesforceEmulator) -> None:
    dest = destination(emu)
    t = target(fields=("LastName", "Title"))
    # delivered before, deleted in Salesforce since: the partial upsert cannot create it alone
    gone = RowOp(
        "upsert",
        "z",
        {"External_Id__c": "z", "LastName": "Zed", "Title": "New"},
        previous={"External_Id__c": "z", "LastName": "Zed", "Title": "Old"},
        changed_fields=["Title"],
    )
    [res] = dest.push(t, [gone])
    assert res.ok and emu.find("Contact", "External_Id__c", "z")["LastName"] == "Zed"
    # the external id itself changed and the core allows the rename: the stored record is
    # renamed (moved), not duplicated
    renamed = RowOp(
        "upsert",
        "z",
        {"External_Id__c": "z2", "LastName": "Zed", "Title": "New"},
        previous={"External_Id__c": "z", "LastName": "Zed", "Title": "New"},
        changed_fields=["External_Id__c"],
        dest_id=res.dest_id,
        rename=True,
    )
    [again] = dest.push(t, [renamed])
    assert again.ok and again.moved and again.dest_id == res.dest_id
    assert [r["External_Id__c"] for r in emu.records("Contact").values()] == ["z2"]
    # a rename onto a value another record took since: the row is upserted into that record
    # (not moved: the core removes the old one once no row maps to it)
    other = emu.create("Contact", {"LastName": "Other", "External_Id__c": "z3"})
    onto = RowOp(
        "upsert",
        "z",
        {"External_Id__c": "z3", "LastName": "Zed", "Title": "New"},
        previous={"External_Id__c": "z2", "LastName": "Zed", "Title": "New"},
        changed_fields=["External_Id__c"],
        dest_id=res.dest_id,
        rename=True,
    )
    [third] = dest.push(t, [onto])
    assert third.ok and not third.moved and third.dest_id == other
    assert emu.records("Contact")[other]["LastName"] == "Zed"


@pytest.mark.parametrize("bulk", [0, 2000], ids=["bulk", "collections"])
def test_every_mode_through_both_apis(emu: SalesforceEmulator, bulk: int) -> None:
    dest = destination(emu, bulk_threshold=bulk)
    ops = [upsert(f"k{i}", Email=f"k{i}@example.com") for i in range(3)]
    ids = [r.dest_id for r in dest.push(target(fields=("LastName", "Email")), ops)]
    assert all(ids) and len(emu.records("Contact")) == 3
    # mirror removal: by stored id, by external id when unknown, and already gone
    emu.create("Contact", {"LastName": "X", "External_Id__c": "k9"})
    removes = [
        RowOp("remove", "k0", {"External_Id__c": "k0"}, dest_id=ids[0]),
        RowOp("remove", "k9", {"External_Id__c": "k9"}),
        RowOp("remove", "k0again", {"External_Id__c": "k0"}, dest_id=ids[0]),
    ]
    assert [r.ok for r in dest.push(target("mirror"), removes)] == [True, True, True]
    assert {r["External_Id__c"] for r in emu.records("Contact").values()} == {"k1", "k2"}
    # audience: add (one already a member), then remove
    aud = SyncTarget(sync="a", object="Contact", mode="audience", match_fields=["Email"], audience="Spring")
    adds = [RowOp("upsert", f"k{i}", {"Email": f"K{i}@example.com"}) for i in (1, 2)]
    first = dest.push(aud, adds[:1])
    both = dest.push(aud, adds)
    assert all(r.ok for r in both) and both[0].dest_id == first[0].dest_id
    assert len(emu.records("CampaignMember")) == 2
    gone = dest.push(
        aud,
        [RowOp("remove", "k1", {"Email": "k1@example.com"}, dest_id=first[0].dest_id), RowOp("remove", "k2", {"Email": "k2@example.com"})],
    )
    assert all(r.ok for r in gone) and emu.records("CampaignMember") == {}
    assert len(emu.jobs()) == (5 if bulk == 0 else 0)


def test_jwt_login_missing_env_and_unknown_object(emu: SalesforceEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from activation.destinations.base import ConfigError
    from activation_emulators.salesforce import DEFAULT_APP

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    jwt = destination(
        emu, session_id=None, username=DEFAULT_USER[0], consumer_key=DEFAULT_APP[0], private_key_file=str(tmp_path / "key.pem")
    )
    assert jwt.push(target(), [upsert("j1")])[0].ok
    assert any(r.path == "/services/oauth2/token" for r in emu.request_log)

    monkeypatch.delenv("NO_SUCH_SF_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_SF_TOKEN"):
        destination(emu, session_id="${NO_SUCH_SF_TOKEN}").push(target(), [upsert("j2")])
    problems = destination(emu).check_remote(SyncTarget(sync="s", object="Contct", mode="upsert", match_fields=["External_Id__c"]))
    assert problems == ["Salesforce has no sObject 'Contct' (did you mean Contact?)"]
    problems = destination(emu).check_remote(target(fields=("LastName", "Name", "Emial")))
    assert problems == ["Contact.Name is not createable (read-only or calculated)", "Contact has no field 'Emial' (did you mean Email?)"]


@pytest.mark.parametrize("fault", ["drop_after", "truncate", "error"])
def test_a_campaign_create_whose_answer_is_lost_is_not_made_twice(emu: SalesforceEmulator, fault: str) -> None:
    """Campaign names are not unique: a create retried blindly after a lost answer made a
    second campaign (found by the soak)."""
    person = emu.create("Contact", {"LastName": "P", "Email": "p@example.com"})
    dest = destination(emu)
    emu.faults.inject(fault, status=500, match="POST /services/data/v59.0/sobjects/Campaign")
    t = SyncTarget(sync="s", object="Contact", mode="audience", match_fields=["Email"], audience="Spring")
    [res] = dest.push(t, [RowOp("upsert", "k", {"Email": "p@example.com"})])
    assert res.ok
    assert [c["Name"] for c in emu.records("Campaign").values()] == ["Spring"]
    assert [m["ContactId"] for m in emu.records("CampaignMember").values()] == [person]


def test_an_answer_cut_mid_body_is_retried(emu: SalesforceEmulator) -> None:
    dest = destination(emu)
    emu.faults.inject("truncate", match="composite/sobjects")
    assert dest.push(target(), [upsert("a")])[0].ok
    assert list(r["External_Id__c"] for r in emu.records("Contact").values()) == ["a"]
