"""One sync's lifecycle: plan → guards → deliver (write, then release) → record the run.

`plan_sync` is the dry run: every differing row is mapped, so counts and fields are final,
and the identities the run would release are worked out without writing anything.
`run_sync` recovers what an interrupted run left in flight, checks the guards on a cheap
estimate, then delivers (see `delivery`) and records the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from activation.delivery import REMOVING_MODES, NoProgress, Progress, SyncResult, SyncRun, SyncStatus
from activation.destinations import REGISTRY, destination_class
from activation.diff.plan import DUPLICATE, PlanBuilder, PlanCounts, SyncPlan, changes, check_guards
from activation.identity import ReleasePlan, mapped_identities
from activation.project.secrets import MissingSecret, redact
from activation.session import PreparedSync, Session
from activation.state import identities as ids
from activation.state.budget import daily_quota
from activation.state.journal import CorruptJournal
from activation.state.store import utcnow

__all__ = ["REMOVING_MODES", "NoProgress", "Progress", "SyncResult", "SyncStatus", "plan_sync", "run_sync"]


def _empty_plan(session: Session, prepared: PreparedSync) -> SyncPlan:
    # End the session connection's transaction: its snapshot may predate state written
    # since (an earlier sync's commits, recovered in-flight rows). Temp tables survive.
    session.conn.commit()
    spec = session.project.syncs[prepared.name]
    q = prepared.query
    mapped = None
    if q.shared is not None and q.shared.sql is None and q.shared.rule != "merge":
        mapped = mapped_identities(_model_rows(session, prepared), prepared.mapper.map, prepared.identities)
    stats = session.differ.key_stats(session.conn, q, mapped)
    prepared.stats = stats
    return SyncPlan(
        sync=prepared.name,
        destination=spec.to,
        mode=spec.mode,
        object=spec.object,
        removes_at_destination=spec.mode in REMOVING_MODES,
        counts=PlanCounts(model_rows=stats.rows, delivered=session.state.delivered_count(prepared.name)),
    )


def _model_rows(session: Session, prepared: PreparedSync) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, the columns the mapping reads) of every model row."""
    wh, q = session.warehouse, prepared.query
    cols = "".join(f", src.{wh.quote(c)}" for c in q.columns)
    for chunk in wh.stream(session.conn, f"SELECT {wh.key_expr(q.key, 'src')} AS __k{cols} FROM ({q.model_sql}) AS src"):
        for r in chunk:
            if r[0] is not None:
                yield r[0], dict(zip(q.columns, r[1:], strict=False))


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
    if duplicated := plan.rejected_reasons.get(DUPLICATE):
        model = f"sync model of {plan.sync}" if spec.sql else f"{spec.from_!r}"
        plan.warnings.append(
            f"{duplicated} keys appear in several rows of {model}: `activation validate` names the trait, audience, "
            "entity or model whose SQL repeats them, with examples"
        )
    plan.blocked = check_guards(plan, spec.removal_limit, allow_removal=False)
    return plan


#: A daily quota the vendor told more than a day ago says nothing of today.
DAY_MS = 86_400_000


def _daily_quota(session: Session, plan: SyncPlan, prepared: PreparedSync) -> str | None:
    """Whether the run fits in what remains of the account's daily quota, as the vendor last
    said it (the day's first run learns it; nothing is said before)."""
    c = plan.counts
    removals = c.released if plan.removes_at_destination else 0
    dest = prepared.destination
    calls = dest.estimated_calls(prepared.target, c.added + c.changed, removals) if c.added + c.changed + removals else None
    account = dest.budget_account() if calls else None
    quota = daily_quota(session.state, account) if account else None
    if quota is None or calls is None or time.time() * 1000 - quota.seen_ms > DAY_MS:
        return None
    seen = time.strftime("%H:%M UTC", time.gmtime(quota.seen_ms / 1000))
    said = f"this run needs about {calls:,} calls; {quota.remaining:,} of the account's {quota.limit:,} a day remained at {seen}"
    if calls <= quota.remaining:
        return None if calls < quota.remaining / 10 else said
    return (
        f"{said}: it would stop when the daily quota runs out (nothing is lost: the rest goes after the reset, "
        "the daemon tries again hourly)"
    )


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
    return (
        f"{plan.counts.model_rows:,} members, below {platform}'s minimum of {minimum:,} matched people: the audience "
        "will not serve ads until it grows (matching also takes hours, and not every member matches)"
    )


