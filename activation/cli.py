"""The `activation` command line.

Exit codes CI can trust: 0 ok · 1 a sync failed, was blocked, or rows were rejected (or an
unexpected error) · 2 the project is invalid (nothing was sent) · 3 the warehouse or the state
store is unavailable right now (held by another process, locked, unreachable): retry.
With `--json`, stdout holds exactly one JSON document whatever happens.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from activation.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_UNAVAILABLE, ActivationError
from activation.output import RichProgress, plans_table, print_plan_details, print_result, status_table
from activation.project.loader import LoadedProject, ProjectError, ProjectIssue, load_project
from activation.project.secrets import redact
from activation.project.spec import json_schema
from activation.settings import settings
from activation.unavailable import Unavailable

if TYPE_CHECKING:  # (the warehouse layer imports SQLAlchemy: not for --help)
    from activation.warehouse.base import WarehouseCost

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Sync warehouse traits and audiences to the tools your teams use.",
)


def _console(stderr: bool = False) -> Console:
    # Piped output (CI logs, `make demo | tee`) gets 120 columns instead of rich's 80.
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=120)


out = _console()
err = _console(stderr=True)

EXIT_OK = 0

ProjectOpt = Annotated[Path | None, typer.Option("--project", "-p", help="syncs.yaml or its directory [env: ACTIVATION_PROJECT]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
SelectOpt = Annotated[list[str] | None, typer.Option("--select", "-s", help="Sync name, tag:NAME or destination:NAME (repeatable).")]
SyncsArg = Annotated[list[str] | None, typer.Argument(help="Syncs to run (default: all).", show_default=False)]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        from activation.extras import DISTRIBUTION

        print(f"activation {version(DISTRIBUTION)}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Sync warehouse traits and audiences to the tools your teams use."""


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


