"""Delivering one planned sync: write the rows that changed, then release what no row holds.

The guarantee kept here: a row is recorded as delivered only after the destination
acknowledged it, in the same transaction as the rest of its batch and the identities it now
claims. A crash at any point leaves unacknowledged rows journaled (with their identities), so
the next run treats them as possibly delivered.

1. **Write.** Rows added or changed are pushed in batches. While the destination works on
   batch N (in a sender thread; a destination may take `pushes_in_flight` batches at once),
   the next batches are mapped in a thread, and one state transaction records the outcome of
   the pushes that returned and journals the next batch before it is handed over. Rows that
   left the model are only forgotten here: their identities become *releases*.
2. **Release.** Every released identity no row claims any more (a row left and no other row
   maps to its record; an identity changed; a crash left one behind) is removed at the
   destination in mirror and audience modes, and forgotten in the others. A release is
   forgotten only once the destination acknowledged its removal.

A `cancel` event stops the run between batches (what returned is recorded; the rest is
diffed again next run).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from activation.destinations.base import ConfigError, Destination, DestinationError, DestinationReport, OpKind, RowOp, RowResult
from activation.diff.plan import Change, PlanBuilder, SyncPlan, changes
from activation.gc_tuning import fewer_collections
from activation.project.secrets import redact, scrub_personal_data
from activation.session import PreparedSync, Session
from activation.state import identities as ids
from activation.state.identities import UNKNOWN_HASH, Release
from activation.state.journal import JournalEntry, journal_entry, values_json
from activation.state.store import Delivered, RowError

SyncStatus = Literal["up_to_date", "success", "partial", "failed", "blocked", "interrupted"]
REMOVING_MODES = {"mirror", "audience"}
UNKNOWN = "the destination's answer for this row was lost or unreadable: it may hold it, so it is sent again next run"


class Progress(Protocol):
    """What a run reports as it goes (the CLI draws a bar; the daemon and tests ignore it)."""

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
    unconfirmed: int = Field(0, description="Rows whose outcome the destination left unknown: possibly delivered, sent again next run.")
    released: int = Field(
        0, description="Identities no row maps to any more, removed at the destination (mirror, audience) or forgotten (other modes)."
    )
    error: str | None = None
    terminal: bool = Field(
        False,
        description="The run failed for a reason retrying cannot fix (credentials, permissions, "
        "an unknown object): the daemon pauses the sync until its configuration "
        "is reloaded.",
    )
    retry_after: float | None = Field(
        None,
        description="Seconds before trying again can help, as the destination "
        "said (a daily quota until its reset): the daemon waits at least "
        "this long before the sync's next run.",
    )
    seconds: float = 0.0
    destination_report: DestinationReport | None = Field(
        None, description="The destination's calls, retries, 429s and platform ids for this run."
    )

    @property
    def ok(self) -> bool:
        return self.status in ("up_to_date", "success") and self.plan.counts.rejected == 0


@dataclass(slots=True)
class _Sent:
    """A row handed to the destination, with the identities it is sent under and, when they
    differ from those it was delivered under, the ones it may leave behind."""

    op: RowOp
    change: Change
    identities: tuple[str, ...]
    before: tuple[str, ...] | None = None


@dataclass
class _Batch:
    """One push's worth of changes, with what the state must learn from it."""

    sent: list[_Sent] = field(default_factory=list)
    silent: list[Change] = field(default_factory=list)  # state catches up without a call
    left: list[Change] = field(default_factory=list)  # rows that left the model: state only
    errors: list[RowError] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # key → values_json of each row sent
    journal: JournalEntry | None = None  # the rows sent, with their identities, as one journal entry

    def ready(self) -> _Batch:
        if self.texts:
            self.journal = journal_entry([(s.op.key, self.texts[s.op.key], s.identities) for s in self.sent])
        return self


