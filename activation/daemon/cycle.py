"""One cycle of the daemon: the syncs that came due together, each under its lease.

A cycle opens one `Session` (so the warehouse and the state store are open only while it
works: DuckDB's file is free between cycles), then, sync by sync:

1. takes the sync's lease for its schedule slot, or skips it: another process is running
   it, another daemon already ran this slot, or it is backing off after failures;
2. refreshes the models it needs that this cycle has not refreshed yet, each under a
   `model:<id>` lease, and not at all when another daemon refreshed it since the slot
   (so a fleet refreshes each model once per slot, and never two at once);
3. runs it, then releases the lease, recording success or failure (backoff).

Taking leases one sync at a time is what spreads the work over several daemons. A renewer
thread keeps every lease of the cycle alive; a lease it cannot renew cancels its run after
the batch in progress, as does shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa

from activation.daemon.alerts import FAILED, Alerter
from activation.daemon.logs import event, set_run, sync_context
from activation.daemon.metrics import Metrics, MetricsProgress
from activation.project.loader import LoadedProject, ProjectError
from activation.project.secrets import redact
from activation.runner import SyncResult, run_sync
from activation.session import Refresh, Session
from activation.state.leases import MODEL_PREFIX, Lease, LeaseStore, Refusal, Renewer
from activation.state.store import StateError

log = logging.getLogger("activation.daemon")


class Stopping(Exception):
    """Shutdown began while the cycle waited (for a model another daemon is refreshing)."""


@dataclass
class Outcome:
    """How a sync's turn in a cycle ended (for /healthz)."""

    sync: str
    status: str
    run_id: str | None = None
    error: str | None = None
    failures: int = 0
    finished_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class CycleSettings:
    loaded: LoadedProject
    owner: str
    lease_ttl: float
    backoff: float
    max_backoff: float


