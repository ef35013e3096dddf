"""One sync's lifecycle: plan → guards → push in batches → commit each acknowledged batch.

The guarantee kept here: a row is recorded as delivered only after the destination
acknowledged it, in the same transaction as the rest of its batch. A crash at any point
leaves unacknowledged rows undelivered, so the next run sends them again.

Pushes are pipelined: while the destination works on batch N (in a sender thread; a
destination may take `pushes_in_flight` batches at once), the next batches are mapped in a
thread, and one state transaction records the outcome of the pushes that returned and
journals the next batch as in flight before it is handed over. A `cancel` event stops the
run between batches (what returned is recorded; the rest is diffed again next run).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from activation.destinations import REGISTRY, destination_class
from activation.destinations.base import ConfigError, Destination, DestinationError, DestinationReport, RowOp, RowResult
from activation.diff.plan import Change, PlanBuilder, PlanCounts, SyncPlan, changes, check_guards
from activation.gc_tuning import fewer_collections
from activation.project.secrets import MissingSecret, redact
from activation.session import PreparedSync, Session
from activation.state.journal import JournalEntry, journal_entry, values_json
from activation.state.store import Delivered, RowError

SyncStatus = Literal["up_to_date", "success", "partial", "failed", "blocked", "interrupted"]
REMOVING_MODES = {"mirror", "audience"}


class Progress(Protocol):
    def start(self, sync: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    def start(self, sync: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...


class SyncResult(BaseModel):
    sync: str
    status: SyncStatus
    plan: SyncPlan
    run_id: str | None = None
    sent: int = Field(0, description="Operations sent to the destination.")
    acknowledged: int = 0
    rejected_by_destination: int = 0
    error: str | None = None
    seconds: float = 0.0
    destination_report: DestinationReport | None = Field(
        None, description="The destination's calls, retries, 429s and platform ids for this run.")

    @property
    def ok(self) -> bool:
        return self.status in ("up_to_date", "success") and self.plan.counts.rejected == 0


def _empty_plan(session: Session, prepared: PreparedSync) -> SyncPlan:
    # End the session connection's transaction: its snapshot may predate state written
    # since (an earlier sync's commits, recovered in-flight rows). Temp tables survive.
    session.conn.commit()
    spec = session.project.syncs[prepared.name]
    stats = session.differ.key_stats(session.conn, prepared.query)
    prepared.stats = stats
    return SyncPlan(
        sync=prepared.name, destination=spec.to, mode=spec.mode, object=spec.object,
        removes_at_destination=spec.mode in REMOVING_MODES,
        counts=PlanCounts(model_rows=stats.rows, delivered=session.state.delivered_count(prepared.name)),
    )


def _finish_plan(session: Session, builder: PlanBuilder) -> SyncPlan:
    plan = builder.finish()
    spec = session.project.syncs[plan.sync]
    if session.dry_run and (pending := session.state.in_flight_count(plan.sync)):
        plan.warnings.append(f"{pending} rows sent by an interrupted run will be re-checked by the next run (resent or removed)")
    if not plan.removes_at_destination and plan.counts.removed:
        plan.warnings.append(
            f"{plan.counts.removed} rows left the model; mode {spec.mode!r} leaves them in the "
            "destination (use mode: mirror to remove them)"
        )
    if (warning := _below_minimum(session, plan)) is not None:
        plan.warnings.append(warning)
    plan.blocked = check_guards(plan, spec.removal_limit, allow_removal=False)
    return plan


def _below_minimum(session: Session, plan: SyncPlan) -> str | None:
    """Ad platforms serve no ads to an audience below their minimum size: say so in the plan."""
    spec = session.project.destinations.get(plan.destination)
    if spec is None or spec.type not in REGISTRY:
        return None
    cls = destination_class(spec.type)
    minimum = cls.min_audience_size
    if not minimum or plan.counts.model_rows >= minimum:
        return None
    platform = getattr(cls, "platform_name", spec.type)
    return (f"{plan.counts.model_rows:,} members, below {platform}'s minimum of {minimum:,} matched people: the audience "
            "will not serve ads until it grows (matching also takes hours, and not every member matches)")


def plan_sync(session: Session, prepared: PreparedSync) -> SyncPlan:
    """The exact plan: every differing row is mapped, so counts and fields are final."""
    builder = PlanBuilder(_empty_plan(session, prepared))
    assert prepared.stats is not None
    for c in changes(session.differ.rows(session.conn, prepared.query, prepared.stats), prepared.mapper, prepared.query.target):
        builder.add(c)
    return _finish_plan(session, builder)


def _estimate(session: Session, prepared: PreparedSync) -> SyncPlan:
    """A run's first look: counts by row hash from one aggregate query, enough for the guards.

    The run maps each row once, while pushing, and replaces this with the exact plan.
    """
    plan = _empty_plan(session, prepared)
    assert prepared.stats is not None
    kinds = session.differ.kind_counts(session.conn, prepared.query, prepared.stats)
    n = plan.counts
    n.added, n.changed, n.removed = kinds.get("added", 0), kinds.get("changed", 0), kinds.get("removed", 0)
    n.rejected = kinds.get("null_key", 0) + kinds.get("duplicate_key", 0)
    n.unchanged = max(n.model_rows - n.added - n.changed - n.rejected, 0)
    return plan


def _op(mode: str, c: Change) -> RowOp | None:
    """The operation a change becomes in `mode`; None when nothing is sent."""
    if c.kind == "added":
        kind = {"update": "update", "insert": "insert"}.get(mode, "upsert")
        return RowOp(kind=kind, key=c.key or "", values=c.values or {})  # type: ignore[arg-type]
    if c.kind == "changed":
        if mode == "insert":
            # insert never touches an existing record, unless it may never have arrived
            return RowOp(kind="insert", key=c.key or "", values=c.values or {}) if c.resend else None
        kind = "update" if mode in ("update", "audience") else "upsert"
        return RowOp(kind=kind, key=c.key or "", values=c.values or {}, previous=c.previous, changed_fields=c.changed_fields, dest_id=c.dest_id)  # type: ignore[arg-type]
    if c.kind == "removed" and mode in REMOVING_MODES:
        return RowOp(kind="remove", key=c.key or "", values=c.previous or {}, previous=c.previous, dest_id=c.dest_id)
    return None


@dataclass
class _Batch:
    """One push's worth of changes, with what the state must learn from it."""

    ops: list[tuple[RowOp, Change]] = field(default_factory=list)
    silent: list[Change] = field(default_factory=list)  # state catches up without a call
    errors: list[RowError] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # key → values_json of each row sent
    journal: JournalEntry | None = None  # `texts` as one in-flight journal entry

    def ready(self) -> _Batch:
        if self.texts:
            self.journal = journal_entry(list(self.texts.items()))
        return self


