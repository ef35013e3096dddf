"""How plans, results and status look in a terminal (rich)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from activation.diff.plan import SyncPlan
from activation.project.secrets import redact
from activation.review.model import diff_lines
from activation.runner import SyncResult


def short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    text = redact(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def plans_table(plans: list[SyncPlan]) -> Table:
    t = Table(title="Plan", title_justify="left")
    for col, style in (
        ("sync", "bold"),
        ("to", ""),
        ("mode", ""),
        ("rows", ""),
        ("+add", "green"),
        ("~change", "yellow"),
        ("-remove", "red"),
        ("=same", "dim"),
        ("rejected", "magenta"),
    ):
        left = col in ("sync", "to", "mode")
        t.add_column(col, style=style, justify="left" if left else "right", no_wrap=col in ("sync", "to"))
    for p in plans:
        c = p.counts
        removed = str(c.removed) if p.removes_at_destination or not c.removed else f"{c.removed} (kept)"
        t.add_row(
            p.sync, p.destination, p.mode, str(c.model_rows), str(c.added), str(c.changed), removed, str(c.unchanged), str(c.rejected)
        )
    return t


def key_text(key: Any) -> str:
    """A row key as shown."""
    return str(key)


#: Text output cuts a sample's values at these widths, unless `plan --full`.
KEY_WIDTH, VALUES_WIDTH, VALUE_WIDTH = 30, 90, 40
FULL_HINT = "values cut at {width} characters are shown whole by `activation plan --full` (or `--json`)"


def print_plan_details(console: Console, plan: SyncPlan, *, samples: bool = True, full: bool = False) -> bool:
    """The plan of one sync after the table: warnings, changed fields, sample rows (each block
    named by its sync). Returns whether a value was cut (`full` shows them whole)."""
    name = escape(plan.sync)
    cut = False

    def show(value: Any, width: int) -> str:
        nonlocal cut
        text = short(value, 10**9)
        if full or len(text) <= width:
            return escape(text)
        cut = True
        return escape(short(text, width))

    if plan.blocked:
        console.print(f"[bold red]✗ {name}: would stop before sending: {escape(plan.blocked)}[/]")
    for w in plan.warnings:
        console.print(f"[yellow]! {name}: {escape(w)}[/]")
    if plan.up_to_date and not plan.counts.rejected:
        console.print(f"[green]✓ {name}: up to date ({plan.counts.model_rows} rows), nothing to send[/]")
        return False
    if plan.field_changes:
        fields = ", ".join(f"{escape(f)} ({n})" for f, n in plan.field_changes.items())
        console.print(f"[bold]{name}[/] changed fields: {fields}")
    if not samples:
        return False
    shown = [
        (kind, n)
        for kind, n, rows in (
            ("added", plan.counts.added, plan.added_samples),
            ("changed", plan.counts.changed, plan.changed_samples),
            ("removed", plan.counts.removed, plan.removed_samples),
        )
        if rows
    ]
    if shown:  # several syncs' samples follow one another: each block says whose rows these are
        console.print(f"[bold]{name}[/] sample rows (of {', '.join(f'{n} {kind}' for kind, n in shown)}):", highlight=False)
    for s in plan.changed_samples:
        diffs = "; ".join(f"{escape(f)}: {show(c.before, VALUE_WIDTH)} → {show(c.after, VALUE_WIDTH)}" for f, c in s.fields.items())
        console.print(f"  [yellow]~[/] {escape(s.key)}  {diffs}")
    for row in plan.added_samples:
        console.print(
            f"  [green]+[/] {show(row.get('key'), KEY_WIDTH)}  {show({k: v for k, v in row.items() if k != 'key'}, VALUES_WIDTH)}"
        )
    for row in plan.removed_samples:
        console.print(
            f"  [red]-[/] {show(key_text(row.get('key')), 80)}  {show({k: v for k, v in row.items() if k != 'key'}, VALUES_WIDTH)}"
        )
    for r in plan.rejected_samples:
        console.print(f"  [magenta]✗[/] {escape(str(r.key))}  {escape(r.reason)}")
    if plan.counts.rejected:
        reasons = ", ".join(f"{escape(k)} ({n})" for k, n in plan.rejected_reasons.items())
        console.print(f"  [magenta]{plan.counts.rejected} rejected rows[/]: {reasons}")
    return cut


def print_result(console: Console, r: SyncResult) -> None:
    name = escape(r.sync)
    if r.status == "up_to_date":
        console.print(f"[green]✓ {name}: up to date[/] ({r.plan.counts.model_rows} rows), nothing sent")
    elif r.status == "success":
        console.print(f"[green]✓ {name}:[/] sent {r.sent}, acknowledged {r.acknowledged} in {r.seconds:.1f}s")
    elif r.status == "partial":
        console.print(
            f"[yellow]! {name}:[/] sent {r.sent}, acknowledged {r.acknowledged}, rejected by destination "
            f"{r.rejected_by_destination}, rejected before sending {r.plan.counts.rejected} "
            f"(see `activation history {name}`; they are retried next run)"
        )
    elif r.status == "interrupted":
        console.print(f"[yellow]! {name}: interrupted after {r.acknowledged} acknowledged:[/] {escape(r.error or '')}")
    elif r.status == "blocked":
        console.print(f"[bold red]✗ {name}: stopped before sending:[/] {escape(r.error or '')}")
    else:
        console.print(f"[bold red]✗ {name}: failed:[/] {escape(r.error or '')} (acknowledged rows are kept; the rest is retried next run)")


class RichProgress:
    """A progress bar per sync, on stderr; silent when stderr is not a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bar: Progress | None = None
        self._task: Any = None

    def start(self, sync: str, total: int) -> None:
        if not self.console.is_terminal or total == 0:
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(escape(sync), total=total)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def status_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="Syncs", title_justify="left")
    counts = ("delivered", "sent", "rejected by destination", "rejected before sending")  # the words `run` prints
    for col in ("sync", "to", "last run (UTC)", "status", *counts):
        t.add_column(col, no_wrap=col in ("sync", "to", "status"), justify="right" if col in counts else "left")
    style = {
        "up_to_date": "green",
        "success": "green",
        "partial": "yellow",
        "interrupted": "yellow",
        "failed": "red",
        "blocked": "red",
        "aborted": "red",
        "running": "cyan",
        "never run": "dim",
    }
    for r in rows:
        st = r["status"]
        dash = lambda v: "-" if v is None else str(v)  # noqa: E731
        t.add_row(
            r["sync"],
            r["destination"],
            (r.get("last_run") or "-").replace("T", " "),
            f"[{style.get(st, '')}]{st}[/]",
            str(r["delivered_rows"]),
            dash(r.get("sent")),
            dash(r.get("rejected_by_destination")),
            dash(r.get("rejected")),
        )
    return t