def plan_sync(session: Session, prepared: PreparedSync) -> SyncPlan:
    """The exact plan: every differing row is mapped, so counts and fields are final; in
    mirror and audience modes, the identities the run would remove at the destination too."""
    plan = _empty_plan(session, prepared)
    builder = PlanBuilder(plan)
    state, name = session.state, prepared.name
    releases = None
    if plan.removes_at_destination and (plan.counts.delivered or ids.pending_releases(state, name)):
        releases = ReleasePlan(state, name, prepared.identities)
    identify = prepared.identities.identify
    assert prepared.stats is not None
    for c in changes(session.differ.rows(session.conn, prepared.query, prepared.stats), prepared.mapper, prepared.query.target):
        builder.add(c)
        if releases is None:
            continue
        if c.kind == "removed":
            releases.leaves(c.key or "", c.previous or {})
        elif c.kind in ("added", "changed"):
            releases.changes(c.key or "", c.previous if c.kind == "changed" else None, identify(c.key or "", c.values or {}))
    plan = _finish_plan(session, builder)
    plan.counts.released = releases.count() if releases is not None else 0
    if (forecast := _daily_quota(session, plan, prepared)) is not None:
        plan.warnings.append(forecast)
    return plan


def _estimate(session: Session, prepared: PreparedSync) -> SyncPlan:
    """A run's first look: counts by row hash from one aggregate query, enough for the guards.

    The run maps each row once, while pushing, and replaces this with the exact plan.
    """
    plan = _empty_plan(session, prepared)
    assert prepared.stats is not None
    kinds = session.differ.kind_counts(session.conn, prepared.query, prepared.stats)
    n = plan.counts
    n.added, n.changed, n.removed = kinds.get("added", 0), kinds.get("changed", 0), kinds.get("removed", 0)
    n.rejected = kinds.get("null_key", 0) + kinds.get("duplicate_key", 0) + kinds.get("shared_identity", 0)
    n.unchanged = max(n.model_rows - n.added - n.changed - n.rejected, 0)
    return plan


def run_sync(
    session: Session,
    prepared: PreparedSync,
    *,
    allow_removal: bool = False,
    limit: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_start: Callable[[str], None] | None = None,
) -> SyncResult:
    """Run one prepared sync. `cancel`, once set, ends the run after the batch in progress
    (status interrupted); `on_start` is called with the run id once the run is recorded."""
    started = time.monotonic()
    spec = session.project.syncs[prepared.name]
    state = session.state
    try:
        ids.ensure_claims(state, prepared.name, prepared.identities, utcnow())
        recovered = state.recover_in_flight(prepared.name, prepared.identities)
    except CorruptJournal as e:  # the sync cannot know what a dead run sent: stop it, not the others
        run_id = state.start_run(prepared.name, spec.to)
        state.finish_run(run_id, "failed", {}, str(e))
        return SyncResult(
            sync=prepared.name,
            status="failed",
            plan=_empty_plan(session, prepared),
            run_id=run_id,
            error=str(e),
            terminal=True,
            seconds=time.monotonic() - started,
        )
    plan = _estimate(session, prepared)
    if recovered:
        plan.warnings.append(f"{recovered} rows sent by an interrupted run were re-checked (resent, or released by identity)")
    plan.blocked = check_guards(plan, spec.removal_limit, allow_removal)
    run_id = state.start_run(prepared.name, spec.to)
    if on_start is not None:
        on_start(run_id)
    include = {"added", "changed", "removed", "unchanged", "rejected"}
    counts = plan.counts.model_dump(include=include)
    if plan.blocked:
        state.finish_run(run_id, "blocked", counts, plan.blocked)
        return SyncResult(
            sync=prepared.name, status="blocked", plan=plan, run_id=run_id, error=plan.blocked, seconds=time.monotonic() - started
        )
    try:
        run = SyncRun(session, prepared, plan, progress or NoProgress(), cancel)
        result = run.execute(run_id, limit)
    except MissingSecret as e:
        result = SyncResult(
            sync=prepared.name, status="failed", plan=plan, run_id=run_id, error=f"destination {spec.to}: {e}", terminal=True
        )
    except BaseException as e:  # record the failure, then let it propagate (Ctrl-C, bugs)
        state.finish_run(run_id, "aborted", counts, redact(f"{type(e).__name__}: {e}"))
        raise
    if result.status not in ("failed", "interrupted"):
        result.plan = _finish_plan(session, run.builder)  # exact now that every row was mapped
        result.plan.blocked = None  # it was not: the guards ran on the estimate before sending
        result.plan.counts.released = result.released
        if result.rejected_by_destination or result.unconfirmed or result.plan.counts.rejected:
            result.status = "partial"
    if result.status == "success" and result.plan.up_to_date and not result.sent:
        result.status = "up_to_date"
    counts = result.plan.counts.model_dump(include=include)
    report = result.destination_report
    details = report.model_dump() if report is not None and (report.requests or report.details) else None
    state.finish_run(run_id, result.status, counts, result.error, details)  # the words `run` says: one vocabulary
    result.seconds = time.monotonic() - started
    return result
