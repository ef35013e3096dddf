"""`activation daemon` as real processes: schedules, signals, reload, health, metrics, alerts,
and several daemons sharing one Postgres state store.

Daemons run as subprocesses with JSON logs in a file that the tests read; every wait polls
for a condition with a deadline. Postgres tests use 127.0.0.1:5432 (database `test`) in
their own schemas and skip, saying so, where no server is reachable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from conftest import PG_URL, Project, make_project, postgres_or_skip
from test_warehouses import dataset, load

from activation_emulators.webhook import WebhookReceiver

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 90.0) -> T:
    """`condition()` once it is truthy. `timeout` only bounds a failure: generous, so that a
    loaded machine (a process start can take seconds) does not fail a passing test."""
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Daemon:
    """`activation daemon` in a subprocess, its JSON log lines in a file."""

    def __init__(self, root: Path, env: dict[str, str], *args: str, log: Path) -> None:
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "activation.cli", "daemon", "-p", str(root), "--json-logs", "--port", "0", *args],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.url = wait_for(lambda: next((e["health"] for e in self.events("daemon started")), None) or self._died(), "the daemon to start")

    def _died(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")

    def events(self, message: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if message is None or e.get("message", "").startswith(message):
                out.append(e)
        return out

    def runs(self, sync: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events("run finished") if sync is None or e["sync"] == sync]

    def metrics(self) -> dict[str, float]:
        """`name{labels}` -> value, from /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return {k: float(v) for k, _, v in (line.rpartition(" ") for line in text.splitlines() if line and not line.startswith("#"))}

    def health(self) -> tuple[int, dict[str, Any]]:
        r = httpx.get(f"{self.url}/healthz", timeout=5)
        return r.status_code, r.json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def scheduled(p: Project, users: str = "every 1s", whales: str | None = "every 1s", extra: str = "") -> None:
    text = (p.root / "syncs.yaml").read_text()
    text = text.replace("    mode: mirror\n", f"    mode: mirror\n    schedule: {users}\n    max_removal: 60%\n", 1)
    if whales:
        text = text.replace("    mode: audience\n", f"    mode: audience\n    schedule: {whales}\n", 1)
    (p.root / "syncs.yaml").write_text(text + extra)


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the series of `name` whose labels include `labels`."""
    total = 0.0
    for key, v in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{val}"' in rest for k, val in labels.items()):
            total += v
    return total


# ---------------------------------------------------------------- one daemon, DuckDB


def test_metrics_move_during_a_run_and_a_failing_sync_alerts_and_backs_off(
    tmp_path: Path,
    rx: WebhookReceiver,
    daemons: list[Daemon],
) -> None:
    p = make_project(tmp_path / "m", rx, n=1500, orders=7500, mode="mirror")
    users = p.model_users()
    # whales with 3 seats get an empty match field: rejected before sending, ~14% of the audience
    three_seats = {k for (k,) in p.sql("SELECT user_id FROM src.users WHERE seats = 3")}
    rejected = set(p.model_whales()) & three_seats
    assert len(rejected) > 0.05 * len(p.model_whales())
    text = (p.root / "syncs.yaml").read_text()
    (p.root / "syncs.yaml").write_text(
        text.replace(
            "    mode: audience\n    match: {email: email}",
            "    mode: audience\n    match: {email: \"{{ '' if row.seats == 3 else row.email }}\"}",
        )
    )
    with WebhookReceiver(accept_any=True) as alerts:
        base = alerts.url.rsplit("/", 1)[0]
        slack = f"{base}/services/T000/B000/SECRETTOKEN42"
        scheduled(
            p,
            extra=f"""
  broken:
    from: user
    to: down
    match: {{email: email}}
    schedule: every 1s
daemon:
  lease_ttl: 3s
  backoff: 2s
  alerts: {{slack_webhook_url: "${{SLACK_URL}}", webhook_url: "{base}/alerts", rejected_rate: 5%}}
