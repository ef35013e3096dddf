"""`activation daemon`: every scheduled sync, kept flowing, until told to stop.

Threads: the main thread handles signals, reloads and the file watch; APScheduler's thread
marks syncs due at their slots; one worker runs cycles (see `cycle`) of whatever is due; the
health server answers /healthz and /metrics.

Signals: SIGTERM/SIGINT stop starting runs, let the running batch finish and be committed,
release the leases and exit 0 (or 1 after `shutdown_timeout`); a second one exits at once
(at-least-once: the in-flight journal re-checks the batch, the leases expire). SIGHUP
re-reads syncs.yaml; an invalid file is reported and the last good configuration kept.
"""

from __future__ import annotations

import glob
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from activation.daemon import logs
from activation.daemon.alerts import Alerter
from activation.daemon.cycle import Cycle, CycleSettings, Outcome
from activation.daemon.health import HealthServer
from activation.daemon.logs import event
from activation.daemon.metrics import Metrics
from activation.models.compiler import compile_project
from activation.project.loader import ProjectError, ProjectIssue, load_project
from activation.project.secrets import redact
from activation.project.spec import DaemonSpec
from activation.session import select_syncs

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
GATHER_SECONDS = 0.1  # syncs due at the same instant fire within ms of each other: one cycle


@dataclass
class DaemonOptions:
    """Command-line choices; None leaves the `daemon:` section's value."""

    syncs: list[str] | None = None
    select: list[str] | None = None
    health_host: str | None = None
    health_port: int | None = None
    no_health: bool = False
    json_logs: bool | None = None
    log_level: str | None = None
    lease_ttl: float | None = None
    watch: bool | None = None
    name: str | None = None

    def apply(self, spec: DaemonSpec) -> DaemonSpec:
        update: dict[str, object] = {
            k: v
            for k, v in (
                ("health_host", self.health_host),
                ("health_port", self.health_port),
                ("json_logs", self.json_logs),
                ("log_level", self.log_level),
                ("lease_ttl", self.lease_ttl),
                ("watch", self.watch),
            )
            if v is not None
        }
        if self.no_health:
            update["health_port"] = None
        return DaemonSpec.model_validate({**spec.model_dump(), **update})


class _Loaded:
    """A checked configuration: the project, the daemon's settings, the syncs it schedules."""

    def __init__(self, path: Path, options: DaemonOptions) -> None:
        self.loaded = load_project(path)
        try:
            self.spec = options.apply(self.loaded.project.daemon)
        except ValueError as e:  # a flag out of range
            raise ProjectError([ProjectIssue(f"daemon option: {e}")]) from None
        compile_project(self.loaded, lambda n: n, lambda n: f'"{n}"', self.loaded.project.warehouse.type)
        chosen = select_syncs(self.loaded.project, options.syncs, options.select)
        self.scheduled = {n: s.schedule for n in chosen if (s := self.loaded.project.syncs[n]).schedule and s.schedule.kind != "manual"}
        self.unscheduled = [n for n in chosen if n not in self.scheduled]
        if missing := self.loaded.missing_env(self.spec.alerts, "daemon", "alerts"):
            raise ProjectError(missing)

    def files(self) -> list[Path]:
        """What --watch watches: syncs.yaml, its includes, and the .sql files it names."""
        root, p = self.loaded.root, self.loaded.project
        found = {self.loaded.file}
        for pattern in p.include:
            found |= {Path(m) for m in glob.glob(str(root / pattern), recursive=True)}
        for item in [*p.traits.values(), *p.audiences.values(), *p.syncs.values()]:
            sql = getattr(item, "sql", None)
            if sql and sql.strip().endswith(".sql") and "\n" not in sql:
                found.add(root / sql.strip())
        return sorted(found)


def _fingerprint(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(f), -1, -1))
    return tuple(out)


