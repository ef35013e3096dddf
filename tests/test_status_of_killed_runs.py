"""`status` tells a run whose process was killed from one that is running: its sync's lease
(held by the run's process) says whether that process still runs."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

from conftest import make_project, postgres_or_skip
from held_receiver import HeldReceiver, drop_schemas, finish, postgres_project, spawn

ENDED = "the process ended before the run finished"


def test_a_sigkilled_run_is_aborted_in_status_which_exits_1(tmp_path: Path) -> None:
    with HeldReceiver() as rx:
        p = make_project(tmp_path / "k", rx)
        rx.hold()
        child = spawn(p, "run", "users_to_hook")
        assert rx.arrived.wait(120), finish(child)  # the run is mid-push
        os.kill(child.pid, signal.SIGKILL)
        child.wait(60)

        doc = p.json("status", expect=1)
        row = {r["sync"]: r for r in doc["syncs"]}["users_to_hook"]
        assert doc["ok"] is False
        assert row["status"] == "aborted" and row["error"].startswith(ENDED), row
        assert str(child.pid) in row["error"], "it names the process that ended"
        text = p.cli("status", expect=1).stdout
        assert "aborted" in text and "running" not in text and ENDED in text
        p.cli("status", "whales_to_hook", expect=0)  # the selected sync never ran: nothing failed
        p.cli("status", "--select", "users_to_hook", expect=1)
        assert p.json("history", "users_to_hook")["runs"][0]["status"] == "aborted"

        rx.release()
        assert p.json("run", "users_to_hook")["ok"] is True  # the next run is not held up by it
        assert rx.records("users_to_hook") == p.model_users()
        assert [r["status"] for r in p.json("history", "users_to_hook")["runs"]] == ["success", "aborted"]
        p.cli("status", expect=0)


def test_status_says_running_only_while_the_process_runs(tmp_path: Path) -> None:
    """On Postgres `status` can read while a run works: `running` (exit 0) while its process
    lives, `aborted` (exit 1) once it was killed."""
    engine = postgres_or_skip()
    tag = uuid.uuid4().hex[:8]
    try:
        with HeldReceiver() as rx:
            p = postgres_project(tmp_path / "pg", rx, engine, tag, state=f"state: {{schema: state_{tag}}}")
            rx.hold()
            child = spawn(p, "run", "users_to_hook")
            assert rx.arrived.wait(120), finish(child)

            live = {r["sync"]: r for r in p.json("status")["syncs"]}["users_to_hook"]
            assert live["status"] == "running" and live["error"] is None, live
            assert "running" in p.cli("status", "users_to_hook").stdout

            os.kill(child.pid, signal.SIGKILL)
            child.wait(60)
            code, out, err = finish(spawn(p, "status", "users_to_hook", "--json"))  # another process, as a user would
            assert code == 1, err
            assert json.loads(out)["syncs"][0]["status"] == "aborted"

            rx.release()
            assert p.json("run", "users_to_hook")["ok"] is True
            assert rx.records("users_to_hook") == p.model_users()
    finally:
        drop_schemas(engine, tag)
        engine.dispose()