""",
        )
        (p.root / "syncs.yaml").write_text(
            (p.root / "syncs.yaml")
            .read_text()
            .replace("destinations:\n", "destinations:\n  down: {type: webhook, url: 'http://127.0.0.1:9/nothing', max_retries: 0}\n")
        )
        rx.delay(0.02)  # 30 batches of 50: the first run takes a while, long enough to scrape it
        rx.throttle_next(2, retry_after="0")
        d = Daemon(p.root, {"HOOK_URL": rx.url, "SLACK_URL": slack}, log=tmp_path / "m.log")
        daemons.append(d)

        # during the users run: the gauge says running and rows sent keep going up
        def sent_while_running() -> float | None:
            m = d.metrics()
            running = metric(m, "activation_sync_running", sync="users_to_hook") == 1
            return metric(m, "activation_rows_sent_total", sync="users_to_hook") if running else None

        first = wait_for(lambda: (v := sent_while_running()) and v > 0 and v < 1500 and v, "a run in progress")
        wait_for(lambda: (v := sent_while_running()) and v > first, "rows sent to grow during the run")
        rx.delay(0)

        wait_for(lambda: len(d.runs("users_to_hook")) >= 3, "three users runs")
        m = d.metrics()
        assert metric(m, "activation_runs_total", sync="users_to_hook", status="success") >= 1
        assert metric(m, "activation_rows_acknowledged_total", sync="users_to_hook") == 1500
        assert metric(m, "activation_rows_rejected_total", sync="whales_to_hook", stage="plan") >= len(rejected)
        assert metric(m, "activation_last_success_timestamp_seconds", sync="users_to_hook") > time.time() - 60
        assert metric(m, "activation_api_requests_total", sync="users_to_hook") >= 30
        assert metric(m, "activation_api_throttled_total") == 2 and metric(m, "activation_api_retries_total") >= 2
        assert metric(m, "activation_run_duration_seconds_count", sync="users_to_hook") >= 3
        # the three syncs read the same 4 models (2 traits, the users' traits table, the audience):
        # refreshed once per cycle, not once per sync (that would be up to 10)
        assert 0 < metric(m, "activation_model_refreshes_total") <= 4 * metric(m, "activation_cycles_total")

        # the broken sync failed, skipped its slots for the backoff while the others went on, failed again
        wait_for(lambda: len(d.runs("broken")) >= 2, "broken to be retried after its backoff")
        m = d.metrics()
        broken = d.runs("broken")
        assert {r["status"] for r in broken} == {"failed"}
        # its second run began a backoff (2 s) after the first ended, whatever the slots did
        # meanwhile (on a loaded machine a cycle can outlast the backoff, and no slot is skipped)
        ended = datetime.fromisoformat(broken[0]["ts"].replace("Z", "+00:00"))
        began = datetime.fromisoformat(broken[1]["ts"].replace("Z", "+00:00")) - timedelta(seconds=broken[1]["seconds"])
        assert (began - ended).total_seconds() >= 1.9, (ended, began)
        assert metric(m, "activation_sync_consecutive_failures", sync="broken") >= 2
        assert metric(m, "activation_runs_total", sync="users_to_hook") > metric(m, "activation_runs_total", sync="broken")
        status, health = d.health()
        assert status == 200 and health["status"] == "ok"
        assert health["syncs"]["broken"]["failures"] >= 2 and health["syncs"]["broken"]["last_status"] == "failed"
        assert health["syncs"]["users_to_hook"]["last_status"] in ("success", "partial", "up_to_date")

        # alerts: the failure once (not every slot) to both receivers, and the rejected rate of whales only
        def bodies(path: str) -> list[Any]:
            return [r.body for r in alerts.requests if r.path == path]

        slack_texts = wait_for(lambda: (b := bodies("/services/T000/B000/SECRETTOKEN42")) and len(b) >= 2 and b, "slack alerts")
        hooks = wait_for(lambda: (b := bodies("/alerts")) and len(b) >= 2 and b, "webhook alerts")
        kinds = sorted((a["kind"], a["sync"]) for a in hooks)
        assert kinds == [("rejected_rate", "whales_to_hook"), ("sync_failed", "broken")], kinds
        failed = next(a for a in hooks if a["kind"] == "sync_failed")
        assert failed["failures"] == 1 and failed["status"] == "failed" and "127.0.0.1:9" in failed["error"]
        rate = next(a for a in hooks if a["kind"] == "rejected_rate")
        assert rate["rejected"] == len(rejected) and rate["rejected_rate"] > 0.05
        assert any("broken failed" in t["text"] for t in slack_texts)

        assert d.stop() == 0
    log = d.log.read_text()
    assert "SECRETTOKEN42" not in log, "the Slack URL is a secret"
    assert all(e["sync"] and e["run_id"] for e in d.runs()), "every run line names its sync and run"
    assert rx.records("users_to_hook") == users
    assert rx.records("whales_to_hook") == {k: v for k, v in p.model_whales().items() if k not in rejected}


def test_sigterm_mid_sync_exits_0_and_the_next_start_finishes_it(
    tmp_path: Path,
    rx: WebhookReceiver,
    daemons: list[Daemon],
) -> None:
    p = make_project(tmp_path / "t", rx, n=1500, orders=3000, mode="mirror")
    scheduled(p, whales=None, extra="daemon: {lease_ttl: 2s}\n")
    model = p.model_users()  # now: the daemon's cycles hold the DuckDB file
    rx.delay(0.03)
    env = {"HOOK_URL": rx.url}
    d = Daemon(p.root, env, log=tmp_path / "t1.log")
    daemons.append(d)
    wait_for(lambda: rx.request_count >= 5, "the first batches")
    assert d.stop(timeout=30) == 0
    (interrupted,) = d.runs("users_to_hook")
    assert interrupted["status"] == "interrupted"
    partial = rx.records("users_to_hook")
    assert 0 < len(partial) < 1500 and len(partial) == interrupted["acknowledged"]

    # a second signal exits at once, even in the worst place: the destination applied a batch
    # and has not answered yet
    rx.hang_after_apply(15)
    d2 = Daemon(p.root, env, log=tmp_path / "t2.log")  # the lease was released: it starts at once
    daemons.append(d2)
    wait_for(lambda: len(rx.records("users_to_hook")) > len(partial), "the second daemon's first batch to arrive")
    d2.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: d2.events("SIGTERM: stopping"), "the first signal to be handled")
    assert d2.stop(timeout=5) == 128 + signal.SIGTERM, "the second signal does not wait for the batch"
    assert not d2.runs()

    rx.delay(0)
    d3 = Daemon(p.root, env, log=tmp_path / "t3.log")  # takes the lease over once it expires
    daemons.append(d3)
    wait_for(lambda: rx.records("users_to_hook") == model, "the destination to equal the model")
    wait_for(lambda: any(r["status"] == "up_to_date" for r in d3.runs()), "an up-to-date run")
    assert d3.stop() == 0
    assert d3.runs("users_to_hook")[0]["status"] == "success"
    history = p.json("history", "users_to_hook", "-n", "50")["runs"]
    assert [r["status"] for r in history[-2:]] == ["aborted", "interrupted"]
    assert {r["status"] for r in history[:-2]} <= {"success", "up_to_date"}


def test_sighup_with_a_broken_file_keeps_the_old_schedule(tmp_path: Path, rx: WebhookReceiver, daemons: list[Daemon]) -> None:
    p = make_project(tmp_path / "h", rx, n=50, orders=100, mode="mirror")
    scheduled(p, users="every 1s", whales="manual")
    good = (p.root / "syncs.yaml").read_text()
    d = Daemon(p.root, {"HOOK_URL": rx.url}, log=tmp_path / "h.log")
    daemons.append(d)
    wait_for(lambda: d.runs("users_to_hook"), "a first run")
    # between cycles the daemon holds no DuckDB lock: another command can read the warehouse
    wait_for(lambda: p.cli("status", "--json", expect=None).exit_code == 0, "status to read the warehouse")

    broken = good.replace("schedule: every 1s", "schedule: '*/5 * * * 9'")
    (p.root / "syncs.yaml").write_text(broken)
    line = broken.splitlines().index("    schedule: '*/5 * * * 9'") + 1
    d.proc.send_signal(signal.SIGHUP)
    (error,) = wait_for(lambda: d.events("syncs.yaml is invalid"), "the reload error")
    assert any(e.startswith(f"syncs.yaml:{line}:") and "9 is not a day" in e for e in error["errors"]), error
    runs_before = len(d.runs("users_to_hook"))
    wait_for(lambda: len(d.runs("users_to_hook")) >= runs_before + 2, "the old schedule to keep running")
    status, health = d.health()
    assert status == 200 and health["status"] == "degraded" and health["config"]["ok"] is False
    assert health["syncs"]["users_to_hook"]["schedule"] == "every 1s"
    assert metric(d.metrics(), "activation_config_valid") == 0
    assert not d.runs("whales_to_hook")

    (p.root / "syncs.yaml").write_text(good + "daemon: {watch: true}\n")  # fixed, and watched from now on
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("reloaded syncs.yaml (SIGHUP)"), "the reload")
    assert d.health()[1]["config"]["ok"] is True and metric(d.metrics(), "activation_config_valid") == 1
    # no signal now: the watch sees the change
    (p.root / "syncs.yaml").write_text(good.replace("schedule: manual", "schedule: every 1s") + "daemon: {watch: true}\n")
    wait_for(lambda: d.events("reloaded syncs.yaml (file changed)"), "the watch to re-read the file")
    wait_for(lambda: d.runs("whales_to_hook"), "the newly scheduled sync to run")
    assert d.stop() == 0
    assert rx.records("whales_to_hook") == p.model_whales()


def test_a_refused_token_pauses_its_sync_at_once_while_a_503_backs_off(tmp_path: Path, rx: WebhookReceiver, daemons: list[Daemon]) -> None:
    """A 401 will not pass by retrying: the sync fails once, is alerted as paused, and is not
    tried again (no request at later slots) until the configuration is reloaded. A 503 may
    pass: that sync backs off and is retried."""
    p = make_project(tmp_path / "t", rx, n=20, orders=40, mode="mirror")
    with WebhookReceiver() as locked, WebhookReceiver() as down, WebhookReceiver(accept_any=True) as alerts:
        locked.faults.inject("unauthorized", n=1000)
        down.faults.inject("error", n=1000, status=503)
        base = alerts.url.rsplit("/", 1)[0]
        text = (
            (p.root / "syncs.yaml")
            .read_text()
            .replace(
                "destinations:\n",
                "destinations:\n"
                f"  locked: {{type: webhook, url: '{locked.url}', max_retries: 0}}\n"
                f"  down: {{type: webhook, url: '{down.url}', max_retries: 0}}\n",
            )
        )
        good = (
            text
            + f"""
  to_locked: {{from: user, to: locked, match: {{email: email}}, schedule: every 1s}}
  to_down: {{from: user, to: down, match: {{email: email}}, schedule: every 1s}}