class Daemon:
    def __init__(self, path: Path, options: DaemonOptions) -> None:
        self.path = path
        self.options = options
        self.config = _Loaded(path, options)  # ProjectError: refuse to start
        self.owner = f"{options.name or socket.gethostname()}/{os.getpid()}"
        self.metrics = Metrics()
        self.alerter = Alerter(self.config.spec.alerts, self.owner, self.metrics)
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self._wake = threading.Event()
        self._reload = False
        self._lock = threading.Lock()
        self._due: dict[str, int] = {}
        self._due_ready = threading.Event()
        self._cycle: Cycle | None = None
        self._status: dict[str, Outcome] = {}
        self._paused: dict[str, str] = {}  # syncs a terminal failure paused (Cycle.paused)
        self._config_error: list[str] | None = None
        self._loaded_at = datetime.now(timezone.utc)
        self.scheduler = BackgroundScheduler(
            timezone=self.config.spec.timezone, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self.worker = threading.Thread(target=self._work, name="cycles", daemon=True)
        self.health: HealthServer | None = None

    # -- scheduling ---------------------------------------------------------------------

    def _schedule(self, before: dict[str, str]) -> None:
        """Make the scheduler's jobs match the configuration (unchanged ones keep their slots)."""
        now = {n: s.text for n, s in self.config.scheduled.items()}
        for name in set(before) - set(now) | {n for n in now if n in before and before[n] != now[n]}:
            if self.scheduler.get_job(name):
                self.scheduler.remove_job(name)
        tz = self.config.spec.timezone
        for name, sched in self.config.scheduled.items():
            if not self.scheduler.get_job(name):
                self.scheduler.add_job(_slot, sched.trigger(tz), id=name, name=name)
        with self._lock:
            for name in [n for n in self._due if n not in now]:
                del self._due[name]

    def _submitted(self, e: JobSubmissionEvent) -> None:
        slot = int(max(e.scheduled_run_times).timestamp() * 1000)
        with self._lock:
            self._due[e.job_id] = max(self._due.get(e.job_id, 0), slot)
            self._due_ready.set()

    def _work(self) -> None:
        while not self.stopping.is_set():
            if not self._due_ready.wait(0.5) or self.stopping.wait(GATHER_SECONDS):
                continue
            with self._lock:
                due, self._due = self._due, {}
                self._due_ready.clear()
            spec = self.config.spec
            cycle = Cycle(
                CycleSettings(self.config.loaded, self.owner, spec.lease_ttl, spec.backoff, spec.max_backoff),
                self.metrics,
                self.alerter,
                self.stopping,
                self._record,
                self._paused,
            )
            self._cycle = cycle
            self.metrics.cycles.inc()
            try:
                cycle.run(due)
            except Exception:
                logs.log.exception("cycle failed; the due syncs run at their next slot")
            finally:
                self._cycle = None

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self._status[outcome.sync] = outcome

    # -- configuration ------------------------------------------------------------------

    def _reload_config(self, why: str) -> None:
        try:
            config = _Loaded(self.path, self.options)
            alerter = Alerter(config.spec.alerts, self.owner, self.metrics) if config.spec.alerts != self.config.spec.alerts else None
        except ProjectError as e:
            self._config_error = [redact(str(i)) for i in e.issues]
            self.metrics.reloads.labels("error").inc()
            self.metrics.config_ok.set(0)
            event(
                logging.ERROR,
                f"{self.config.loaded.file.name} is invalid ({why}); the last good configuration keeps running",
                errors=self._config_error,
            )
            return
        before = {n: s.text for n, s in self.config.scheduled.items()}
        old = self.config.spec
        self.config = config
        if alerter is not None:
            alerter.inherit(self.alerter)
            self.alerter.close(timeout=1)
            self.alerter = alerter
        if (old.health_host, old.health_port) != (config.spec.health_host, config.spec.health_port):
            event(logging.WARNING, "daemon.health_host/health_port changes take effect on restart")
        if (old.json_logs, old.log_level) != (config.spec.json_logs, config.spec.log_level):
            logs.configure(json_logs=config.spec.json_logs, level=config.spec.log_level)
        if old.timezone != config.spec.timezone:
            before = {}  # every cron slot moves
            self.scheduler.remove_all_jobs()
        self._schedule(before)
        if self._paused:
            event(logging.INFO, "resuming the paused syncs", syncs=sorted(self._paused))
            self._paused.clear()
        self._config_error = None
        self._loaded_at = datetime.now(timezone.utc)
        self.metrics.reloads.labels("ok").inc()
        self.metrics.config_ok.set(1)
        event(logging.INFO, f"reloaded {config.loaded.file.name} ({why})", scheduled=self._describe())

    def _describe(self) -> dict[str, str]:
        return {n: s.text for n, s in self.config.scheduled.items()}

    # -- health -------------------------------------------------------------------------

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        alive = self.worker.is_alive() and not self.stopping.is_set()
        with self._lock:
            status = dict(self._status)
        syncs: dict[str, Any] = {}
        for name, sched in self.config.scheduled.items():
            job = self.scheduler.get_job(name)
            last = status.get(name)
            syncs[name] = {
                "schedule": sched.text,
                "next_run": job.next_run_time.isoformat() if job and job.next_run_time else None,
                "last_status": last.status if last else None,
                "last_run_id": last.run_id if last else None,
                "last_finished": last.finished_at.isoformat() if last else None,
                "last_error": last.error[:500] if last and last.error else None,
                "failures": last.failures if last else 0,
                "paused": name in self._paused,
            }
        body = {
            "status": "stopping"
            if self.stopping.is_set()
            else "ok"
            if alive and not self._config_error
            else "degraded"
            if alive
            else "down",
            "daemon": self.owner,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "config": {
                "file": str(self.config.loaded.file),
                "ok": self._config_error is None,
                "errors": self._config_error,
                "loaded_at": self._loaded_at.isoformat(),
            },
            "syncs": syncs,
            "unscheduled": self.config.unscheduled,
        }
        return alive, body

    # -- lifecycle ----------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if signum == getattr(signal, "SIGHUP", None):
            self._reload = True
            self._wake.set()
            return
        if self.stopping.is_set():
            event(
                logging.WARNING,
                f"{name} again: exiting now; the batch in flight is re-checked by the next run, leases expire after lease_ttl",
            )
            _flush_and_exit(128 + signum)
        event(logging.INFO, f"{name}: stopping; the batch in progress finishes first (again to exit at once)")
        self.stopping.set()
        if (cycle := self._cycle) is not None:
            cycle.interrupt()
        self._wake.set()

    def run(self) -> int:
        spec = self.config.spec
        logs.configure(json_logs=spec.json_logs, level=spec.log_level)
        if spec.health_port is not None:
            try:
                self.health = HealthServer(spec.health_host, spec.health_port, self.healthz, self.metrics.exposition).start()
            except OSError as e:
                event(logging.ERROR, f"cannot serve /healthz on {spec.health_host}:{spec.health_port}: {e.strerror}")
                return EXIT_FAILED
        for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
            if hasattr(signal, sig):
                signal.signal(getattr(signal, sig), self._on_signal)
        self._schedule({})
        self.scheduler.start()
        self.worker.start()
        event(
            logging.INFO,
            "daemon started",
            daemon=self.owner,
            scheduled=self._describe(),
            unscheduled=self.config.unscheduled or None,
            health=self.health.url if self.health else None,
            lease_ttl=spec.lease_ttl,
        )
        if self.health is not None:
            event(logging.INFO, f"health and metrics on {self.health.url}/healthz and {self.health.url}/metrics")
        files = self.config.files()
        seen = _fingerprint(files)
        while not self.stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._reload:
                self._reload = False
                self._reload_config("SIGHUP")
                files, seen = self.config.files(), _fingerprint(self.config.files())
            elif self.config.spec.watch and (now := _fingerprint(files)) != seen:
                seen = now
                self._reload_config("file changed")
                files = self.config.files()
            if not self.worker.is_alive() and not self.stopping.is_set():
                event(logging.CRITICAL, "the cycle worker died; exiting")
                return EXIT_FAILED
        return self._shutdown()

    def _shutdown(self) -> int:
        spec = self.config.spec
        self.scheduler.shutdown(wait=False)
        self.worker.join(spec.shutdown_timeout)
        if self.worker.is_alive():
            event(
                logging.ERROR,
                f"the running batch did not finish within {spec.shutdown_timeout:g}s; exiting anyway "
                "(it is re-checked by the next run; the lease expires after lease_ttl)",
            )
            _flush_and_exit(EXIT_FAILED)
        self.alerter.close(timeout=min(5.0, spec.shutdown_timeout))
        if self.health is not None:
            self.health.stop()
        event(logging.INFO, "daemon stopped")
        return EXIT_OK


def _slot() -> None:
    """The scheduler's job: nothing; the submission listener records the slot as due."""


def _flush_and_exit(code: int) -> None:
    for h in logging.getLogger().handlers:
        h.flush()
    sys.stderr.flush()
    os._exit(code)