class SyncRun:
    """Pushes one planned sync and records every outcome."""

    def __init__(self, session: Session, prepared: PreparedSync, plan: SyncPlan, destination: Destination, progress: Progress,
                 cancel: threading.Event | None = None) -> None:
        self.s = session
        self.cancel = cancel
        self.p = prepared
        self.plan = plan
        self.dest = destination
        self.progress = progress
        self.mode = session.project.syncs[prepared.name].mode
        self.result = SyncResult(sync=prepared.name, status="success", plan=plan)
        self.builder = PlanBuilder(plan.model_copy(deep=True, update={"counts": PlanCounts(
            model_rows=plan.counts.model_rows, delivered=plan.counts.delivered)}))
        self._unrecorded = [0, 0]  # sent, failed: not yet in the run record
        self._counted_at = time.monotonic()

    def execute(self, run_id: str, limit: int | None) -> SyncResult:
        r = self.result
        r.run_id = run_id
        batch_size = self.dest.batch_size(self.s.project.syncs[self.p.name].batch_size)
        self.progress.start(self.p.name, min(self.plan.to_send, limit) if limit is not None else self.plan.to_send)
        sender = ThreadPoolExecutor(max_workers=max(1, self.dest.pushes_in_flight), thread_name_prefix=f"push-{self.p.name}")
        try:
            self.dest.open(self.p.target)
            with fewer_collections():
                if self._pipeline(run_id, sender, batch_size, limit):
                    # Between batches: what was pushed is committed; the rest is diffed again next run.
                    r.status = "interrupted"
                    r.error = "stopped before the end (shutdown or lost lease); the next run sends the rest"
        except (DestinationError, ConfigError) as e:
            r.status = "failed"
            r.error = redact(str(e))
        finally:
            sender.shutdown(wait=True, cancel_futures=True)  # no push outlives the run
            r.destination_report = self.dest.report()
            self.dest.close()
            self.progress.finish()
        if r.status not in ("failed", "interrupted"):
            r.plan = _finish_plan(self.s, self.builder)  # exact now that every row was mapped
            r.plan.blocked = None  # it was not: the guards ran on the estimate before sending
            if r.rejected_by_destination or r.plan.counts.rejected:
                r.status = "partial"
        return r

    def _pipeline(self, run_id: str, sender: ThreadPoolExecutor, size: int, limit: int | None) -> bool:
        """Push each batch in the sender thread while the next one is mapped and journaled;
        True when `cancel` stopped it between batches.

        A batch is journaled (in the transaction that records the outcome of earlier pushes)
        before the destination sees it, and its rows are recorded delivered only after its
        push returned: a crash at any instant leaves every row either recorded or journaled.
        """
        cancelled = False
        depth = max(1, self.dest.pushes_in_flight)
        sending: deque[tuple[_Batch, Future[list[RowResult]]]] = deque()  # handed over, in order
        pushed: list[tuple[_Batch, list[RowResult]]] = []  # returned, outcome not yet recorded
        queued: _Batch | None = None  # journaled, not yet handed to the destination
        try:
            with closing(self._ahead(self._batches(size, limit))) as batches:  # the mapping thread ends here
                for batch in batches:
                    if self.cancel is not None and self.cancel.is_set():
                        cancelled = True
                        break
                    self._record(run_id, pushed, journal=batch)
                    pushed, queued = [], batch
                    while len(sending) >= depth:
                        done, future = sending.popleft()
                        pushed.append((done, future.result()))
                    if batch.ops:
                        self.result.sent += len(batch.ops)
                        sending.append((batch, sender.submit(self.dest.push, self.p.target, [op for op, _ in batch.ops])))
                    else:
                        pushed.append((batch, []))
                    queued = None
            while sending:
                done, future = sending.popleft()
                pushed.append((done, future.result()))
        except (DestinationError, ConfigError):
            # What was acknowledged is recorded (pushes still in flight may yet succeed) and a
            # batch that never left is taken off the journal; a failed push's rows stay
            # journaled: the destination may hold them.
            for done, future in sending:
                try:
                    pushed.append((done, future.result()))
                except (DestinationError, ConfigError):
                    pass
            self._record(run_id, pushed, unsent=queued, final=True)
            raise
        self._record(run_id, pushed, final=True)
        return cancelled

    def _ahead(self, batches: Generator[_Batch, None, None]) -> Generator[_Batch, None, None]:
        """`batches` produced in a thread, up to two ahead: the diff and mapping (Python) overlap
        the state writes (mostly in DuckDB/the database, outside the GIL) and the pushes."""
        q: queue.Queue[object] = queue.Queue(maxsize=2)
        stop = threading.Event()
        end = object()

        def put(item: object) -> bool:
            while not stop.is_set():  # the consumer may stop at any time (a failed push)
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    pass
            return False

        def produce() -> None:
            try:
                for b in batches:
                    if not put(b):
                        return
                put(end)
            except BaseException as e:  # handed to the consumer, raised there
                put(e)
            finally:
                batches.close()  # ends the diff query's cursor in the thread that runs it

        worker = threading.Thread(target=produce, name=f"map-{self.p.name}", daemon=True)
        worker.start()
        try:
            while (item := q.get()) is not end:
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            worker.join()

    def _batches(self, size: int, limit: int | None) -> Generator[_Batch, None, None]:
        """Group changes into destination batches; `silent` ones only update state."""
        b = _Batch()
        sent = 0
        assert self.p.stats is not None, "plan before pushing"
        for c in changes(self.s.differ.rows(self.s.conn, self.p.query, self.p.stats), self.p.mapper, self.p.query.target):
            self.builder.add(c)
            if c.kind == "rejected":
                b.errors.append(RowError(c.key, "plan", c.reason or "rejected"))
            elif (op := _op(self.mode, c)) is not None:
                if limit is not None and sent >= limit:
                    continue
                b.ops.append((op, c))
                # Journaled, removes too: the vendor may apply one we never hear back about, and
                # if the row is back in the model next run it must be sent again. Serialised
                # once: journal and delivered share it.
                b.texts[op.key] = values_json(op.values)
                sent += 1
            elif c.kind in ("noop", "removed", "changed"):
                b.silent.append(c)
            if len(b.ops) >= size or len(b.silent) + len(b.errors) >= 10 * size:
                yield b.ready()
                b = _Batch()
        if b.ops or b.silent or b.errors:
            yield b.ready()

    def _record(self, run_id: str, pushed: list[tuple[_Batch, list[RowResult]]], journal: _Batch | None = None,
                unsent: _Batch | None = None, final: bool = False) -> None:
        """One transaction: the outcome of `pushed` batches, and the journal of `journal`
        (`unsent`: a journaled batch that was never handed over, taken off the journal)."""
        r = self.result
        delivered: list[Delivered] = []
        removed: list[str] = []
        errors: list[RowError] = []
        settled = [i for b in [unsent, *(b for b, _ in pushed)] if b is not None and b.journal is not None for i in b.journal.ids]
        failed = acknowledged = 0
        for batch, results in pushed:
            by_key = {res.key: res for res in results}
            errors += batch.errors
            for op, c in batch.ops:
                res = by_key.get(op.key)
                if res is None or not res.ok:
                    failed += 1
                    reason = res.error if res is not None and res.error else "the destination did not acknowledge this row"
                    errors.append(RowError(op.key, "destination", redact(reason)))
                elif op.kind == "remove":
                    removed.append(op.key)
                else:
                    delivered.append(Delivered(op.key, c.row_hash or "", op.values, res.dest_id or c.dest_id,
                                               batch.texts[op.key], c.kind == "added"))
            acknowledged += len(batch.ops)
            for c in batch.silent:
                if c.kind == "removed":
                    removed.append(c.key or "")
                else:
                    delivered.append(Delivered(c.key or "", c.row_hash or "", c.values or {}, c.dest_id))
        acknowledged -= failed
        r.acknowledged += acknowledged
        r.rejected_by_destination += failed
        # The run record's counters follow at most once a second (and at the end): one
        # statement less per push.
        self._unrecorded[0] += acknowledged
        self._unrecorded[1] += failed
        counts = None
        if any(self._unrecorded) and (final or time.monotonic() - self._counted_at >= 1.0):
            counts = {"sent": self._unrecorded[0], "failed": self._unrecorded[1]}
            self._unrecorded, self._counted_at = [0, 0], time.monotonic()
        entry = journal.journal if journal is not None else None
        if delivered or removed or errors or settled or entry or counts:
            self.s.state.commit_batch(self.p.name, run_id, delivered, removed, errors, counts=counts,
                                      journal=entry, settled=settled)
        self.progress.advance(acknowledged + failed)


