"""The `activation` command line.

Exit codes CI can trust: 0 ok · 1 a sync failed, was blocked, or rows were rejected ·
2 the project is invalid (nothing was sent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from activation.output import RichProgress, plans_table, print_plan_details, print_result, status_table
from activation.project.loader import LoadedProject, ProjectError, load_project
from activation.project.secrets import redact
from activation.project.spec import json_schema
from activation.settings import settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Sync warehouse traits and audiences to the tools your teams use.")
def _console(stderr: bool = False) -> Console:
    # Piped output (CI logs, `make demo | tee`) gets 120 columns instead of rich's 80.
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=120)


out = _console()
err = _console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

ProjectOpt = Annotated[Optional[Path], typer.Option("--project", "-p", help="syncs.yaml or its directory [env: ACTIVATION_PROJECT]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
SelectOpt = Annotated[Optional[list[str]], typer.Option("--select", "-s", help="Sync name, tag:NAME or destination:NAME (repeatable).")]
SyncsArg = Annotated[Optional[list[str]], typer.Argument(help="Syncs to run (default: all).", show_default=False)]


def _load(project: Path | None) -> LoadedProject:
    return load_project(project or settings().project)


def _config_error(e: ProjectError, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": False, "errors": [redact(str(i)) for i in e.issues]}, indent=2))
    else:
        err.print(f"[bold red]error:[/] the project is invalid ({len(e.issues)} problem{'s' * (len(e.issues) != 1)}); nothing was sent")
        for issue in e.issues:
            err.print(f"  {redact(str(issue))}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_CONFIG)


def _dump(data: Any) -> None:
    print(redact(json.dumps(data, indent=2, default=str)))


@app.command()
def validate(
    project: ProjectOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Do not connect to the warehouse.")] = False,
    remote: Annotated[bool, typer.Option("--remote", help="Also ask each destination's API: credentials, objects, fields and their types.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check syncs.yaml: keys, references, templates, and (unless --offline) every model and
    mapping against the warehouse's real columns. Writes nothing, sends nothing."""
    from activation.session import Session

    try:
        loaded = _load(project)
        if offline:
            from activation.models.compiler import compile_project

            compile_project(loaded, lambda n: n, lambda n: f'"{n}"', loaded.project.warehouse.type)
        else:
            with Session(loaded, dry_run=True) as s:
                prepared = s.prepare(list(loaded.project.syncs), how="view", check_env=True, every_model=True)
                if remote:
                    s.check_remote(prepared)
    except ProjectError as e:
        _config_error(e, as_json)
    p = loaded.project
    summary = {"ok": True, "entities": len(p.entities), "traits": len(p.traits), "audiences": len(p.audiences),
               "destinations": len(p.destinations), "syncs": len(p.syncs)}
    if as_json:
        _dump(summary)
    else:
        out.print(f"[green]✓[/] {loaded.file.name} is valid: " + ", ".join(f"{v} {k}" for k, v in summary.items() if k != "ok"))


@app.command("compile")
def compile_(project: ProjectOpt = None) -> None:
    """Print the SQL each trait, audience and sync model compiles to."""
    from activation.models.compiler import compile_project
    from activation.warehouse.base import open_warehouse

    try:
        loaded = _load(project)
        wh = open_warehouse(loaded.project.warehouse, loaded.root, read_only=False) if loaded.project.warehouse.type != "duckdb" else None
        quote = wh.quote if wh else (lambda n: f'"{n}"')
        schema = loaded.project.warehouse.schema_
        compiled = compile_project(loaded, lambda n: f'"{schema}"."{n}"', quote, loaded.project.warehouse.type)
    except ProjectError as e:
        _config_error(e, False)
    for node_id in compiled.order:
        node = compiled.nodes[node_id]
        out.print(f"-- {node.origin} → \"{schema}\".\"{node_id}\"", style="bold", markup=False, highlight=False)
        print(node.sql.strip() + ";\n")
    for name, model in compiled.syncs.items():
        out.print(f"-- sync {name}: model (key: {', '.join(model.key)})", style="bold", markup=False, highlight=False)
        print(model.sql.strip() + ";\n")