daemon:
  backoff: 1s
  alerts: {{webhook_url: "{base}/alerts"}}
"""
        )
        (p.root / "syncs.yaml").write_text(good)
        d = Daemon(p.root, {"HOOK_URL": rx.url}, log=tmp_path / "t.log")
        daemons.append(d)
        wait_for(lambda: len(d.runs("to_down")) >= 3, "the 503 sync to be retried twice after its backoff")
        m = d.metrics()
        assert metric(m, "activation_slots_skipped_total", sync="to_locked", reason="paused") >= 2
        assert len(d.runs("to_locked")) == 1 and locked.request_count == 1, "one attempt, then paused"
        assert metric(m, "activation_slots_skipped_total", sync="to_down", reason="paused") == 0
        health = d.health()[1]["syncs"]
        assert health["to_locked"]["paused"] is True and health["to_down"]["paused"] is False
        assert "401" in health["to_locked"]["last_error"]
        hooks = wait_for(
            lambda: (b := [r.body for r in alerts.requests if r.path == "/alerts"]) and len(b) >= 2 and b, "the failure alerts"
        )
        by_sync = {a["sync"]: a for a in hooks}
        assert by_sync["to_locked"]["paused"] is True and by_sync["to_down"]["paused"] is False

        locked.faults.clear()  # the token was fixed: a reload resumes the sync
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: d.events("resuming the paused syncs"), "the paused sync to resume")
        wait_for(lambda: any(r["status"] == "success" for r in d.runs("to_locked")), "the resumed sync to succeed")
        assert d.stop() == 0
    assert set(locked.records("to_locked")) == set(p.model_users())


# ---------------------------------------------------------------- several daemons, Postgres

PG_PROJECT = """
version: 1
warehouse: {{type: postgres, url: '{pg}', schema: act_{tag}}}
state: {{schema: state_{tag}}}
entities:
  user: {{table: src_{tag}.users, key: user_id}}
