"""A process SIGKILLed in the middle of a run loses nothing: the next run completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_project

from activation_emulators.webhook import WebhookReceiver


@pytest.mark.parametrize("kill_after", [1, 4, 9])
def test_sigkill_mid_run_loses_nothing(tmp_path: Path, rx: WebhookReceiver, kill_after: int) -> None:
    p = make_project(tmp_path / "k", rx, n=1500, orders=3000, mode="mirror")
    p.cli("run")  # a first full delivery, then a big change to push when we kill
    p.sql("UPDATE src.users SET plan = plan || '_v2'")
    p.sql("DELETE FROM src.users WHERE user_id < 'u0100'")  # removals, under max_removal
    rx.delay(0.05)  # slow the receiver so the kill lands mid-run
    before = rx.request_count
    env = {**os.environ, "HOOK_URL": rx.url}
    child = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "--project", str(p.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while rx.request_count < before + kill_after and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.poll() is None, "the run ended before it could be killed; slow the receiver more"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL
    partial = rx.records("users_to_hook")
    assert partial != p.model_users(), "the kill must land before the run finished"

    rx.delay(0)
    result = p.json("run")
    assert result["ok"] is True
    assert rx.records("users_to_hook") == p.model_users()
    assert rx.records("whales_to_hook") == p.model_whales()
    # the killed run is recorded as aborted, not left 'running'
    runs = p.json("history", "users_to_hook")["runs"]
    assert [r["status"] for r in runs][:3] == ["success", "aborted", "success"]
    # and afterwards everything is up to date
    assert all(s["status"] == "up_to_date" for s in p.json("run")["syncs"])


def test_rows_applied_but_never_acknowledged_are_not_orphaned(tmp_path: Path, rx: WebhookReceiver) -> None:
    """The worst instant: the destination applied a batch, the process died before recording
    it, and those rows then left the model. The in-flight journal makes the next run remove them."""
    p = make_project(tmp_path / "orphans", rx, n=300, orders=600, mode="mirror")
    p.cli("run", "users_to_hook")
    p.sql(
        "INSERT INTO src.users SELECT 'u9' || lpad(CAST(i AS VARCHAR), 3, '0'), 'new' || i || '@example.com', "
        "'pro', 1, 0 FROM range(50) t(i)"
    )  # exactly one batch of new rows
    rx.hang_after_apply(60)
    child = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "users_to_hook", "--project", str(p.root)],
        env={**os.environ, "HOOK_URL": rx.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(rx.records("users_to_hook")) < 350 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert len(rx.records("users_to_hook")) == 350, "the destination holds the batch"

    p.sql("DELETE FROM src.users WHERE user_id LIKE 'u9%'")  # they leave the model
    plan = p.json("plan", "users_to_hook")["plans"][0]
    assert any("interrupted run" in w for w in plan["warnings"])
    result = p.json("run", "users_to_hook")["syncs"][0]
    assert result["plan"]["counts"]["removed"] == 50, result
    assert rx.records("users_to_hook") == p.model_users(), "no orphan left at the destination"
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date"


def test_interrupted_rows_are_resent_even_when_unchanged(tmp_path: Path, rx: WebhookReceiver) -> None:
    """The process died before the destination applied the batch: the journal makes the next
    run send those rows again even though nothing about them changed since."""
    p = make_project(tmp_path / "resend", rx, n=100, orders=200, mode="upsert")
    rx.fail_next(1000, status=503)  # the destination never gets the batch
    child = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "users_to_hook", "--project", str(p.root)],
        env={**os.environ, "HOOK_URL": rx.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while rx.request_count < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    rx.clear_faults()
    p.cli("run", "users_to_hook")
    assert rx.records("users_to_hook") == p.model_users()


@pytest.mark.parametrize("fault,held,then", [("late", 400, "leave the model"), ("timeout", 350, "stay")])
def test_a_kill_while_pushes_overlap_loses_nothing(tmp_path: Path, rx: WebhookReceiver, fault: str, held: int, then: str) -> None:
    """Pushes are pipelined: when the process dies, one batch was acknowledged (recorded or
    not), the next was sent and not answered (applied: `late`, or not: `timeout`), and a third
    was journaled but never sent. Applied rows that then leave the model are removed; rows
    that never arrived are sent again."""
    p = make_project(tmp_path / "overlap", rx, n=300, orders=600, mode="mirror")
    p.cli("run", "users_to_hook")
    p.sql(
        "INSERT INTO src.users SELECT 'u9' || lpad(CAST(i AS VARCHAR), 3, '0'), 'new' || i || '@example.com', "
        "'pro', 1, 0 FROM range(200) t(i)"
    )  # four batches of 50 new rows
    rx.faults.inject("late", 1, seconds=0.0)  # the first batch is answered
    rx.faults.inject(fault, 1, seconds=60)  # the second never is
    before = rx.request_count
    child = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "users_to_hook", "--project", str(p.root)],
        env={**os.environ, "HOOK_URL": rx.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while rx.request_count < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # let the runner record the first batch and journal the third
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert len(rx.records("users_to_hook")) == held
    rx.faults.clear()

    extra = []
    if then == "leave the model":
        p.sql("DELETE FROM src.users WHERE user_id LIKE 'u9%'")
        extra = ["--allow-removal"]  # up to 150 of 450 possibly delivered rows go: above max_removal
    result = p.json("run", "users_to_hook", *extra)["syncs"][0]
    assert result["status"] == "success", result
    assert rx.records("users_to_hook") == p.model_users(), "nothing lost, nothing orphaned"
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date"


def test_a_push_failing_while_another_is_in_flight_loses_nothing(
    tmp_path: Path, rx: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination taking two pushes at once (`pushes_in_flight`): one fails, the other
    may still succeed; what was acknowledged is recorded and the rest is sent next run."""
    from activation.destinations.webhook.destination import WebhookDestination

    monkeypatch.setattr(WebhookDestination, "pushes_in_flight", 2)
    p = make_project(tmp_path / "two", rx, n=400, orders=800, mode="mirror")  # eight pushes of 50
    rx.faults.inject("late", 3, seconds=0.0)  # three pushes are answered, then the credentials "expire"
    rx.faults.inject("unauthorized", 100)
    result = p.json("run", "users_to_hook", expect=1)["syncs"][0]
    assert result["status"] == "failed" and "401" in result["error"]
    assert 150 <= len(rx.records("users_to_hook")) < 400
    assert 150 <= result["acknowledged"] < 400
    rx.faults.clear()
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "success"
    assert rx.records("users_to_hook") == p.model_users()
    plan = p.json("plan", "users_to_hook")["plans"][0]
    assert plan["counts"]["added"] == plan["counts"]["changed"] == 0 and not plan["warnings"], "nothing left in flight"