def _execute(project: Path | None, syncs: list[str] | None, select: list[str] | None, *, dry_run: bool,
             allow_removal: bool, limit: int | None, as_json: bool, sandbox: bool = False) -> None:
    from contextlib import ExitStack

    from activation.runner import SyncResult, plan_sync, run_sync
    from activation.session import Session

    results: list[SyncResult] = []
    try:
        loaded = _load(project)
        stack = ExitStack()
        box = None
        if sandbox:
            from activation.sandbox import sandbox as make_sandbox

            box = stack.enter_context(make_sandbox(loaded))
            loaded = box.loaded
            if not as_json:
                err.print("[bold]sandbox:[/] every destination is a local emulator; the warehouse and the state are not written")
        with stack, Session(loaded, dry_run=dry_run or sandbox, sandbox_state=box.state_url if box else None) as s:
            names = s.select(syncs, select)
            prepared = s.prepare(names)  # every model and mapping checked before anything is sent
            if box is not None:
                box.add_properties(s, prepared)  # typed from the prepared models
            if not dry_run:
                s.state.migrate()  # only once the project is known to be valid
            if dry_run:
                plans = [plan_sync(s, prepared[n]) for n in names]
                _report_plans(plans, as_json)
                failed = any(p.blocked or p.counts.rejected for p in plans)
                raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
            progress = RichProgress(err) if not as_json else None
            for n in names:
                r = run_sync(s, prepared[n], allow_removal=allow_removal, limit=limit, progress=progress)
                results.append(r)
                if not as_json:
                    if r.status != "up_to_date":
                        print_plan_details(out, r.plan, samples=False)
                    print_result(out, r)
            if box is not None and not as_json:
                for line in box.summary():
                    out.print(f"[dim]sandbox[/] {line}", highlight=False)
    except ProjectError as e:
        _config_error(e, as_json)
    if as_json:
        _dump({"ok": all(r.ok for r in results), "syncs": [r.model_dump(mode="json") for r in results]})
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


def _report_plans(plans: list[Any], as_json: bool) -> None:
    if as_json:
        _dump({"ok": not any(p.blocked or p.counts.rejected for p in plans), "dry_run": True,
               "plans": [p.model_dump(mode="json") for p in plans]})
        return
    out.print(plans_table(plans))
    for p in plans:
        print_plan_details(out, p)
    out.print("[dim]Dry run: nothing was sent and no state was written.[/]")


SandboxOpt = Annotated[bool, typer.Option("--sandbox", help="Point every destination at a local emulator; write no state.")]


@app.command()
def plan(
    syncs: SyncsArg = None, select: SelectOpt = None, project: ProjectOpt = None, as_json: JsonOpt = False,
    sandbox: SandboxOpt = False,
) -> None:
    """Show what a run would change, per sync and per field. Sends nothing, writes nothing."""
    _execute(project, syncs, select, dry_run=True, allow_removal=False, limit=None, as_json=as_json, sandbox=sandbox)


@app.command()
def run(
    syncs: SyncsArg = None,
    select: SelectOpt = None,
    project: ProjectOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Same as `plan`.")] = False,
    allow_removal: Annotated[bool, typer.Option("--allow-removal", help="Accept removals above max_removal, this run only.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Send at most N operations per sync (a cautious first send).")] = None,
    as_json: JsonOpt = False,
    sandbox: SandboxOpt = False,
) -> None:
    """Compute traits and audiences, diff each sync and push only the changes."""
    _execute(project, syncs, select, dry_run=dry_run, allow_removal=allow_removal, limit=limit, as_json=as_json, sandbox=sandbox)


@app.command()
def status(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """The last run of every sync, and how many rows each has delivered."""
    from activation.session import Session

    try:
        loaded = _load(project)
        with Session(loaded, dry_run=True) as s:
            last = s.state.last_runs()
            rows = []
            for name, spec in loaded.project.syncs.items():
                run_ = last.get(name, {})
                rows.append({
                    "sync": name, "destination": spec.to, "status": run_.get("status", "never run"),
                    "last_run": run_.get("started_at").isoformat(timespec="seconds") if run_.get("started_at") else None,
                    "delivered_rows": s.state.delivered_count(name), "sent": run_.get("sent"), "failed": run_.get("failed"),
                    "rejected": run_.get("rejected"), "error": run_.get("error"), "run_id": run_.get("run_id"),
                    "rejected_rows": s.state.row_errors(run_["run_id"], limit=5) if run_ else [],
                })
    except ProjectError as e:
        _config_error(e, as_json)
    bad = any(r["status"] in ("failed", "partial", "aborted") for r in rows)
    if as_json:
        _dump({"ok": not bad, "syncs": rows})
        raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)
    out.print(status_table(rows))
    for r in rows:
        if r["error"]:
            out.print(f"  ✗ {r['sync']}: {r['error']}", markup=False, highlight=False)
        for e in r["rejected_rows"]:
            out.print(f"  ✗ {r['sync']} {e['row_key']}: {e['reason']}", markup=False, highlight=False)
    raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)


