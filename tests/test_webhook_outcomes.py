"""Outcomes the webhook destination cannot know, through real HTTP against the receiver
(issue 13, items 3-5): an unreadable 2xx, a refusal answering a retry whose earlier attempt
may have been applied, a remove answered "not found", and a write applied late."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Project, make_project

from activation.destinations.base import DestinationError, RowOp, RowResult, SyncTarget
from activation.destinations.http import AFTER_AMBIGUOUS, UNREADABLE
from activation.destinations.webhook.destination import WebhookDestination
from activation.destinations.webhook.spec import WebhookDestinationSpec
from activation_emulators.faults import Fault
from activation_emulators.webhook import WebhookReceiver

TARGET = SyncTarget(sync="crm_contacts", object="contacts", mode="mirror")
SYNC = TARGET.sync


def no_sleep(seconds: float) -> None:
    """Retries go at once: these tests are about outcomes, not backoff."""


def make_dest(rx: WebhookReceiver, **spec: Any) -> WebhookDestination:
    spec.setdefault("timeout_seconds", 2.0)
    return WebhookDestination("hook", WebhookDestinationSpec(type="webhook", url=rx.url, **spec), ".", sleep=no_sleep)


def ops(*keys: str, kind: str = "upsert", plan: str = "pro") -> list[RowOp]:
    return [RowOp(kind=kind, key=k, values={"email": f"{k}@example.com", "plan": plan}) for k in keys]  # type: ignore[arg-type]


def outcome(results: list[RowResult]) -> dict[str, str]:
    return {r.key: "ok" if r.ok else "unknown" if r.unknown else "rejected" for r in results}


# -- 1. a 2xx whose body cannot be read acknowledges nothing -----------------------------------


def test_a_2xx_whose_body_is_not_json_leaves_every_row_possibly_delivered(rx: WebhookReceiver) -> None:
    rx.reject_keys({"b"}, error="invalid email")  # the receiver refuses b: its answer says so, garbled
    rx.faults.inject("garble")
    results = make_dest(rx).push(TARGET, ops("a", "b", "c"))
    assert rx.faults.injected["garble"] == 1 and rx.requests[-1].status == 200
    assert outcome(results) == {"a": "unknown", "b": "unknown", "c": "unknown"}
    assert all(UNREADABLE in (r.error or "") for r in results)
    assert set(rx.records(SYNC)) == {"a", "c"}  # b was not applied: it must not count as delivered


def test_an_empty_2xx_still_acknowledges_the_batch(rx: WebhookReceiver) -> None:
    rx.fail_next(1, status=204, body={})  # 204: no body at all
    assert outcome(make_dest(rx).push(TARGET, ops("a"))) == {"a": "ok"}


def test_malformed_results_acknowledge_nothing(rx: WebhookReceiver) -> None:
    rx.fail_next(1, status=200, body={"results": "all good"})
    assert outcome(make_dest(rx).push(TARGET, ops("a", "b"))) == {"a": "unknown", "b": "unknown"}


def test_a_cut_answer_on_the_last_attempt_fails_the_batch_unacknowledged(rx: WebhookReceiver) -> None:
    rx.faults.inject("truncate")
    with pytest.raises(DestinationError, match="RemoteProtocolError"):
        make_dest(rx, max_retries=0).push(TARGET, ops("a"))
    assert set(rx.records(SYNC)) == {"a"}  # applied: the core keeps the row journaled (possibly delivered)


# -- 2. a refusal answering a retry after an attempt that may have been applied ---------------

# applied, then: the connection dropped, the answer cut, the answer later than our timeout
LOST = [Fault("drop_after"), Fault("truncate"), Fault("late", seconds=1.0)]


@pytest.mark.parametrize("fault", LOST, ids=lambda f: f.kind)
def test_a_409_for_a_used_idempotency_key_after_a_lost_answer_is_unknown(rx: WebhookReceiver, fault: Fault) -> None:
    rx.replay = "conflict"
    rx.faults.inject(fault.kind, seconds=fault.seconds)
    results = make_dest(rx, timeout_seconds=0.3).push(TARGET, ops("a", "b"))
    assert outcome(results) == {"a": "unknown", "b": "unknown"}
    assert all(AFTER_AMBIGUOUS in (r.error or "") for r in results)


def test_applied_then_409_on_the_retry(rx: WebhookReceiver) -> None:
    """The case of the issue: applied, answer lost, the retry answered 409."""
    rx.replay = "conflict"
    rx.faults.inject("drop_after")
    results = make_dest(rx).push(TARGET, ops("a", "b"))
    assert [r.status for r in rx.requests] == [200, 409]
    assert set(rx.records(SYNC)) == {"a", "b"}  # held: recording them as rejected would orphan them
    assert outcome(results) == {"a": "unknown", "b": "unknown"}


def test_per_row_rejections_answering_a_retry_are_unknown(rx: WebhookReceiver) -> None:
    rx.replay = "reject"  # "already exists" for each row of a replayed request
    rx.faults.inject("drop_after")
    results = make_dest(rx).push(TARGET, ops("a", "b"))
    assert outcome(results) == {"a": "unknown", "b": "unknown"}
    assert "already exists" in (results[0].error or "")


def test_a_rejection_after_a_500_is_unknown_but_after_a_503_it_stands(rx: WebhookReceiver) -> None:
    dest = make_dest(rx)
    rx.reject_keys({"b"}, error="invalid email")
    rx.fail_next(1, status=500)  # a 500 may come after the receiver applied the batch
    assert outcome(dest.push(TARGET, ops("a", "b"))) == {"a": "ok", "b": "unknown"}
    rx.fail_next(1, status=503)  # 503: not served, so the refusal that follows is the answer
    assert outcome(dest.push(TARGET, ops("a", "b"))) == {"a": "ok", "b": "rejected"}


def test_refusals_without_an_earlier_attempt_are_rejections(rx: WebhookReceiver) -> None:
    dest = make_dest(rx)
    rx.fail_next(1, status=409, body={"error": "conflict"})
    assert outcome(dest.push(TARGET, ops("a"))) == {"a": "rejected"}
    rx.faults.inject("error", status=503)  # a retry, but nothing can have been applied
    rx.fail_next(1, status=422, body={"error": "bad field"})
    assert outcome(dest.push(TARGET, ops("a"))) == {"a": "rejected"}


# -- 3. a remove answered "not found" is done ----------------------------------------------------


def test_a_remove_answered_not_found_is_done(rx: WebhookReceiver) -> None:
    rx.missing_removes = "not_found"
    dest = make_dest(rx)
    assert outcome(dest.push(TARGET, ops("a", "b"))) == {"a": "ok", "b": "ok"}
    # b is held, gone is not: a per-row 404 inside a 200
    mixed = dest.push(TARGET, ops("b", "gone", kind="remove"))
    assert rx.requests[-1].status == 200 and outcome(mixed) == {"b": "ok", "gone": "ok"}
    # every row not found: the whole request answers 404, with the rows in its body
    assert outcome(dest.push(TARGET, ops("gone", "b", kind="remove"))) == {"gone": "ok", "b": "ok"}
    assert rx.requests[-1].status == 404
    assert set(rx.records(SYNC)) == {"a"}


def test_a_bare_404_is_not_taken_for_records_already_gone(rx: WebhookReceiver) -> None:
    """A 404 without per-row results is a wrong URL as likely as a missing record."""
    rx.fail_next(1, status=404, body={"error": "no such route"})
    assert outcome(make_dest(rx).push(TARGET, ops("a", kind="remove"))) == {"a": "rejected"}


def test_a_not_found_for_a_write_is_a_rejection(rx: WebhookReceiver) -> None:
    rx.fail_next(1, status=200, body={"results": [{"key": "a", "ok": False, "status": 404, "error": "no such account"}]})
    assert outcome(make_dest(rx).push(TARGET, ops("a", kind="update"))) == {"a": "rejected"}


# -- 4. versions: a write applied late cannot overwrite newer data -----------------------------


def test_a_late_applied_older_write_does_not_win(rx: WebhookReceiver) -> None:
    dest = make_dest(rx, timeout_seconds=0.3, max_retries=0)
    release = rx.hold_next()  # queued at the receiver past our timeout, applied later
    with pytest.raises(DestinationError, match="may have been applied"):
        dest.push(TARGET, ops("a", plan="old"))
    assert outcome(dest.push(TARGET, ops("a", plan="new"))) == {"a": "ok"}
    release.set()
    assert rx.wait_handled(2)  # the old write has now arrived, after the new one
    assert rx.records(SYNC)["a"]["plan"] == "new"
    assert rx.stale_writes == 1
    old, new = (r.body["rows"][0]["version"] for r in sorted(rx.requests, key=lambda r: r.body["rows"][0]["fields"]["plan"] != "old"))
    assert old < new


def test_a_late_write_does_not_bring_back_a_removed_record(rx: WebhookReceiver) -> None:
    dest = make_dest(rx, timeout_seconds=0.3, max_retries=0)
    release = rx.hold_next()
    with pytest.raises(DestinationError):
        dest.push(TARGET, ops("a"))
    assert outcome(dest.push(TARGET, ops("a", kind="remove"))) == {"a": "ok"}
    release.set()
    assert rx.wait_handled(2)
    assert rx.records(SYNC) == {} and rx.stale_writes == 1


def test_the_stall_fault_applies_a_request_after_the_client_gave_up(rx: WebhookReceiver) -> None:
    rx.faults.inject("stall", seconds=1.0)
    with pytest.raises(DestinationError, match="ReadTimeout"):
        make_dest(rx, timeout_seconds=0.3, max_retries=0).push(TARGET, ops("a"))
    assert rx.wait_handled(1)
    assert set(rx.records(SYNC)) == {"a"} and rx.faults.injected["stall"] == 1


def test_versions_grow_across_destinations_and_retries_repeat_them(rx: WebhookReceiver) -> None:
    rx.fail_next(1, status=502)
    make_dest(rx).push(TARGET, ops("a", "b"))
    make_dest(rx).push(TARGET, ops("a"))  # a new destination object (a new run) in the same process
    versions = [[row["version"] for row in r.body["rows"]] for r in rx.requests]
    assert versions[0] == versions[1], "a retry resends the same versions"
    assert len(set(versions[1])) == 1 and versions[2][0] > versions[1][0]


# -- through a run: what the state records decides what is removed later ----------------------

FAST_HOOK = 'hook: {type: webhook, url: "${HOOK_URL}", batch_size: 50, max_retries: 2, timeout_seconds: 1.0}'


def mirror_project(root: Path, rx: WebhookReceiver) -> Project:
    p = make_project(root, rx, n=120, mode="mirror")
    text = (root / "syncs.yaml").read_text()
    old = next(line.strip() for line in text.splitlines() if line.strip().startswith("hook:"))
    (root / "syncs.yaml").write_text(text.replace(old, FAST_HOOK))
    return p


def test_rows_refused_on_a_retry_after_they_landed_are_removed_when_they_leave(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = mirror_project(tmp_path / "p", rx)
    rx.replay = "conflict"
    rx.faults.inject("drop_after", n=1)  # the first batch lands, its answer is lost, the retry gets 409
    first = p.json("run", "users_to_hook", expect=None)["syncs"][0]
    landed = [row["key"] for row in rx.requests[0].body["rows"]]
    assert rx.requests[1].status == 409 and len(landed) == 50
    assert set(landed) <= set(rx.records("users_to_hook"))
    assert first["status"] != "success", first  # not acknowledged, and said so
    quoted = ", ".join(f"'{k}'" for k in landed[:10])
    p.sql(f"DELETE FROM src.users WHERE user_id IN ({quoted})")  # some of them leave the model
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "success"
    assert rx.records("users_to_hook") == p.model_users()  # no orphan left behind


def test_a_garbled_answer_mid_run_is_unconfirmed_and_the_next_run_converges(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = mirror_project(tmp_path / "p", rx)
    rx.reject_keys({"u0003"}, error="invalid email")  # refused, but the answer saying so is garbled
    rx.faults.inject("garble")
    first = p.json("run", "users_to_hook", expect=None)["syncs"][0]
    assert first["unconfirmed"] == 50 and first["rejected_by_destination"] == 0, first
    rx.reject_keys(set())
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "success"
    assert rx.records("users_to_hook") == p.model_users()  # u0003 was resent, not taken as delivered


def test_removes_answered_not_found_complete_the_sync(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = mirror_project(tmp_path / "p", rx)
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "success"
    rx.missing_removes = "not_found"
    gone = sorted(rx.records("users_to_hook"))[:10]
    # someone deleted these at the receiver already
    body = {"sync": "users_to_hook", "rows": [{"op": "remove", "key": k} for k in gone]}
    assert httpx.post(rx.url, json=body).status_code == 200
    p.sql("DELETE FROM src.users WHERE user_id IN ({})".format(", ".join(f"'{k}'" for k in gone)))
    result = p.json("run", "users_to_hook")["syncs"][0]
    assert result["status"] == "success", result
    assert rx.requests[-1].status == 404  # the removes were all answered "not found"
    assert rx.records("users_to_hook") == p.model_users()
    sent = rx.request_count
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date"
    assert rx.request_count == sent  # nothing left to remove: the sync is complete


def test_versions_are_exact_as_javascript_numbers(rx: WebhookReceiver) -> None:
    make_dest(rx).push(TARGET, ops("a"))
    version = rx.requests[-1].body["rows"][0]["version"]
    assert 1_700_000_000 * 10**6 < version < 2**53  # microseconds since the epoch: a double holds it exactly


def test_removes_applied_unanswered_then_not_found_on_the_retry_are_done(tmp_path: Path, rx: WebhookReceiver) -> None:
    """The issue's case: a remove lands, its answer is lost, the retry is answered "not found"."""
    p = mirror_project(tmp_path / "p", rx)
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "success"
    rx.missing_removes = "not_found"
    leaving = sorted(rx.records("users_to_hook"))[:10]
    p.sql("DELETE FROM src.users WHERE user_id IN ({})".format(", ".join(f"'{k}'" for k in leaving)))
    rx.faults.inject("drop_after")
    result = p.json("run", "users_to_hook")["syncs"][0]
    assert [r.status for r in rx.requests[-2:]] == [200, 404] and rx.faults.injected["drop_after"] == 1
    assert result["status"] == "success" and result["released"] == 10, result
    assert rx.records("users_to_hook") == p.model_users()
    sent = rx.request_count
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date" and rx.request_count == sent