def run_sync(
    session: Session, prepared: PreparedSync, *, allow_removal: bool = False, limit: int | None = None,
    progress: Progress | None = None, cancel: threading.Event | None = None,
    on_start: Callable[[str], None] | None = None,
) -> SyncResult:
    """Run one prepared sync. `cancel`, once set, ends the run after the batch in progress
    (status interrupted); `on_start` is called with the run id once the run is recorded."""
    started = time.monotonic()
    spec = session.project.syncs[prepared.name]
    recovered = session.state.recover_in_flight(prepared.name, prepared.target.match_fields)
    plan = _estimate(session, prepared)
    if recovered:
        plan.warnings.append(f"{recovered} rows sent by an interrupted run were re-checked (resent or removed)")
    plan.blocked = check_guards(plan, spec.removal_limit, allow_removal)
    state = session.state
    run_id = state.start_run(prepared.name, spec.to)
    if on_start is not None:
        on_start(run_id)
    include = {"added", "changed", "removed", "unchanged", "rejected"}
    counts = plan.counts.model_dump(include=include)
    if plan.blocked:
        state.finish_run(run_id, "failed", counts, plan.blocked)
        return SyncResult(sync=prepared.name, status="blocked", plan=plan, run_id=run_id, error=plan.blocked,
                          seconds=time.monotonic() - started)
    try:
        destination = session.destination(spec.to, prepared.name)
        result = SyncRun(session, prepared, plan, destination, progress or NoProgress(), cancel).execute(run_id, limit)
    except MissingSecret as e:
        result = SyncResult(sync=prepared.name, status="failed", plan=plan, run_id=run_id, error=f"destination {spec.to}: {e}")
    except BaseException as e:  # record the failure, then let it propagate (Ctrl-C, bugs)
        state.finish_run(run_id, "aborted", counts, redact(f"{type(e).__name__}: {e}"))
        raise
    if result.status == "success" and result.plan.up_to_date and not result.sent:
        result.status = "up_to_date"
    counts = result.plan.counts.model_dump(include=include)
    report = result.destination_report
    details = report.model_dump() if report is not None and (report.requests or report.details) else None
    state.finish_run(run_id, "success" if result.status == "up_to_date" else result.status, counts, result.error, details)
    result.seconds = time.monotonic() - started
    return result