FILE_PROJECT = """\
version: 1
warehouse: {type: duckdb, path: warehouse.duckdb}
entities:
  user: {table: src.users, key: user_id}
destinations:
  export: {type: file, path: out/users.csv}
syncs:
  users:
    from: user
    to: export
    mode: mirror
    match: {email: email}
    fields: {plan: plan}
    batch_size: 5
    max_removal: 100%
"""


def test_identities_going_a_b_a_around_a_sigkill_leave_the_file_exact(tmp_path: Path) -> None:
    """Found by an oracle keeping records by email, on the file destination: every row's email
    went A -> B, the run was SIGKILLed, the emails went back to A. The recovery removed A as a
    'ghost' of the dead run although rows claimed it again: 4,000 of 20,000 rows vanished,
    with exit 0 and a plan of 0 changes. The released A is claimed again, so it stays."""
    import duckdb

    from activation.destinations.file.destination import read_file_records

    n = 3000
    (tmp_path / "syncs.yaml").write_text(FILE_PROJECT)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(
        f"CREATE SCHEMA src; CREATE TABLE src.users AS SELECT 'u' || i AS user_id, 'a' || i || '@example.com' AS email, "
        f"'pro' AS plan FROM range({n}) t(i)"
    )
    con.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "activation.cli", "run", "-p", str(tmp_path), *args], capture_output=True, text=True, timeout=300
        )

    def sql(statement: str) -> None:
        c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        c.execute(statement)
        c.close()

    out = tmp_path / "out" / "users.csv"
    assert run().returncode == 0
    delivered = out.stat().st_size
    sql("UPDATE src.users SET email = 'b' || substr(email, 2)")  # A -> B, every row
    child = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "run", "-p", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    # B lines are added a batch of 5 at a time (the A lines go at the end of the run): kill
    # once a tenth of them are there, hundreds of batches before the end
    while out.stat().st_size < delivered * 1.1 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL, "the kill must land mid-run"
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    in_flight = c.execute("SELECT count(*) FROM activation_state.in_flight").fetchone()
    c.close()
    assert in_flight is not None and in_flight[0] > 0, "the dead run left rows in flight: the recovery is exercised"
    sql("UPDATE src.users SET email = 'a' || substr(email, 2)")  # B -> A

    assert run().returncode == 0
    held = read_file_records(out, "csv", ["email"])
    assert set(held) == {(f"a{i}@example.com",) for i in range(n)}, "every A is held, no B is left"
    again = subprocess.run(
        [sys.executable, "-m", "activation.cli", "plan", "-p", str(tmp_path), "--json"], capture_output=True, text=True, timeout=300
    )
    import json

    [plan] = json.loads(again.stdout)["plans"]  # and nothing left to do
    assert plan["counts"]["added"] == plan["counts"]["changed"] == plan["counts"]["removed"] == 0