def _print_diff(console: Console, lines: list[str], indent: str = "    ") -> None:
    style = {"-": "red", "+": "green", "@": "cyan"}
    for line in lines:
        color = style.get(line[:1])
        text = escape(line)
        console.print(f"{indent}[{color}]{text}[/]" if color else f"{indent}{text}", highlight=False, soft_wrap=True)


def _long(value: Any) -> bool:
    return isinstance(value, str) and ("\n" in value or len(value) > VALUE_WIDTH)


def print_review(console: Console, review: Any, *, full: bool = False) -> None:
    """`plan --base`: warnings first, the effect table, then each sync's config changes."""
    console.print(f"[bold]Review:[/] working tree vs {escape(review.base)}", highlight=False)
    for w in review.warnings:
        who = f"{escape(w.sync)}: " if w.sync else ""
        console.print(f"[yellow]! {who}{escape(w.message)}[/]", highlight=False)
    cut = False
    effects = [s.effect for s in review.syncs if s.effect is not None]
    if effects:
        console.print(plans_table(effects))
    for s in review.syncs:
        renamed = f" from {escape(s.renamed_from)}" if s.renamed_from else ""
        console.print(f"[bold]{escape(s.sync)}[/] ({s.status}{renamed})", highlight=False)
        for c in s.config_changes:
            if _long(c.before) or _long(c.after):  # long or multi-line text: a diff, not two cut copies
                console.print(f"  {escape(c.path)}:", highlight=False)
                _print_diff(console, diff_lines(c.before, c.after))
                continue
            change = (
                f"added {short(c.after)}"
                if c.before is None
                else f"removed (was {short(c.before)})"
                if c.after is None
                else f"{short(c.before)} → {short(c.after)}"
            )
            console.print(f"  {escape(c.path)}: {escape(change)}", highlight=False)
        if s.upstream_changes:
            console.print(f"  reads changed: {escape(', '.join(s.upstream_changes))}", highlight=False)
        if s.effect is None:
            console.print(f"  [red]deleted[/]: {s.delivered or s.base_rows or 0} rows stay at {escape(s.destination)}", highlight=False)
        elif s.effect.up_to_date and not s.effect.counts.rejected:
            console.print("  [green]no row changes at the destination[/]")
        else:
            # the review's own warnings (above) say what the plan's warnings and guards would
            cut |= print_plan_details(console, s.effect.model_copy(update={"warnings": [], "blocked": None}), full=full)
    for m in review.models:
        renamed = f" (renamed from {escape(m.renamed_from)})" if m.renamed_from else f" ({m.change})"
        console.print(f"[bold]{m.kind} {escape(m.name)}[/]{renamed}:", highlight=False)
        _print_diff(console, m.diff)
    if cut:
        console.print(f"[dim]{FULL_HINT.format(width=VALUES_WIDTH)}[/]", highlight=False)
    if review.unchanged_syncs:
        console.print(f"[dim]unchanged: {escape(', '.join(review.unchanged_syncs))}[/]", highlight=False)
    console.print("[dim]Both configs were computed on today's warehouse data; nothing was sent and no state was written.[/]")
