"""End to end through the CLI: real DuckDB warehouse, real HTTP to the webhook receiver."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import Project, make_project

from activation_emulators.webhook import WebhookReceiver


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_run_delivers_the_model_and_second_run_sends_nothing(project: Project) -> None:
    first = project.json("run")
    assert first["ok"] is True
    by_sync = {s["sync"]: s for s in first["syncs"]}
    assert by_sync["users_to_hook"]["plan"]["counts"]["added"] == 200
    assert project.rx.records("users_to_hook") == project.model_users()
    assert project.rx.records("whales_to_hook") == project.model_whales()
    requests = project.rx.request_count
    whales = len(project.model_whales())
    assert 0 < whales < 200
    assert requests == 4 + -(-whales // 50)  # batches of 50

    second = project.cli("run")
    assert "up to date" in second.stdout
    assert project.rx.request_count == requests, "an unchanged run must make no call"
    again = project.json("run")
    assert all(s["status"] == "up_to_date" and s["sent"] == 0 for s in again["syncs"])


def test_changed_and_deleted_rows_are_exactly_the_plan(project: Project) -> None:
    project.cli("run")
    # 7 users change plan (a mapped field, plus the derived plan_upper), 3 users are deleted.
    project.sql("UPDATE src.users SET plan = 'team' WHERE user_id IN ('u0001','u0002','u0004','u0005','u0007','u0008','u0010')")
    project.sql("DELETE FROM src.users WHERE user_id IN ('u0100', 'u0101', 'u0102')")
    plan = project.json("plan", "users_to_hook")["plans"][0]
    c = plan["counts"]
    assert (c["added"], c["changed"], c["removed"], c["rejected"]) == (0, 7, 3, 0)
    assert plan["field_changes"] == {"plan": 7, "plan_upper": 7}
    sample = plan["changed_samples"][0]
    assert sample["key"] == "u0001" and sample["fields"]["plan"] == {"before": "pro", "after": "team"}
    assert {r["key"] for r in plan["removed_samples"]} == {"u0100", "u0101", "u0102"}

    # upsert mode keeps removed rows at the destination (and warns); mirror removes them
    assert any("leaves them in the destination" in w for w in plan["warnings"])
    before = project.rx.request_count
    result = project.json("run", "users_to_hook")["syncs"][0]
    assert result["sent"] == 7 and result["acknowledged"] == 7
    sent_rows = [r for req in project.rx.requests[before:] for r in req.body["rows"]]
    assert sorted(r["key"] for r in sent_rows) == ["u0001", "u0002", "u0004", "u0005", "u0007", "u0008", "u0010"]
    assert all(sorted(r["changed"]) == ["plan", "plan_upper"] for r in sent_rows)
    expected = project.model_users()
    delivered = project.rx.records("users_to_hook")
    assert {k: delivered[k] for k in expected} == expected
    assert project.json("plan", "users_to_hook")["plans"][0]["counts"]["changed"] == 0


def test_mirror_mode_removes_what_left_the_model(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "m", rx, mode="mirror")
    p.cli("run")
    p.sql("DELETE FROM src.users WHERE user_id IN ('u0003', 'u0009')")
    p.sql("UPDATE src.users SET seats = 6 WHERE user_id = 'u0000'")  # score 1 → 2
    plan = p.json("plan", "users_to_hook")["plans"][0]
    assert (plan["counts"]["changed"], plan["counts"]["removed"]) == (1, 2)
    assert plan["field_changes"] == {"score": 1}
    p.cli("run", "users_to_hook")
    assert rx.records("users_to_hook") == p.model_users()


def test_audience_mode_adds_and_removes_members(project: Project) -> None:
    project.cli("run")
    whales = set(project.model_whales())
    leaving = sorted(whales)[:2]
    project.sql(f"DELETE FROM src.orders WHERE user_id IN ('{leaving[0]}', '{leaving[1]}')")
    joining = sorted(set(project.model_users()) - whales)[0]
    project.sql(f"INSERT INTO src.orders VALUES ('{joining}', 500)")
    plan = project.json("plan", "whales_to_hook")["plans"][0]
    assert (plan["counts"]["added"], plan["counts"]["removed"]) == (1, 2)
    project.cli("run", "whales_to_hook")
    assert project.rx.records("whales_to_hook") == project.model_whales()
    assert joining in project.rx.records("whales_to_hook")


@pytest.mark.parametrize("state", ["", "state: {url: 'sqlite:///state/activation.db'}"], ids=["in-warehouse", "sqlite"])
def test_plan_sends_nothing_and_writes_no_byte(tmp_path: Path, rx: WebhookReceiver, state: str) -> None:
    p = make_project(tmp_path / "dry", rx, state=state)
    p.cli("run")
    p.sql("UPDATE src.users SET plan = 'x' WHERE user_id < 'u0050'")
    files = [p.warehouse] + sorted((p.root / "state").glob("*")) if state else [p.warehouse]
    digests = {f: file_digest(f) for f in files}
    requests = rx.request_count
    plan = p.json("plan")
    assert plan["dry_run"] is True and plan["plans"][0]["counts"]["changed"] == 50
    p.cli("run", "--dry-run")
    assert rx.request_count == requests
    assert {f: file_digest(f) for f in files} == digests
    assert not (p.root / "warehouse.duckdb.wal").exists()


def test_state_engines_agree(tmp_path: Path, rx: WebhookReceiver) -> None:
    """The in-warehouse SQL diff and the streaming merge diff give identical plans."""
    plans = []
    for state in ("", "state: {url: 'sqlite:///state.db'}"):
        p = make_project(tmp_path / f"s{len(plans)}", rx, state=state)
        p.cli("run")
        p.sql("UPDATE src.users SET plan = 'x' WHERE user_id BETWEEN 'u0010' AND 'u0019'")
        p.sql("DELETE FROM src.users WHERE user_id BETWEEN 'u0150' AND 'u0154'")
        p.sql("INSERT INTO src.users VALUES ('u9999', 'new@example.com', 'pro', 1, 5), (NULL, 'nokey@example.com', 'pro', 1, 5)")
        p.sql("INSERT INTO src.users SELECT * FROM src.users WHERE user_id = 'u0020'")  # a duplicate key
        plans.append([pl for pl in p.json("plan", expect=1)["plans"]])
    a, b = plans
    assert a == b
    c = a[0]["counts"]
    assert (c["added"], c["changed"], c["removed"], c["rejected"]) == (1, 10, 5, 2)  # a NULL key, a duplicated key
    assert c["unchanged"] == 200 - 10 - 5 - 1


def test_null_and_duplicate_keys_are_rejected_with_examples(project: Project) -> None:
    project.sql("INSERT INTO src.users VALUES (NULL, 'a@x.com', 'pro', 1, 1), (NULL, 'b@x.com', 'pro', 1, 1)")
    project.sql("INSERT INTO src.users SELECT * FROM src.users WHERE user_id = 'u0042'")
    project.sql("UPDATE src.users SET email = NULL WHERE user_id = 'u0043'")
    result = project.json("run", "users_to_hook", expect=1)["syncs"][0]
    plan = result["plan"]
    assert plan["counts"]["rejected"] == 4
    assert plan["rejected_reasons"] == {
        "key is NULL": 2,
        "duplicate key: several model rows share it": 1,
        "match field 'email' is empty": 1,
    }
    assert {"key": "u0042", "reason": "duplicate key: several model rows share it (2 rows)"} in plan["rejected_samples"]
    assert result["status"] == "partial"
    delivered = project.rx.records("users_to_hook")
    assert "u0042" not in delivered and "u0043" not in delivered and len(delivered) == 198
    history = project.json("history", "users_to_hook")["runs"][0]
    assert {r["reason"] for r in history["rejected_rows"]} >= {"key is NULL", "match field 'email' is empty"}


def test_destination_rejections_are_reported_and_retried(project: Project) -> None:
    project.rx.reject_keys({"u0005": "invalid email", "u0006": "plan not allowed"})
    result = project.json("run", "users_to_hook", expect=1)["syncs"][0]
    assert (result["status"], result["rejected_by_destination"], result["acknowledged"]) == ("partial", 2, 198)
    status = project.json("status", expect=1)
    row = next(s for s in status["syncs"] if s["sync"] == "users_to_hook")
    assert {(e["row_key"], e["reason"]) for e in row["rejected_rows"]} == {("u0005", "invalid email"), ("u0006", "plan not allowed")}
    text = project.cli("status", expect=1).stdout
    assert "invalid email" in text
    # the next run retries exactly those two rows
    project.rx.clear_faults()
    plan = project.json("plan", "users_to_hook")["plans"][0]
    assert plan["counts"]["added"] == 2
    project.cli("run", "users_to_hook")
    assert project.rx.records("users_to_hook") == project.model_users()


def test_max_removal_guard_and_override(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "g", rx, mode="mirror")
    p.cli("run", "users_to_hook")
    p.sql("DELETE FROM src.users WHERE user_id >= 'u0100'")  # 50% of the rows
    blocked = p.json("run", "users_to_hook", expect=1)["syncs"][0]
    assert blocked["status"] == "blocked" and "max_removal" in blocked["error"]
    assert len(rx.records("users_to_hook")) == 200, "a blocked run sends nothing"
    p.cli("run", "users_to_hook", "--allow-removal")
    assert rx.records("users_to_hook") == p.model_users()


def test_empty_source_is_refused(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "e", rx, mode="mirror")
    p.cli("run", "users_to_hook")
    p.sql("DELETE FROM src.users")
    text = p.cli("run", "users_to_hook", expect=1).stdout
    assert "no rows" in text and len(rx.records("users_to_hook")) == 200


def test_limit_sends_a_cautious_first_batch(project: Project) -> None:
    result = project.json("run", "users_to_hook", "--limit", "10")["syncs"][0]
    assert result["sent"] == 10 and len(project.rx.records("users_to_hook")) == 10
    project.cli("run", "users_to_hook")
    assert project.rx.records("users_to_hook") == project.model_users()


def test_select_by_tag_and_destination(project: Project) -> None:
    out = project.json("plan", "--select", "destination:hook")
    assert {p["sync"] for p in out["plans"]} == {"users_to_hook", "whales_to_hook"}
    bad = project.cli("plan", "--select", "tag:nope", expect=2)
    assert "no sync matches 'tag:nope'" in bad.output


def test_failed_destination_loses_nothing(project: Project) -> None:
    project.cli("run", "users_to_hook", "--limit", "100")
    project.rx.fail_next(100, status=503)  # every retry of the next batch fails
    result = project.json("run", "users_to_hook", expect=1)["syncs"][0]
    assert result["status"] == "failed" and "503" in result["error"]
    project.rx.clear_faults()
    project.cli("run", "users_to_hook")
    assert project.rx.records("users_to_hook") == project.model_users()


def test_a_new_target_gets_every_row_again(tmp_path: Path, rx: WebhookReceiver) -> None:
    """Same rows, same values, another object: the new target must receive everything."""
    p = make_project(tmp_path / "t", rx)
    p.cli("run", "users_to_hook")
    text = (p.root / "syncs.yaml").read_text().replace("object: contacts", "object: people")
    (p.root / "syncs.yaml").write_text(text)
    plan = p.json("plan", "users_to_hook")["plans"][0]
    assert plan["counts"]["changed"] == 200
    before = rx.request_count
    result = p.json("run", "users_to_hook")["syncs"][0]
    assert result["sent"] == 200 and rx.request_count > before
    assert all(r.body["object"] == "people" for r in rx.requests[before:])
    # while a mapping change that maps every row to the same values sends nothing
    text = (p.root / "syncs.yaml").read_text().replace("plan: plan,", 'plan: "{{ row.plan }}",')
    (p.root / "syncs.yaml").write_text(text)
    assert p.json("run", "users_to_hook")["syncs"][0]["sent"] == 0
