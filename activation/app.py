"""The application: what each command does, with no parsing and no rendering.

The CLI parses arguments and renders what these return; the demo and the review call them too,
so a command behaves the same whoever calls it. Each function takes a loaded project, opens
what it needs (the warehouse session, the state, the sandbox), returns values, and raises the
error root's exceptions (`ProjectError` for an invalid project, `Unavailable` for a warehouse
or state that cannot be had right now, `ActivationError` for the rest); the caller turns them
into exit codes. The daemon runs syncs through the same runner but keeps its own cycle (leases
renewed while a run lasts, backoff, pauses): see `activation.daemon.cycle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from activation.delivery import Progress
from activation.diff.plan import SyncPlan
from activation.lint import LintReport
from activation.project.loader import LoadedProject, ProjectError, ProjectIssue
from activation.runner import SyncResult, plan_sync
from activation.session import PreparedSync, Session
from activation.unavailable import Unavailable

#: What a sync's last run may have ended as, for `status` to fail. A run is recorded with the
#: status `run` reports (up_to_date · success · partial · failed · blocked · interrupted), or
#: running / aborted (its process ended first); state written before 0.x said success for
#: up_to_date and failed for blocked.
NOT_SUCCEEDED = ("failed", "blocked", "partial", "aborted", "interrupted")


class ProjectSummary(BaseModel):
    """What `validate` found valid."""

    entities: int
    traits: int
    audiences: int
    destinations: int
    syncs: int


def validate(loaded: LoadedProject, *, offline: bool = False, remote: bool = False) -> ProjectSummary:
    """Check the project: keys, references and templates; unless `offline`, every model and
    mapping against the warehouse's real columns; with `remote`, each destination's API too.
    Writes nothing, sends nothing. Raises ProjectError with every finding."""
    from activation.models.compiler import compile_offline
    from activation.session import missing_extras

    try:  # what --offline finds needs no warehouse: said first, whatever the warehouse does
        compile_offline(loaded)
        findings = missing_extras(loaded)
    except ProjectError as e:
        findings = e.issues + missing_extras(loaded)
    if findings and not offline and (problem := warehouse_problem(loaded)) is not None:
        findings.append(ProjectIssue(f"and the warehouse could not be checked: {problem}", loaded.locate("warehouse")))
    if findings:
        raise ProjectError(findings)
    if not offline:
        with Session(loaded, dry_run=True) as s:
            # destination secrets only where a destination is contacted (remote): a CI job with
            # warehouse credentials alone still gets every column check
            prepared = s.prepare(list(loaded.project.syncs), how="view", check_env=remote, every_model=True)
            if remote:
                s.check_remote(prepared)
    p = loaded.project
    return ProjectSummary(
        entities=len(p.entities), traits=len(p.traits), audiences=len(p.audiences), destinations=len(p.destinations), syncs=len(p.syncs)
    )


def warehouse_problem(loaded: LoadedProject) -> str | None:
    """Why the warehouse cannot be opened (read-only), or None when it can."""
    from activation.project.secrets import MissingSecret
    from activation.warehouse.base import WarehouseError
    from activation.warehouse.registry import open_warehouse

    try:
        wh = open_warehouse(loaded.project.warehouse, loaded.root, read_only=True)
        try:
            with wh.session():
                return None
        finally:
            wh.dispose()
    except (WarehouseError, Unavailable, MissingSecret) as e:
        return str(e)


def lint(loaded: LoadedProject, *, offline: bool = False) -> LintReport:
    """Warnings about a valid project; unless `offline`, scheduled syncs' model sizes are read
    (for the schedule-quota check)."""
    from activation.lint import lint_project, schedule_interval

    rows: dict[str, int] | None = None
    if not offline:
        scheduled = [n for n, s in loaded.project.syncs.items() if schedule_interval(s.schedule) is not None]
        with Session(loaded, dry_run=True) as s:
            prepared = s.prepare(scheduled, how="view")
            rows = {n: s.differ.model_rows(s.conn, p.query) for n, p in prepared.items()}  # sizes, not diffs
    return lint_project(loaded, rows)


@dataclass(frozen=True)
class Statement:
    """One compiled model: where it comes from (a line for a comment) and its SQL."""

    origin: str
    sql: str


def compile_sql(loaded: LoadedProject) -> list[Statement]:
    """The SQL each trait, audience and sync model compiles to, in dependency order."""
    from activation.models.compiler import compile_project
    from activation.warehouse.registry import open_warehouse

    spec = loaded.project.warehouse
    # DuckDB quotes like the default; other engines are asked (opening one does not connect)
    wh = open_warehouse(spec, loaded.root, read_only=False) if spec.type != "duckdb" else None
    quote = wh.quote if wh else (lambda n: f'"{n}"')
    relation = (lambda n: wh.relation(n, temp=False)) if wh else (lambda n: f'"{spec.schema_}"."{n}"')
    compiled = compile_project(loaded, relation, quote, spec.type)
    statements = [Statement(f"{compiled.nodes[n].origin} → {relation(n)}", compiled.nodes[n].sql.strip()) for n in compiled.order]
    statements += [
        Statement(f"sync {name}: model (key: {', '.join(model.key)})", model.sql.strip()) for name, model in compiled.syncs.items()
    ]
    return statements


@dataclass
class Workspace:
    """An open project for plans and runs: its session, and the sandbox when asked for."""

    session: Session
    sandbox: Any = None  # activation_emulators.sandbox.Sandbox: typed loosely, the runtime never imports it
    prepared: dict[str, PreparedSync] = field(default_factory=dict)

    def prepare(self, syncs: list[str] | None, select: list[str] | None) -> list[str]:
        """The chosen syncs, every model and mapping checked before anything is sent."""
        names = self.session.select(syncs, select)
        self.prepared = self.session.prepare(names)
        if self.sandbox is not None:
            self.sandbox.add_properties(self.session, self.prepared)  # typed from the prepared models
        return names

    def plan(self, names: list[str]) -> list[SyncPlan]:
        return [plan_sync(self.session, self.prepared[n]) for n in names]

    def run(
        self, names: list[str], *, allow_removal: bool = False, limit: int | None = None, progress: Progress | None = None
    ) -> Iterator[SyncResult]:
        """Run each sync in turn (under its lease, but in the sandbox), yielding each result
        as it ends."""
        from activation.leased import leased_runs

        self.session.state.migrate()  # only once the project is known to be valid
        with leased_runs(self.session, enabled=self.sandbox is None) as run_one:
            for n in names:
                yield run_one(self.prepared[n], allow_removal=allow_removal, limit=limit, progress=progress)

    def sandbox_summary(self) -> list[str]:
        return list(self.sandbox.summary()) if self.sandbox is not None else []


@contextmanager
def workspace(loaded: LoadedProject, *, dry_run: bool, sandbox: bool = False) -> Iterator[Workspace]:
    """The project opened for plans (`dry_run`) or runs. With `sandbox` every destination is a
    local emulator and nothing is written to the warehouse or the state."""
    with ExitStack() as stack:
        box = None
        if sandbox:
            from activation_emulators.sandbox import sandbox as make_sandbox  # lazily: see [tool.importlinter]

            box = stack.enter_context(make_sandbox(loaded))
            loaded = box.loaded
        s = stack.enter_context(Session(loaded, dry_run=dry_run or sandbox, sandbox_state=box.state_url if box else None))
        yield Workspace(s, box)


def statuses(loaded: LoadedProject, syncs: list[str] | None = None, select: list[str] | None = None) -> list[dict[str, Any]]:
    """The last run of each chosen sync, and how many rows it has delivered."""
    from activation.session import select_syncs
    from activation.state.leases import settle_ended_runs

    names = select_syncs(loaded.project, syncs, select)
    rows = []
    with Session(loaded, dry_run=True) as s:
        last = s.state.last_runs()
        settle_ended_runs(s.state, [last[n] for n in names if n in last])  # a killed run is not running
        for name in names:
            run_ = last.get(name, {})
            rows.append(
                {
                    "sync": name,
                    "destination": loaded.project.syncs[name].to,
                    "status": run_.get("status", "never run"),
                    "last_run": run_["started_at"].isoformat(timespec="seconds") if run_.get("started_at") else None,
                    "delivered_rows": s.state.delivered_count(name),
                    "sent": run_.get("sent"),
                    "rejected_by_destination": run_.get("failed"),
                    "rejected": run_.get("rejected"),
                    "error": run_.get("error"),
                    "run_id": run_.get("run_id"),
                    "rejected_rows": s.state.row_errors(run_["run_id"], limit=5) if run_ else [],
                    "rejected_rows_total": s.state.row_error_count(run_["run_id"]) if run_ else 0,
                }
            )
    return rows


def history(loaded: LoadedProject, sync: str, limit: int = 10, rejected: int | None = 50) -> list[dict[str, Any]]:
    """The last `limit` runs of `sync`, each with up to `rejected` of its rejected rows (None: all)."""
    from activation.state.leases import settle_ended_runs

    if sync not in loaded.project.syncs:
        raise ProjectError([loaded.issue(f"no sync named {sync!r}", "syncs")])
    with Session(loaded, dry_run=True) as s:
        runs = s.state.runs(sync, limit)
        settle_ended_runs(s.state, runs[:1])  # only the latest can still be running
        for r in runs:
            # the words of `run --json`: rows the destination refused (the state's `failed` column)
            r["rejected_by_destination"] = r.pop("failed", None)
            r["rejected_rows"] = s.state.row_errors(r["run_id"], rejected)
            r["rejected_rows_total"] = s.state.row_error_count(r["run_id"])  # more than shown: said by the caller
    return runs


def reset(loaded: LoadedProject, sync: str, *, history: bool, confirm: Callable[[str], bool]) -> dict[str, int] | None:
    """Forget what `sync` delivered (and its run records with `history`) once `confirm(what)`
    agrees; None when it did not. Nothing is sent or removed at the destination."""
    with Session(loaded, dry_run=False) as s:
        stored = s.state.stored(sync)
        if sync not in loaded.project.syncs and not any(stored.values()):
            raise ProjectError([loaded.issue(f"no sync named {sync!r}, and nothing is stored for one", "syncs")])
        what = (
            f"{stored.get('delivered', 0)} delivered rows, {stored.get('in_flight', 0)} in flight, "
            f"{stored.get('row_errors', 0)} rejected-row records" + (f", {stored.get('runs', 0)} runs" if history else "")
        )
        if not confirm(what):
            return None
        s.state.migrate()
        return s.state.reset(sync, history=history)