def _failed(errors: list[str], as_json: bool, code: int, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        _dump({"ok": False, "errors": errors, **(extra or {})})
    else:
        for e in errors:
            err.print(f"[bold red]error:[/] {escape(redact(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _reported(as_json: bool, extra: Callable[[], dict[str, Any]] | None = None) -> Iterator[None]:
    """Every way a command can fail, said once with its exit code: on stderr, or with `--json`
    as one JSON document on stdout (`{"ok": false, "errors": [...]}` plus `extra()`), so a
    script always has something to parse. Unexpected errors in text mode go to `main`."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except ProjectError as e:
        _config_error(e, as_json)
    except Unavailable as e:
        _failed([str(e)], as_json, EXIT_UNAVAILABLE, extra() if extra else None)
    except ActivationError as e:
        _failed([str(e)], as_json, e.exit_code, extra() if extra else None)
    except Exception as e:
        if not as_json or settings_debug():
            raise
        _failed(_unexpected(e), as_json, EXIT_FAILED, extra() if extra else None)
    except KeyboardInterrupt:
        if as_json:
            _dump({"ok": False, "errors": [INTERRUPTED], **(extra() if extra else {})})
        raise


@app.command()
def validate(
    project: ProjectOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Do not connect to the warehouse.")] = False,
    remote: Annotated[
        bool, typer.Option("--remote", help="Also ask each destination's API: credentials, objects, fields and their types.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check syncs.yaml: keys, references, templates, and (unless --offline) every model and
    mapping against the warehouse's real columns. Writes nothing, sends nothing."""
    from activation import app as application

    with _reported(as_json):
        loaded = _load(project)
        summary = {"ok": True, **application.validate(loaded, offline=offline, remote=remote).model_dump()}
    if as_json:
        _dump(summary)
    else:
        out.print(f"[green]✓[/] {loaded.file.name} is valid: " + ", ".join(f"{v} {k}" for k, v in summary.items() if k != "ok"))


@app.command()
def lint(
    project: ProjectOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Do not connect to the warehouse (skips schedule-quota).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when there are findings.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Warnings about a valid project: traits or audiences nobody syncs, PII sent to an ad
    platform unhashed, schedules tighter than the destination's quota. Exit 0 unless --strict."""
    from activation import app as application

    with _reported(as_json):
        report = application.lint(_load(project), offline=offline)
    code = EXIT_FAILED if strict and report.findings else EXIT_OK
    if as_json:
        _dump({"ok": not report.findings, **report.model_dump(mode="json")})
        raise typer.Exit(code)
    for f in report.findings:
        out.print(f"[yellow]warning[/] {escape(str(f))}", highlight=False, soft_wrap=True)
    for note in report.notes:
        out.print(f"[dim]note: {escape(note)}[/]", highlight=False)
    n = len(report.findings)
    out.print("[green]✓[/] no findings" if not n else f"{n} finding{'s' * (n != 1)}", highlight=False)
    raise typer.Exit(code)


@app.command("compile")
def compile_(project: ProjectOpt = None) -> None:
    """Print the SQL each trait, audience and sync model compiles to."""
    from activation import app as application

    with _reported(False):
        statements = application.compile_sql(_load(project))
    # Plain print, not the console: the output is SQL (`compile > models.sql`), and the console
    # wraps long lines at the terminal's width, which turned a header's tail into code.
    for st in statements:
        print(_sql_comment(st.origin))
        print(st.sql + ";\n")


def _sql_comment(text: str) -> str:
    """`text` as SQL line comments: every line of it starts with `--`."""
    return "\n".join(f"-- {line}" for line in text.splitlines() or [""])


def _execute(
    project: Path | None,
    syncs: list[str] | None,
    select: list[str] | None,
    *,
    dry_run: bool,
    allow_removal: bool,
    limit: int | None,
    as_json: bool,
    sandbox: bool = False,
    markdown: bool = False,
    samples: int = 3,
    full: bool = False,
) -> None:
    from activation import app as application
    from activation.runner import SyncResult

    results: list[SyncResult] = []
    spent: WarehouseCost | None = None
    done = lambda: {"syncs": [r.model_dump(mode="json") for r in results]} if results else {}  # noqa: E731
    with _reported(as_json, done):
        loaded = _load(project)
        with application.workspace(loaded, dry_run=dry_run, sandbox=sandbox) as w:
            if sandbox and not as_json:
                err.print("[bold]sandbox:[/] every destination is a local emulator; the warehouse and the state are not written")
            names = w.prepare(syncs, select)
            cost = w.session.warehouse.cost
            if dry_run:
                plans = w.plan(names)
                _report_plans(plans, as_json, markdown, samples, full, cost())
                failed = any(p.blocked or p.counts.rejected for p in plans)
                raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
            progress = RichProgress(err) if not as_json else None
            for r in w.run(names, allow_removal=allow_removal, limit=limit, progress=progress):
                results.append(r)
                if not as_json:
                    if r.status != "up_to_date":
                        print_plan_details(out, r.plan, samples=False)
                    print_result(out, r)
            if not as_json:
                for line in w.sandbox_summary():
                    out.print(f"[dim]sandbox[/] {line}", highlight=False)
            spent = cost()
            if spent is not None and not as_json:
                err.print(f"[dim]warehouse: {spent.line()}[/]", highlight=False)
    if as_json:
        extra = {"warehouse_cost": spent.model_dump()} if spent is not None else {}
        _dump({"ok": all(r.ok for r in results), "syncs": [r.model_dump(mode="json") for r in results], **extra})
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


def _report_plans(
    plans: list[Any], as_json: bool, markdown: bool = False, samples: int = 3, full: bool = False, cost: WarehouseCost | None = None
) -> None:
    if markdown:
        from activation.markdown import plans_markdown

        print(redact(plans_markdown(plans, samples=samples)), end="")
        return
    if as_json:
        _dump(
            {
                "ok": not any(p.blocked or p.counts.rejected for p in plans),
                "dry_run": True,
                "plans": [p.model_dump(mode="json") for p in plans],
                **({"warehouse_cost": cost.model_dump()} if cost is not None else {}),
            }
        )
        return
    from activation.output import FULL_HINT, VALUES_WIDTH

    out.print(plans_table(plans))
    cut = False
    for p in plans:
        cut |= print_plan_details(out, p, full=full)
    if cut:
        out.print(f"[dim]{FULL_HINT.format(width=VALUES_WIDTH)}[/]", highlight=False)
    if cost is not None:
        out.print(f"[dim]warehouse: {cost.line()}[/]", highlight=False)
    out.print("[dim]Dry run: nothing was sent and no state was written.[/]")


SandboxOpt = Annotated[bool, typer.Option("--sandbox", help="Point every destination at a local emulator; write no state.")]


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


FormatOpt = Annotated[
    OutputFormat | None, typer.Option("--format", help="text (default), json (same as --json) or markdown (a pull-request comment).")
]
BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base",
        metavar="REV",
        help="Review the change since REV (its merge base with HEAD): the config diff and its effect on today's data.",
    ),
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", min=0, help="Markdown: sample rows per change kind (0: none, e.g. for a public repository).")
]
FullOpt = Annotated[bool, typer.Option("--full", help="Text: show sample values whole (cut at 90 characters otherwise).")]


@app.command()
def plan(
    syncs: SyncsArg = None,
    select: SelectOpt = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
    sandbox: SandboxOpt = False,
    base: BaseOpt = None,
    fmt: FormatOpt = None,
    samples: SamplesOpt = 3,
    full: FullOpt = False,
) -> None:
    """Show what a run would change, per sync and per field. Sends nothing, writes nothing."""
    chosen = OutputFormat.json if as_json else fmt or OutputFormat.text
    if base is not None:
        _review(project, syncs, select, base, chosen, sandbox, samples, full)
    _execute(
        project,
        syncs,
        select,
        dry_run=True,
        allow_removal=False,
        limit=None,
        as_json=chosen == OutputFormat.json,
        sandbox=sandbox,
        markdown=chosen == OutputFormat.markdown,
        samples=samples,
        full=full,
    )


def _review(
    project: Path | None,
    syncs: list[str] | None,
    select: list[str] | None,
    base: str,
    fmt: OutputFormat,
    sandbox: bool,
    samples: int,
    full: bool = False,
) -> None:
    """plan --base: the config diff against REV and its effect on today's data."""
    from activation.review import GitError, review_project

    as_json = fmt == OutputFormat.json
    with _reported(as_json):
        if sandbox:
            raise ProjectError([ProjectIssue("--base and --sandbox cannot be combined (a review sends nothing anyway)")])
        loaded = _load(project)
        try:
            review = review_project(loaded, base, syncs, select)
        except GitError as e:
            raise ProjectError([ProjectIssue(f"--base {base}: {e}")]) from e
    if as_json:
        _dump({"ok": not review.failed, **review.model_dump(mode="json")})
    elif fmt == OutputFormat.markdown:
        from activation.markdown import review_markdown

        print(redact(review_markdown(review, samples=samples)), end="")
    else:
        from activation.output import print_review

        print_review(out, review, full=full)
    raise typer.Exit(EXIT_FAILED if review.failed else EXIT_OK)


@app.command()
def run(
    syncs: SyncsArg = None,
    select: SelectOpt = None,
    project: ProjectOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Same as `plan`.")] = False,
    allow_removal: Annotated[bool, typer.Option("--allow-removal", help="Accept removals above max_removal, this run only.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="Send at most N operations per sync (a cautious first send).")] = None,
    as_json: JsonOpt = False,
    sandbox: SandboxOpt = False,
) -> None:
    """Compute traits and audiences, diff each sync and push only the changes."""
    _execute(project, syncs, select, dry_run=dry_run, allow_removal=allow_removal, limit=limit, as_json=as_json, sandbox=sandbox)


@app.command()
def status(syncs: SyncsArg = None, select: SelectOpt = None, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """The last run of every sync (or of the chosen ones), and how many rows each has delivered.
    Exit 1 when the last run of one of them did not succeed."""
    from activation import app as application

    with _reported(as_json):
        rows = application.statuses(_load(project), syncs, select)
    bad = any(r["status"] in application.NOT_SUCCEEDED for r in rows)
    if as_json:
        _dump({"ok": not bad, "syncs": rows})
        raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)
    out.print(status_table(rows))
    for r in rows:
        if r["error"]:
            out.print(f"  ✗ {r['sync']}: {r['error']}", markup=False, highlight=False)
        for e in r["rejected_rows"]:
            out.print(f"  ✗ {r['sync']} {e['row_key']}: {e['reason']}", markup=False, highlight=False)
        if (more := r["rejected_rows_total"] - len(r["rejected_rows"])) > 0:
            out.print(f"  … and {more} more rejected rows of {r['sync']} (`activation history {r['sync']}`)", markup=False, highlight=False)
    raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)


@app.command()
def history(
    sync: Annotated[str, typer.Argument(help="The sync.")],
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs.")] = 10,
    rejected: Annotated[int, typer.Option("--rejected", min=0, help="Rejected rows shown per run (0: all).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The last runs of SYNC with their counts, and the rows each rejected with the reason."""
    from activation import app as application

    with _reported(as_json):
        runs = application.history(_load(project), sync, limit, rejected or None)
    if as_json:
        _dump({"sync": sync, "runs": runs})
        return
    if not runs:
        out.print(f"{sync} has never run.")
    for r in runs:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.1f}s" if r["finished_at"] else "-"
        # escaped: rich took "[partial]" for a style tag and printed no status at all
        out.print(
            f"[bold]{r['started_at']:%Y-%m-%d %H:%M:%S}[/] {r['run_id']} {escape('[' + r['status'] + ']')} {took}: "
            f"+{r['added']} ~{r['changed']} -{r['removed']} ={r['unchanged']}, "
            f"rejected before sending {r['rejected']}, sent {r['sent']}, "
            f"rejected by destination {r['rejected_by_destination']}",
            soft_wrap=True,
        )
        if r["error"]:
            out.print(f"    error: {r['error']}", markup=False)
        if d := r.get("details"):
            ids = "".join(f", {k} {v}" for k, v in d.get("details", {}).items())
            out.print(
                f"    destination: {d['requests']} requests, {d['retries']} retries, {d['throttled']} throttled{ids}",
                markup=False,
                highlight=False,
            )
        for e in r["rejected_rows"]:
            out.print(f"    ✗ {e['row_key']} ({e['stage']}): {e['reason']}", markup=False, highlight=False)
        if (more := r["rejected_rows_total"] - len(r["rejected_rows"])) > 0:
            out.print(
                f"    … and {more} more rejected rows (`activation history {sync} --rejected 0` shows all)", markup=False, highlight=False
            )


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="A trait, audience, entity or sync.", metavar="TRAIT|AUDIENCE|ENTITY|SYNC")],
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many rows.")] = 10,
    where: Annotated[str | None, typer.Option("--where", help="A SQL condition on the rows' columns, e.g. \"plan = 'pro'\".")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Preview rows of a trait, an audience, an entity's traits, or a sync's mapped payload,
    without running a sync (read-only, as `plan`): sends nothing, writes nothing."""
    from activation.preview import preview

    with _reported(as_json):
        found = preview(_load(project), name, limit=limit, where=where)
    kind, shown, mapped = found.kind, found.rows, found.mapped
    if as_json:
        _dump({"ok": True, kind: name, "rows": shown})
        return
    table = Table(title=f"{kind} {name}" + (" (mapped payload)" if mapped else ""), title_justify="left")
    columns = list(dict.fromkeys(c for item in shown for c in item))
    for c in columns:
        table.add_column(c, overflow="fold")
    for item in shown:
        table.add_row(
            *(
                escape(json.dumps(item[c], default=str) if not isinstance(item.get(c), str) else item[c]) if c in item else ""
                for c in columns
            )
        )
    out.print(table)
    out.print(f"[dim]{len(shown)} rows shown (--limit {limit}); nothing was sent and nothing was written.[/]")


@app.command()
def daemon(
    syncs: SyncsArg = None,
    select: SelectOpt = None,
    project: ProjectOpt = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address of /healthz and /metrics (daemon.health_host; default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Port of /healthz and /metrics; 0 picks a free one (daemon.health_port; default 9464)."
        ),
    ] = None,
    no_health: Annotated[bool, typer.Option("--no-health", help="No HTTP server.")] = False,
    json_logs: Annotated[
        bool | None, typer.Option("--json-logs/--text-logs", help="One JSON object per log line (daemon.json_logs).")
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning or error (daemon.log_level).")] = None,
    lease_ttl: Annotated[str | None, typer.Option("--lease-ttl", help="Lease duration, e.g. 60s (daemon.lease_ttl).")] = None,
    watch: Annotated[bool | None, typer.Option("--watch/--no-watch", help="Re-read syncs.yaml when it changes (daemon.watch).")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="This daemon's name in leases and logs (default: the host name; the pid is added).")
    ] = None,
) -> None:
    """Run every scheduled sync on its schedule until SIGTERM/SIGINT; SIGHUP re-reads syncs.yaml.

    A sync never runs twice at once, even across daemons sharing a state store (leases)."""
    from activation.extras import needs

    if problem := needs("activation daemon", "daemon", {"apscheduler": "apscheduler", "prometheus-client": "prometheus_client"}):
        err.print(f"[bold red]error:[/] {escape(problem)}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    from activation.daemon.service import Daemon, DaemonOptions
    from activation.project.schedule import parse_duration

    try:
        ttl = parse_duration(lease_ttl) if lease_ttl is not None else None
    except ValueError as e:
        err.print(f"[bold red]error:[/] --lease-ttl: {e}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    options = DaemonOptions(
        syncs=syncs,
        select=select,
        health_host=host,
        health_port=port,
        no_health=no_health,
        json_logs=json_logs,
        log_level=log_level.lower() if log_level else None,
        lease_ttl=ttl,
        watch=watch,
        name=name,
    )
    try:
        service = Daemon(project or Path(settings().project), options)
    except ProjectError as e:
        _config_error(e, False)
    raise typer.Exit(service.run())


@app.command()
def schema() -> None:
    """Print the JSON schema of syncs.yaml (for editor autocompletion)."""
    print(json.dumps(json_schema(), indent=2))


@app.command()
def reset(
    sync: Annotated[str, typer.Argument(help="The sync to forget (also one since removed from syncs.yaml).")],
    project: ProjectOpt = None,
    history: Annotated[bool, typer.Option("--history", help="Also delete its run records.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget what SYNC delivered, its in-flight journal and its rejected rows: its next run
    sends every row again. Nothing is sent or removed at the destination."""
    from activation import app as application

    with _reported(False):
        gone = application.reset(
            _load(project),
            sync,
            history=history,
            confirm=lambda what: yes or typer.confirm(f"Forget {what} of {sync}? Its next run resends every row."),
        )
    if gone is None:
        raise typer.Exit(EXIT_FAILED)
    out.print(f"{sync}: forgot " + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in gone.items()) + ".")


class Engine(str, Enum):
    duckdb = "duckdb"
    postgres = "postgres"
    redshift = "redshift"
    snowflake = "snowflake"
    bigquery = "bigquery"


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    sample_data: Annotated[
        bool, typer.Option("--sample-data/--no-sample-data", help="Create a small DuckDB warehouse to try it on.")
    ] = True,
    warehouse: Annotated[
        Engine,
        typer.Option("--warehouse", help="The warehouse the project reads (its settings from the environment; sample data: duckdb only)."),
    ] = Engine.duckdb,
) -> None:
    """Create a new project: syncs.yaml, an example trait, score and audience, a file destination."""
    from activation.scaffold import scaffold

    created = scaffold(directory, sample_data=sample_data, warehouse=warehouse.value)
    for f in created:
        out.print(f"created {f}")
    if not created:
        out.print("nothing created: syncs.yaml already exists")


@app.command()
def emulate(project: ProjectOpt = None) -> None:
    """Start a local emulator for every destination of the project, set up what its syncs need,
    print the environment that points the project at them, and keep them running until Ctrl-C
    (state persists between runs, unlike --sandbox). Needs the sandbox extra."""
    import signal
    import threading

    with _reported(False):
        loaded = _load(project)
        try:
            from activation_emulators.serve import serve  # lazily: see [tool.importlinter]
        except ModuleNotFoundError as e:
            from activation.extras import install_line

            raise ProjectError([ProjectIssue(f"emulate needs the sandbox extra: {install_line('sandbox')} ({e})")]) from e
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        serve(loaded, lambda line: print(line, flush=True), stop)


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Project directory of the demo (default: the current one when it holds a syncs.yaml, else ./activation-demo); the example project is copied into it when it holds none.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate the demo warehouse, plan, run, change rows, and show the second plan."""
    from activation_emulators.demo.run import run_demo  # lazily: see [tool.importlinter]

    raise typer.Exit(run_demo(directory, out))


INTERRUPTED = "interrupted: acknowledged batches are kept; the rest is sent next run"


def main() -> None:
    # A connection handed back to the pool after a failed commit (e.g. DuckDB out of memory)
    # logs its failed rollback as a second traceback; the error itself is reported below.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    try:
        app()
    except KeyboardInterrupt:
        err.print(INTERRUPTED)
        sys.exit(130)
    except Exception as e:  # a bug or an environment problem: say what, not a 200-line trace
        if "--debug" in sys.argv or settings_debug():
            raise
        said, *hints = _unexpected(e)
        err.print(f"[bold red]error:[/] {escape(said)}", highlight=False, soft_wrap=True)
        for hint in hints:
            err.print(hint, markup=False, highlight=False, soft_wrap=True)
        err.print("[dim](set ACTIVATION_DEBUG=1 for the full traceback)[/]")
        sys.exit(EXIT_FAILED)


def _unexpected(e: BaseException) -> list[str]:
    """What to say about an error nobody anticipated (a bug, an environment problem): the
    error, then hints."""
    said = [redact(f"{type(e).__name__}: {e}")]
    if _duckdb_out_of_memory(e):
        said.append(
            "DuckDB ran out of memory under warehouse.memory_limit. Raise it: it must hold the state table's key "
            "index, about 600 MB per million delivered rows (or keep the state elsewhere with state.url). "
            "Acknowledged batches are kept; the next run sends the rest."
        )
    return said


def _duckdb_out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return "duckdb" in text.lower() and any(s in text for s in ("Out of Memory", "could not allocate block", "failed to pin block"))


def settings_debug() -> bool:
    import os

    return os.environ.get("ACTIVATION_DEBUG", "") not in ("", "0")


if __name__ == "__main__":
    main()
