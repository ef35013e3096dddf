"""Every generic fault (activation_emulators.faults) through a real run: nothing lost, nothing stale.

The webhook receiver applies batches idempotently by key, so faults that strike after the
batch was applied (the client never hears back) must be resent, and resending is harmless.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project, make_project

from activation_emulators.faults import Fault, FaultInjector
from activation_emulators.webhook import WebhookReceiver

FAST_HOOK = 'hook: {type: webhook, url: "${HOOK_URL}", batch_size: 50, max_retries: 3, timeout_seconds: 0.5}'


def fast_project(root: Path, rx: WebhookReceiver) -> Project:
    p = make_project(root, rx, n=120, mode="mirror")
    text = (root / "syncs.yaml").read_text()
    old = next(line.strip() for line in text.splitlines() if line.strip().startswith("hook:"))
    (root / "syncs.yaml").write_text(text.replace(old, FAST_HOOK))
    return p


@pytest.mark.parametrize(
    "fault",
    [
        Fault("error", 500),
        Fault("error", 503),
        Fault("throttle"),
        Fault("throttle", retry_after=None),
        Fault("drop"),
        Fault("timeout", seconds=0.8),
        Fault("drop_after"),
        Fault("truncate"),
        Fault("late", seconds=0.8),
    ],
    ids=lambda f: f"{f.kind}-{f.status if f.kind == 'error' else ''}{f.retry_after if f.kind == 'throttle' else ''}",
)
def test_a_fault_mid_run_is_retried_and_the_destination_ends_equal_to_the_model(tmp_path: Path, rx: WebhookReceiver, fault: Fault) -> None:
    p = fast_project(tmp_path / "p", rx)
    rx.faults.inject(fault.kind, status=fault.status, retry_after=fault.retry_after, seconds=fault.seconds)
    result = p.json("run", "users_to_hook")["syncs"][0]
    assert result["status"] == "success", result
    assert rx.faults.injected[fault.kind] == 1 and rx.faults.pending == 0
    assert rx.records("users_to_hook") == p.model_users()
    # a fault after the batch was applied means it arrives twice: harmless, and counted
    applied_twice = fault.kind in ("drop_after", "truncate", "late")
    assert (rx.duplicate_batches == 1) is applied_twice
    assert p.json("plan", "users_to_hook")["plans"][0]["counts"]["added"] == 0


def test_unauthorized_stops_the_sync_and_the_next_run_delivers_everything(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = fast_project(tmp_path / "p", rx)
    rx.faults.inject("unauthorized", n=1, match="POST")
    failed = p.json("run", "users_to_hook", expect=1)["syncs"][0]
    assert failed["status"] == "failed" and "401" in failed["error"]
    assert rx.records("users_to_hook") == {}
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "success"
    assert rx.records("users_to_hook") == p.model_users()


def test_chaos_faults_never_lose_a_row(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = fast_project(tmp_path / "p", rx)
    rx.faults.chaos(0.3, seed=7)
    runs = 0
    while runs < 10:  # a run may fail when retries run out; the next one picks up
        runs += 1
        if p.json("run", "users_to_hook", expect=None)["ok"]:
            break
    rx.faults.clear()
    assert sum(rx.faults.injected.values()) > 0
    p.json("run", "users_to_hook")
    assert rx.records("users_to_hook") == p.model_users()


def test_queued_faults_match_requests_and_chaos_is_reproducible() -> None:
    f = FaultInjector()
    f.inject("error", n=2, status=502, match="/batch")
    assert f.take("POST", "/other") is None
    assert f.take("POST", "/x/batch").status == 502  # type: ignore[union-attr]
    assert f.take("POST", "/x/batch") is not None and f.take("POST", "/x/batch") is None
    draws = []
    for _ in range(2):
        f.chaos(0.5, seed=3)
        draws.append([f.take("GET", "/") for _ in range(50)])
    assert draws[0] == draws[1] and any(d is None for d in draws[0]) and any(d is not None for d in draws[0])