traits:
  ltv: {{entity: user, sql: "select user_id, sum(amount) as ltv from src_{tag}.orders group by user_id"}}
audiences:
  whales: {{entity: user, where: "ltv >= 100"}}
destinations:
  hook: {{type: webhook, url: '{url}', batch_size: 10, timeout_seconds: 300}}  # a held push waits for the test
syncs:
  users_a: {{from: user, to: hook, object: a, mode: mirror, match: {{email: email}}, fields: {{plan: plan, ltv: ltv}}, schedule: every 1s, max_removal: 50%}}
  users_b: {{from: user, to: hook, object: b, mode: mirror, match: {{email: email}}, fields: {{seats: seats}}, schedule: every 1s, max_removal: 50%}}
  whales: {{from: whales, to: hook, mode: audience, match: {{email: email}}, schedule: every 1s, max_removal: 50%}}
  pro_plans:
    sql: "select user_id, plan from {{{{ ref('user') }}}} where plan = 'pro'"
    key: user_id
    to: hook
    mode: mirror
    match: {{user_id: user_id}}
    fields: {{plan: plan}}
    schedule: every 2s
    max_removal: 50%
daemon: {{lease_ttl: {ttl}}}
"""


@pytest.fixture
def pg_project(tmp_path: Path, rx: WebhookReceiver) -> Iterator[tuple[Path, sa.Engine, str]]:
    engine = postgres_or_skip()
    tag = uuid.uuid4().hex[:8]
    load(engine, f"src_{tag}", dataset())
    root = tmp_path / "pg"
    root.mkdir()
    (root / "syncs.yaml").write_text(PG_PROJECT.format(pg=PG_URL, tag=tag, url=rx.url, ttl="2s"))
    yield root, engine, tag
    with engine.begin() as c:
        for schema in (f"src_{tag}", f"act_{tag}", f"state_{tag}"):
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def pg_model(engine: sa.Engine, tag: str) -> dict[str, dict[str, dict[str, Any]]]:
    """What every sync must deliver, computed here with plain SQL."""
    with engine.connect() as c:
        rows = c.execute(
            sa.text(f"""
            SELECT u.user_id, u.email, u.plan, u.seats, o.ltv FROM src_{tag}.users u
            LEFT JOIN (SELECT user_id, sum(amount) AS ltv FROM src_{tag}.orders GROUP BY 1) o USING (user_id)""")
        ).all()
    return {
        "users_a": {r.user_id: {"email": r.email, "plan": r.plan, "ltv": r.ltv} for r in rows},
        "users_b": {r.user_id: {"email": r.email, "seats": r.seats} for r in rows},
        "whales": {r.user_id: {"email": r.email} for r in rows if r.ltv is not None and r.ltv >= 100},
        "pro_plans": {r.user_id: {"user_id": r.user_id, "plan": r.plan} for r in rows if r.plan == "pro"},
    }


def delivered(rx: WebhookReceiver) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        s: {k: {f: (int(v) if isinstance(v, float) and v.is_integer() else v) for f, v in fields.items()} for k, fields in recs.items()}
        for s, recs in rx.all_records().items()
    }


def run_ranges(engine: sa.Engine, tag: str) -> dict[str, list[tuple[datetime, datetime | None, str]]]:
    with engine.connect() as c:
        rows = c.execute(sa.text(f"SELECT sync_name, started_at, finished_at, status FROM state_{tag}.runs ORDER BY started_at")).all()
    out: dict[str, list[tuple[datetime, datetime | None, str]]] = {}
    for r in rows:
        out.setdefault(r.sync_name, []).append((r.started_at, r.finished_at, r.status))
    return out


def assert_never_concurrent(ranges: dict[str, list[tuple[datetime, datetime | None, str]]]) -> None:
    for sync, runs in ranges.items():
        for (s1, f1, st1), (s2, _, _) in zip(runs, runs[1:], strict=False):
            assert f1 is not None and f1 <= s2, f"{sync}: a run ({st1}, {s1}..{f1}) overlaps the next one from {s2}"


@pytest.mark.slow
def test_two_daemons_share_the_work_and_never_run_a_sync_twice_at_once(
    pg_project: tuple[Path, sa.Engine, str],
    rx: WebhookReceiver,
    daemons: list[Daemon],
    tmp_path: Path,
) -> None:
    root, engine, tag = pg_project
    rx.delay(0.01)  # runs take long enough that an overlap would show
    env = {"HOOK_URL": rx.url}
    a = Daemon(root, env, "--name", "alpha", log=tmp_path / "a.log")
    b = Daemon(root, env, "--name", "beta", log=tmp_path / "b.log")
    daemons += [a, b]
    wait_for(lambda: delivered(rx) == pg_model(engine, tag), "the first delivery", timeout=60)
    with engine.begin() as c:  # the model changes while both daemons run
        c.execute(sa.text(f"UPDATE src_{tag}.users SET plan = 'pro' WHERE user_id IN ('u001', 'u003', 'u005')"))
        c.execute(sa.text(f"DELETE FROM src_{tag}.users WHERE user_id IN ('u010', 'u012')"))
        c.execute(sa.text(f"INSERT INTO src_{tag}.orders VALUES ('u002', 500)"))
    wait_for(lambda: delivered(rx) == pg_model(engine, tag), "the change to be delivered", timeout=60)
    wait_for(lambda: all(len(runs) >= 4 for runs in run_ranges(engine, tag).values()), "a few runs of every sync")
    contended = sum(metric(d.metrics(), "activation_slots_skipped_total", reason=r) for d in (a, b) for r in ("held", "served"))
    assert contended > 0, "the daemons competed for the same slots (and each slot ran once)"
    assert a.stop() == 0 and b.stop() == 0

    ranges = run_ranges(engine, tag)
    assert set(ranges) == {"users_a", "users_b", "whales", "pro_plans"}, "every sync ran"
    assert_never_concurrent(ranges)
    assert {st for runs in ranges.values() for _, _, st in runs} <= {"success", "up_to_date", "interrupted"}
    by_a, by_b = {e["run_id"] for e in a.runs()}, {e["run_id"] for e in b.runs()}
    assert by_a and by_b and not by_a & by_b, "both daemons ran syncs, never the same run"
    assert delivered(rx) == pg_model(engine, tag)


@pytest.mark.slow
def test_a_sigkilled_daemons_lease_is_taken_over_after_it_expires(
    pg_project: tuple[Path, sa.Engine, str],
    rx: WebhookReceiver,
    daemons: list[Daemon],
    tmp_path: Path,
) -> None:
    root, engine, tag = pg_project
    env = {"HOOK_URL": rx.url}
    # alpha's first push waits at the receiver until alpha is killed: its run outlasts the 2 s
    # lease however slow the machine is (events, not a delay that must outlast process starts)
    gate = rx.hold_next()
    a = Daemon(root, env, "users_a", "--name", "alpha", log=tmp_path / "a.log")
    daemons.append(a)
    leases = f"state_{tag}.leases"

    def lease() -> Any:
        with engine.connect() as c:
            return c.execute(sa.text(f"SELECT owner, expires_ms FROM {leases} WHERE name = 'users_a'")).one_or_none()

    first = wait_for(lambda: rx.request_count >= 1 and lease(), "alpha to be sending")
    assert first.owner.startswith("alpha/")
    b = Daemon(root, env, "users_a", "--name", "beta", log=tmp_path / "b.log")
    daemons.append(b)
    wait_for(lambda: b.events("skipped: users_a is running in alpha/"), "beta to find the lease held")
    held = wait_for(lambda: (now := lease()) and now.expires_ms > first.expires_ms and now, "alpha to renew its lease")
    assert held.owner.startswith("alpha/"), "a renewed lease stays alpha's: beta did not take a live lease"
    a.proc.kill()
    a.proc.wait(10)
    gate.set()  # the held push lands late, from a dead process: beta's run makes it right
    wait_for(lambda: (now := lease()) and now.owner.startswith("beta/"), "beta to take the lease over")
    wait_for(lambda: any(r["status"] == "success" for r in b.runs("users_a")), "beta to finish the sync")
    assert b.stop() == 0
    with engine.connect() as c:
        runs = c.execute(
            sa.text(f"SELECT started_at, finished_at, status, error FROM state_{tag}.runs WHERE sync_name = 'users_a' ORDER BY started_at")
        ).all()
        expired_ms = c.execute(sa.text(f"SELECT {held.expires_ms}")).scalar()
    killed, taken_over = runs[0], runs[1]
    assert killed.status == "aborted" and "ended before the run finished" in killed.error
    assert taken_over.started_at.timestamp() * 1000 >= expired_ms - 50, "beta started only after alpha's lease expired"
    assert_never_concurrent({"users_a": [(r.started_at, r.finished_at or r.started_at, r.status) for r in runs[1:]]})
    assert delivered(rx)["users_a"] == pg_model(engine, tag)["users_a"]
