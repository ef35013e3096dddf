"""A run cancelled mid-way (the daemon's graceful stop) ends after the batch in progress,
commits it, and leaves the rest for the next run: nothing lost, nothing sent twice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import make_project

from activation.project.loader import load_project
from activation.runner import run_sync
from activation.session import Session
from activation_emulators.webhook import WebhookReceiver


class CancelAfter:
    """Progress that asks the run to stop once `batches` batches were sent."""

    def __init__(self, cancel: threading.Event, batches: int) -> None:
        self.cancel, self.left = cancel, batches

    def start(self, sync: str, total: int) -> None: ...

    def advance(self, n: int) -> None:
        self.left -= 1
        if self.left == 0:
            self.cancel.set()

    def finish(self) -> None: ...


def test_a_cancelled_run_stops_between_batches_and_the_next_run_finishes(
    tmp_path: Path,
    rx: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_URL", rx.url)
    p = make_project(tmp_path / "c", rx, n=600, orders=900, mode="mirror")
    cancel = threading.Event()
    started: list[str] = []
    with Session(load_project(p.root), dry_run=False) as s:
        s.state.migrate()
        prepared = s.prepare(["users_to_hook"])
        result = run_sync(s, prepared["users_to_hook"], cancel=cancel, progress=CancelAfter(cancel, 3), on_start=started.append)
        assert result.status == "interrupted" and not result.ok
        assert result.sent == result.acknowledged == 150  # three batches of 50, then it stopped
        assert s.state.delivered_count("users_to_hook") == 150
        assert s.state.in_flight_count("users_to_hook") == 0, "the last batch was committed, not left in flight"
    assert started == [result.run_id]
    model = p.model_users()
    got = rx.records("users_to_hook")
    assert len(got) == 150 and all(got[k] == model[k] for k in got)
    assert len(rx.requests) == 3, "no batch after the cancel"

    run = p.json("history", "users_to_hook")["runs"][0]
    assert run["status"] == "interrupted" and run["sent"] == 150
    again = p.json("run", "users_to_hook")["syncs"][0]
    assert again["status"] == "success" and again["sent"] == 450, "only the rest is sent"
    assert rx.records("users_to_hook") == model
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date"
