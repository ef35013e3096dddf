"""`activation run` under each sync's lease, as a daemon takes it: a manual run never
overlaps a daemon's run of the same sync (or another manual run); a sync held elsewhere is
reported blocked, and a run whose lease another process took over stops between batches."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from activation.diff.plan import SyncPlan
from activation.runner import SyncResult, run_sync
from activation.session import Session
from activation.state.leases import LeaseStore, Refusal, Renewer

RUN_LEASE_TTL = 60.0


@contextmanager
def leased_runs(session: Session, *, enabled: bool) -> Iterator[Callable[..., Any]]:
    """`run_sync` for this session, under each sync's lease (as a daemon takes it), so a
    `run` never overlaps a daemon's run of the same sync; a sync held elsewhere is blocked."""
    if not enabled:  # --sandbox: a throwaway state store nobody else uses
        yield lambda prepared, **options: run_sync(session, prepared, **options)
        return
    leases = LeaseStore(
        session.state, f"{socket.gethostname()}/{os.getpid()} (activation run)", RUN_LEASE_TTL, take_over_ended=True
    )  # a `run` killed a moment ago must not block this one

    def run_one(prepared: Any, **options: Any) -> SyncResult:
        got = leases.acquire(prepared.name, respect_backoff=False)
        if isinstance(got, Refusal):
            spec = session.project.syncs[prepared.name]
            plan = SyncPlan(sync=prepared.name, destination=spec.to, mode=spec.mode, object=spec.object)
            return SyncResult(sync=prepared.name, status="blocked", plan=plan, error=f"not run now: {got}")
        lost = threading.Event()  # set by the renewer if another process took the lease over
        renewer.hold(got, lost)
        try:
            return run_sync(session, prepared, cancel=lost, **options)
        finally:
            renewer.drop(got)
            leases.release(got)

    with Renewer(leases, RUN_LEASE_TTL) as renewer:
        yield run_one