@app.command()
def history(
    sync: Annotated[str, typer.Argument(help="The sync.")],
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """The last runs of SYNC with their counts, and the rows each rejected with the reason."""
    from activation.session import Session

    try:
        loaded = _load(project)
        if sync not in loaded.project.syncs:
            raise ProjectError([loaded.issue(f"no sync named {sync!r}", "syncs")])
        with Session(loaded, dry_run=True) as s:
            runs = s.state.runs(sync, limit)
            for r in runs:
                r["rejected_rows"] = s.state.row_errors(r["run_id"])
    except ProjectError as e:
        _config_error(e, as_json)
    if as_json:
        _dump({"sync": sync, "runs": runs})
        return
    if not runs:
        out.print(f"{sync} has never run.")
    for r in runs:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.1f}s" if r["finished_at"] else "-"
        out.print(f"[bold]{r['started_at']:%Y-%m-%d %H:%M:%S}[/] {r['run_id']} [{r['status']}] {took}: "
                  f"+{r['added']} ~{r['changed']} -{r['removed']} ={r['unchanged']} rejected {r['rejected']}, "
                  f"sent {r['sent']}, failed {r['failed']}")
        if r["error"]:
            out.print(f"    error: {r['error']}", markup=False)
        if d := r.get("details"):
            ids = "".join(f", {k} {v}" for k, v in d.get("details", {}).items())
            out.print(f"    destination: {d['requests']} requests, {d['retries']} retries, {d['throttled']} throttled{ids}",
                      markup=False, highlight=False)
        for e in r["rejected_rows"]:
            out.print(f"    ✗ {e['row_key']} ({e['stage']}): {e['reason']}", markup=False, highlight=False)


@app.command()
def schema() -> None:
    """Print the JSON schema of syncs.yaml (for editor autocompletion)."""
    print(json.dumps(json_schema(), indent=2))


@app.command()
def reset(
    sync: Annotated[str, typer.Argument(help="The sync to forget.")],
    project: ProjectOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget what SYNC delivered: its next run sends every row again."""
    from activation.session import Session

    try:
        loaded = _load(project)
        if sync not in loaded.project.syncs:
            raise ProjectError([loaded.issue(f"no sync named {sync!r}", "syncs")])
        if not yes and not typer.confirm(f"Forget every row {sync} delivered? Its next run resends all of them."):
            raise typer.Exit(EXIT_FAILED)
        with Session(loaded, dry_run=False) as s:
            s.state.migrate()
            n = s.state.reset(sync)
    except ProjectError as e:
        _config_error(e, False)
    out.print(f"{sync}: forgot {n} delivered rows.")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    sample_data: Annotated[bool, typer.Option("--sample-data/--no-sample-data", help="Create a small DuckDB warehouse to try it on.")] = True,
) -> None:
    """Create a new project: syncs.yaml, an example trait, score and audience, a file destination."""
    from activation.scaffold import scaffold

    created = scaffold(directory, sample_data=sample_data)
    for f in created:
        out.print(f"created {f}")
    if not created:
        out.print("nothing created: syncs.yaml already exists")


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Project directory of the demo.")] = Path("."),
) -> None:
    """Generate the demo warehouse, plan, run, change rows, and show the second plan."""
    from activation.demo import run_demo

    raise typer.Exit(run_demo(directory, out))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted: acknowledged batches are kept; the rest is sent next run")
        sys.exit(130)
    except Exception as e:  # a bug or an environment problem: say what, not a 200-line trace
        if "--debug" in sys.argv or settings_debug():
            raise
        err.print(f"[bold red]error:[/] {redact(f'{type(e).__name__}: {e}')}", highlight=False)
        err.print("[dim](set ACTIVATION_DEBUG=1 for the full traceback)[/]")
        sys.exit(EXIT_FAILED)


def settings_debug() -> bool:
    import os

    return os.environ.get("ACTIVATION_DEBUG", "") not in ("", "0")


if __name__ == "__main__":
    main()