class Cycle:
    def __init__(
        self,
        settings: CycleSettings,
        metrics: Metrics,
        alerter: Alerter,
        stop: threading.Event,
        on_outcome: Callable[[Outcome], None],
        paused: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        # sync -> why: a run failed for a reason retrying cannot fix (a refused token, a missing
        # permission); trying it at every slot would only hammer the vendor and repeat the
        # alert. Owned by the daemon: a reload (the fix) clears it.
        self.paused = paused if paused is not None else {}
        self.metrics = metrics
        self.alerter = alerter
        self.stop = stop
        self.on_outcome = on_outcome
        self._cancel: threading.Event | None = None  # the run in progress

    def interrupt(self) -> None:
        """Shutdown: the run in progress ends after its current batch."""
        if (cancel := self._cancel) is not None:
            cancel.set()

    def run(self, due: dict[str, int]) -> None:
        """Run the due syncs: name -> the schedule slot (ms since the epoch, this host's clock)."""
        project = self.settings.loaded.project
        names = [n for n in project.syncs if n in due]  # the file's order: every daemon tries the same first
        try:
            session = Session(self.settings.loaded, dry_run=False)
        except ProjectError as e:
            return self._unavailable(names, "; ".join(str(i) for i in e.issues))
        except sa.exc.SQLAlchemyError as e:  # e.g. the server is down
            return self._unavailable(names, f"{type(e).__name__}: {e}")
        with session as s:
            try:
                s.state.migrate()
                leases = LeaseStore(s.state, self.settings.owner, self.settings.lease_ttl)
                offset_ms = leases.now_ms() - int(time.time() * 1000)  # database clock - ours
            except (sa.exc.SQLAlchemyError, StateError) as e:
                return self._unavailable(names, f"{type(e).__name__}: {e}")
            with Renewer(leases, self.settings.lease_ttl) as renewer:
                for name in names:
                    if self.stop.is_set():
                        break
                    try:
                        self._one(s, leases, renewer, name, due[name], offset_ms)
                    except Stopping:
                        break

    def _unavailable(self, names: list[str], error: str) -> None:
        error = redact(error)
        event(
            logging.ERROR,
            "cannot open the warehouse or the state store; the due syncs run at their next slot",
            syncs=names,
            error=error[:500],
        )
        for name in names:
            self._report(name, self.settings.loaded.project.syncs[name].to, None, error, failures=0)

    def _one(self, s: Session, leases: LeaseStore, renewer: Renewer, name: str, slot_ms: int, offset_ms: int) -> None:
        dest = s.project.syncs[name].to
        if name in self.paused:
            self.metrics.skipped.labels(name, "paused").inc()
            with sync_context(name):
                event(logging.DEBUG, "skipped: paused after a terminal failure (reload the configuration to resume)", skipped="paused")
            return
        got = leases.acquire(name, slot_ms=slot_ms)
        if isinstance(got, Refusal):
            self.metrics.skipped.labels(name, got.reason).inc()
            with sync_context(name):
                event(logging.DEBUG if got.reason == "served" else logging.INFO, f"skipped: {got}", skipped=got.reason)
            return
        cancel = threading.Event()
        renewer.hold(got, cancel)
        self._cancel = cancel
        if self.stop.is_set():
            cancel.set()
        failed: bool | None = None
        not_before: float | None = None  # the destination said when trying again can help
        with sync_context(name):
            running = self.metrics.running.labels(name, dest)
            running.set(1)
            try:
                s.conn.commit()  # no read transaction of ours may block a model another daemon refreshes
                prepared = s.prepare([name], refresh=self._refresher(leases, renewer, slot_ms + offset_ms))
                result = run_sync(s, prepared[name], cancel=cancel, on_start=set_run, progress=MetricsProgress(self.metrics, dest))
            except ProjectError as e:
                failed = True
                error = redact("; ".join(str(i) for i in e.issues))
                event(logging.ERROR, "sync cannot run", error=error[:1000])
                self._report(name, dest, None, error, got.failures + 1)
            except Stopping:
                raise
            except Exception as e:  # the warehouse or state store failed mid-run: retried next slot
                failed = True
                error = redact(f"{type(e).__name__}: {e}")
                log.exception("run failed unexpectedly")
                self._report(name, dest, None, error, got.failures + 1)
            else:
                failed = None if result.status == "interrupted" else result.status in FAILED
                not_before = result.retry_after
                self.metrics.run_finished(dest, result)
                failures = got.failures + 1 if failed else got.failures if failed is None else 0
                if result.terminal:
                    self.paused[name] = result.error or result.status
                    event(
                        logging.ERROR,
                        "paused: this failure will not pass by retrying; fix it, then reload the "
                        "configuration (SIGHUP, or edit the file) or restart the daemon",
                        error=(result.error or "")[:1000],
                    )
                self._report(name, dest, result, result.error, failures)
            finally:
                running.set(0)
                renewer.drop(got)
                self._cancel = None
                if not leases.release(
                    got, failed=failed, backoff=self.settings.backoff, max_backoff=self.settings.max_backoff, not_before=not_before
                ):
                    event(logging.WARNING, "the lease was no longer ours at release (it expired and was taken over)")

    def _report(self, name: str, dest: str, result: SyncResult | None, error: str | None, failures: int) -> None:
        self.metrics.failures.labels(name, dest).set(failures)
        if result is not None:
            r = result
            event(
                logging.WARNING if r.status in (*FAILED, "partial") else logging.INFO,
                f"run finished: {r.status}",
                destination=dest,
                status=r.status,
                sent=r.sent,
                acknowledged=r.acknowledged,
                rejected=r.rejected_by_destination + r.plan.counts.rejected,
                seconds=round(r.seconds, 3),
                error=(r.error or None) and r.error[:1000],
            )
        self.alerter.observe(name, dest, result, error=error, failures=failures, paused=name in self.paused)
        self.on_outcome(Outcome(name, result.status if result else "error", result.run_id if result else None, error, failures))

    def _refresher(self, leases: LeaseStore, renewer: Renewer, fresh_since_ms: int) -> Refresh:
        """Around each model's materialisation: its lease, and whether it still needs it."""

        @contextmanager
        def refresh(node_id: str) -> Iterator[bool]:
            name = MODEL_PREFIX + node_id
            while True:
                if leases.refreshed_since(name, fresh_since_ms):
                    yield False  # another daemon refreshed it after this slot came due
                    return
                got = leases.acquire(name)
                if isinstance(got, Lease):
                    break
                if self.stop.wait(0.2):  # another daemon refreshes it now: wait for it
                    raise Stopping()
            renewer.hold(got, None)
            refreshed = False
            try:
                needed = not leases.refreshed_since(name, fresh_since_ms)
                yield needed
                refreshed = needed
                if needed:
                    self.metrics.refreshes.inc()
            finally:
                renewer.drop(got)
                leases.release(got, refreshed=refreshed)

        return refresh