class SyncRun:
    """Pushes one planned sync and records every outcome."""

    def __init__(
        self, session: Session, prepared: PreparedSync, plan: SyncPlan, progress: Progress, cancel: threading.Event | None = None
    ) -> None:
        self.s = session
        self.cancel = cancel
        self.p = prepared
        self.rules = prepared.identities
        self.plan = plan
        self.dest: Destination = prepared.destination
        self.progress = progress
        self.mode = session.project.syncs[prepared.name].mode
        self.removing = self.mode in REMOVING_MODES
        self.result = SyncResult(sync=prepared.name, status="success", plan=plan)
        self.builder = PlanBuilder(
            plan.model_copy(
                deep=True,
                update={
                    "counts": plan.counts.model_copy(
                        update={"added": 0, "changed": 0, "removed": 0, "rejected": 0, "unchanged": 0, "released": 0}
                    )
                },
            )
        )
        self._unrecorded = [0, 0]  # sent, failed: not yet in the run record
        self._counted_at = time.monotonic()
        self._sent = 0  # rows handed over, for --limit
        # identities claimed by rows of this run's batches whose outcome is not recorded yet:
        # the state's claims do not show them, and a rename must not take a record one of
        # them writes to (see _renames); bounded by the batches built ahead of their commit
        self._claiming: Counter[str] = Counter()
        self._claiming_lock = threading.Lock()

    def execute(self, run_id: str, limit: int | None) -> SyncResult:
        r = self.result
        r.run_id = run_id
        batch_size = self.dest.batch_size(self.s.project.syncs[self.p.name].batch_size)
        self.progress.start(self.p.name, min(self.plan.to_send, limit) if limit is not None else self.plan.to_send)
        sender = ThreadPoolExecutor(max_workers=max(1, self.dest.pushes_in_flight), thread_name_prefix=f"push-{self.p.name}")
        try:
            self.dest.open(self.p.target)
            with fewer_collections():
                stopped = self._write(run_id, sender, batch_size, limit)
                if not stopped and (limit is None or self._sent < limit):
                    stopped = self._release(run_id, sender, batch_size, limit)
            if stopped:
                # Between batches: what was pushed is committed; the rest is diffed again next run.
                r.status = "interrupted"
                r.error = "stopped before the end (shutdown or lost lease); the next run sends the rest"
        except (DestinationError, ConfigError) as e:
            r.status = "failed"
            r.error = redact(str(e))
            r.terminal = isinstance(e, ConfigError) or not e.retryable
            r.retry_after = getattr(e, "retry_after", None)
        finally:
            sender.shutdown(wait=True, cancel_futures=True)  # no push outlives the run
            r.destination_report = self.dest.report()
            self.dest.close()
            self.progress.finish()
        return r

    # -- 1. write ------------------------------------------------------------------------

    def _write(self, run_id: str, sender: ThreadPoolExecutor, size: int, limit: int | None) -> bool:
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
                    if batch.sent:
                        self.result.sent += len(batch.sent)
                        sending.append((batch, sender.submit(self.dest.push, self.p.target, [s.op for s in batch.sent])))
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
                with suppress(DestinationError, ConfigError):
                    pushed.append((done, future.result()))
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
        """Group changes into destination batches; `silent` and `left` ones only update state."""
        b = _Batch()
        assert self.p.stats is not None, "plan before pushing"
        # Rows writing one record (identity_conflicts: merge) go in separate batches: vendors
        # refuse one record twice in a request (Salesforce rejects both rows, DUPLICATE_VALUE,
        # every run; Mailchimp one). Ad members share identifiers freely: not split.
        one_record_once = self.dest.identity_model == "record"
        in_batch: set[str] = set()
        rows = self.s.differ.rows(self.s.conn, self.p.query, self.p.stats, while_writing=True)
        for c in changes(rows, self.p.mapper, self.p.query.target):
            self.builder.add(c)
            if c.kind == "rejected":
                b.errors.append(RowError(c.key, "plan", c.reason or "rejected"))
            elif c.kind == "removed":
                b.left.append(c)
            elif c.kind == "noop":
                b.silent.append(c)
            elif (sent := self._op(c)) is None:
                b.silent.append(c)  # insert mode: an existing record is never touched
            elif limit is None or self._sent < limit:
                if one_record_once and not in_batch.isdisjoint(sent.identities):
                    yield self._renames(b).ready()
                    b, in_batch = _Batch(), set()
                if one_record_once:
                    in_batch.update(sent.identities)
                b.sent.append(sent)
                # Journaled, with its identities: the vendor may apply it and we never hear
                # back. Serialised once: journal and delivered share it.
                b.texts[sent.op.key] = values_json(sent.op.values)
                self._sent += 1
            if len(b.sent) >= size or len(b.silent) + len(b.errors) + len(b.left) >= 10 * size:
                yield self._renames(b).ready()
                b, in_batch = _Batch(), set()
        if b.sent or b.silent or b.errors or b.left:
            yield self._renames(b).ready()

    def _op(self, c: Change) -> _Sent | None:
        """What an added or changed row becomes in this sync's mode; None: nothing is sent."""
        key, values = c.key or "", c.values or {}
        now = self.rules.identify(key, values)
        write = {"update": "update", "insert": "insert"}.get(self.mode, "upsert")
        if c.kind == "added":
            return _Sent(RowOp(write, key, values), c, now)  # type: ignore[arg-type]
        before = self.rules.identify(key, c.previous) if c.previous is not None else now
        if before != now:
            # A new identity: a record that may not exist yet, written whole (the release at the
            # end of the run removes the old one if no other row holds it). _renames may still
            # let the destination rename the old record in place.
            return _Sent(RowOp(write, key, values), c, now, before)  # type: ignore[arg-type]
        if c.resend:
            # Possibly never delivered (an interrupted run, another target): sent whole, as an
            # add in audience mode (the member may never have arrived)
            return _Sent(RowOp(write, key, values, previous=c.previous, changed_fields=list(values), dest_id=c.dest_id), c, now)  # type: ignore[arg-type]
        if self.mode == "insert":
            return None
        kind = "update" if self.mode in ("update", "audience") else "upsert"
        return _Sent(RowOp(kind, key, values, previous=c.previous, changed_fields=c.changed_fields, dest_id=c.dest_id), c, now)  # type: ignore[arg-type]

    def _renames(self, b: _Batch) -> _Batch:
        """Let the destination rename a record in place where a row's identity changed, it knows
        the record, no other row claims the old identity and nothing is held under the new one
        (a record that keeps its history, instead of a new one and a removal)."""
        if not self.dest.renames_in_place:
            return b
        with self._claiming_lock:  # before the state is read: a batch recorded meanwhile shows there
            self._claiming.update(i for s in b.sent for i in s.identities)
            pending = Counter(self._claiming)
        # a resent row's record id is known only where it follows the row (an earlier rename
        # whose answer was lost: the record holds the old identity or the new one)
        moving = [s for s in b.sent if s.before is not None and s.change.dest_id]
        if not moving:
            return b
        state, sync = self.s.state, self.p.name
        old = ids.claimants(state, sync, [i for s in moving for i in s.before or ()])
        new = ids.claimants(state, sync, [i for s in moving for i in s.identities])
        held = ids.released(state, sync, [i for s in moving for i in s.identities])
        for s in moving:
            # the old identity is claimed by another row (delivered before, or sent in this
            # run: a row taking over this row's email), or the new one is held or claimed
            # run: a row taking over this row's email), or the new one is held (unless by a
            # release of this row's own: it is going back to it) or claimed
            if any(old.get(i, set()) - {s.op.key} or pending[i] for i in s.before or ()) or any(
                i in new or held.get(i, set()) - {s.op.key} or pending[i] > 1 for i in s.identities
            ):
                continue
            c = s.change
            fields = list(s.op.values) if c.resend else c.changed_fields  # possibly never delivered: whole
            s.op.previous, s.op.changed_fields, s.op.dest_id, s.op.rename = c.previous, fields, c.dest_id, True
        return b

    def _record(
        self,
        run_id: str,
        pushed: list[tuple[_Batch, list[RowResult]]],
        journal: _Batch | None = None,
        unsent: _Batch | None = None,
        final: bool = False,
    ) -> None:
        """One transaction: the outcome of `pushed` batches, and the journal of `journal`
        (`unsent`: a journaled batch that was never handed over, taken off the journal)."""
        r = self.result
        delivered: list[Delivered] = []
        removed: list[str] = []
        releases: list[Release] = []
        errors: list[RowError] = []
        settled = [i for b in [unsent, *(b for b, _ in pushed)] if b is not None and b.journal is not None for i in b.journal.ids]
        failed = acknowledged = unconfirmed = 0
        for batch, results in pushed:
            by_key = {res.key: res for res in results}
            errors += batch.errors
            for s in batch.sent:
                op, c = s.op, s.change
                res = by_key.get(op.key)
                if res is not None and not res.ok and not res.unknown:
                    failed += 1
                    errors.append(RowError(op.key, "destination", scrub_personal_data(redact(res.error or "rejected"))))
                    continue
                # acknowledged, or possibly applied (an answer lost or unreadable, or no answer
                # for this row): either way the destination may now hold it under `identities`
                known = res is not None and not res.unknown
                same = s.before is None
                # the record id follows the row when it stayed under its identity, was renamed,
                # or may have been (a rename whose answer was lost: the record holds either)
                follows = same or op.rename and (res is None or res.moved or res.unknown)
                dest_id = (res.dest_id if res is not None else None) or (c.dest_id if follows else None)
                delivered.append(
                    Delivered(
                        op.key,
                        (c.row_hash or "") if known else UNKNOWN_HASH,
                        op.values,
                        dest_id,
                        batch.texts[op.key],
                        c.kind == "added",
                        s.identities,
                    )
                )
                if not known:
                    unconfirmed += 1
                    errors.append(RowError(op.key, "unknown", scrub_personal_data(redact(res.error if res and res.error else UNKNOWN))))
                # (a resent row's rename may have renamed a record other than the one holding the
                # old identity: that identity is released all the same, found by value)
                if s.before is not None and self.removing and not (known and res is not None and res.moved and not c.resend):
                    # the old identity may still be held (or renamed, when unknown: found by value, not id)
                    gone = [i for i in s.before if i not in s.identities]
                    releases += Release.of(self.rules, gone, op.key, None if op.rename else c.dest_id, c.previous or {})
            acknowledged += len(batch.sent)
            for c in batch.left:
                removed.append(c.key or "")
                if self.removing:
                    previous = c.previous or {}
                    releases += Release.of(self.rules, self.rules.identify(c.key or "", previous), c.key, c.dest_id, previous)
            delivered += [Delivered(c.key or "", c.row_hash or "", c.values or {}, c.dest_id) for c in batch.silent]
        acknowledged -= failed + unconfirmed
        r.acknowledged += acknowledged
        r.rejected_by_destination += failed
        r.unconfirmed += unconfirmed
        self._commit(
            run_id,
            acknowledged,
            failed + unconfirmed,
            final,
            delivered=delivered,
            removed=removed,
            errors=errors,
            releases=releases,
            settled=settled,
            journal=journal.journal if journal is not None else None,
        )
        if self.dest.renames_in_place and pushed:
            with self._claiming_lock:  # recorded: the state's claims show them now
                self._claiming.subtract(i for batch, _ in pushed for s in batch.sent for i in s.identities)
                self._claiming = +self._claiming

    def _commit(self, run_id: str, acknowledged: int, failed: int, final: bool, **changes: object) -> None:
        """One state transaction; the run record's counters follow at most once a second (and
        at the end): one statement less per push."""
        self._unrecorded[0] += acknowledged
        self._unrecorded[1] += failed
        counts = None
        if any(self._unrecorded) and (final or time.monotonic() - self._counted_at >= 1.0):
            counts = {"sent": self._unrecorded[0], "failed": self._unrecorded[1]}
            self._unrecorded, self._counted_at = [0, 0], time.monotonic()
        if counts or any(changes.values()):
            self.s.state.commit_batch(self.p.name, run_id, counts=counts, **changes)  # type: ignore[arg-type]
        self.progress.advance(acknowledged + failed)

    # -- 2. release ----------------------------------------------------------------------

    def _rewrite_shared(self, run_id: str, sender: ThreadPoolExecutor, size: int) -> list[str]:
        """A record that rows share (identity_conflicts: merge) holds the values written last;
        when that row left or moved away, the record is written again with the values of a row
        still mapping to it (else it would keep a departed row's values for good: found by the
        soak). Returns the identities whose rewrite failed: kept released, tried next run."""
        if self.dest.identity_model != "record" or self.mode not in ("mirror", "upsert", "update"):
            return []
        shared = ids.shared_left(self.s.state, self.p.name)
        if not shared:
            return []
        kind: OpKind = "update" if self.mode == "update" else "upsert"
        failed: list[str] = []
        for at in range(0, len(shared), size):
            batch = shared[at : at + size]
            ops = [RowOp(kind, x.row_key, x.values, changed_fields=list(x.values), dest_id=x.dest_id) for x in batch]
            self.result.sent += len(ops)
            results = {res.key: res for res in sender.submit(self.dest.push, self.p.target, ops).result()}
            missed = [x.identity for x in batch if not ((res := results.get(x.row_key)) is not None and res.ok and not res.unknown)]
            self._commit(run_id, len(batch) - len(missed), len(missed), False)
            failed += missed
        return failed

    def _release(self, run_id: str, sender: ThreadPoolExecutor, size: int, limit: int | None) -> bool:
        """Remove (mirror, audience) or forget every released identity no row claims; True when
        `cancel` stopped it between batches. Removing what is already gone succeeds; a removal
        that is refused or unanswered stays released, and is tried again next run."""
        state, sync = self.s.state, self.p.name
        ids.drop_claimed_releases(state, sync, keep=self._rewrite_shared(run_id, sender, size))
        with closing(ids.releasable(state, sync, size)) as batches:
            for batch in batches:
                if self.cancel is not None and self.cancel.is_set():
                    return True
                if not self.removing:
                    self._commit(run_id, 0, 0, False, released=[x.identity for x in batch])
                    self.result.released += len(batch)
                    continue
                if limit is not None:
                    batch = batch[: max(limit - self._sent, 0)]
                    if not batch:
                        break
                ops = [RowOp("remove", x.identity, x.values, dest_id=x.dest_id) for x in batch]
                self._sent += len(ops)
                self.result.sent += len(ops)
                results = {res.key: res for res in sender.submit(self.dest.push, self.p.target, ops).result()}
                done, errors, failed = [], [], 0
                for x in batch:
                    res = results.get(x.identity)
                    if res is not None and res.deferred:
                        continue  # still released: tried again next run
                    if res is not None and res.ok and not res.unknown:
                        done.append(x.identity)
                    elif res is None or res.unknown:
                        failed += 1  # it may be gone: removed again (harmlessly) next run
                        errors.append(RowError(x.row_key, "unknown", "the removal's answer was lost: it is tried again next run"))
                    else:
                        failed += 1
                        errors.append(RowError(x.row_key, "destination", scrub_personal_data(redact(res.error or "rejected"))))
                self.result.released += len(done)
                self.result.acknowledged += len(done)
                self.result.rejected_by_destination += failed
                self._commit(run_id, len(done), failed, False, released=done, errors=errors)
        self._commit(run_id, 0, 0, True)
        return False
