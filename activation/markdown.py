"""Plans and reviews as Markdown sized for a pull-request comment (`--format markdown`).

Warnings first, then one counts table, then per sync its config changes and a few sample
rows per change kind in a collapsed `<details>`. Values are truncated and redacted; the
whole comment stays under GitHub's 65,536 characters (samples go first when it would not).
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable
from typing import Any

from activation.diff.plan import SyncPlan
from activation.output import key_text, short
from activation.project.secrets import redact
from activation.review.model import ModelChange, Review, ReviewWarning, SyncReview

MARKER = "<!-- activation-plan -->"  # lets a CI job find and update its own comment
LIMIT = 60_000
SAMPLES = 3
DIFF_LINES = 40


def code(value: Any, width: int = 60) -> str:
    """`value` as an inline code span, truncated; safe inside a table cell."""
    text = short(value, width).replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}" if text else "``"


def _cell(value: Any, width: int = 40) -> str:
    return "*null*" if value is None else code(value, width)


def _table(header: list[str], rows: Iterable[list[str]], right: int = 0) -> list[str]:
    """A GFM table; the last `right` columns are right-aligned (counts)."""
    align = ["---"] * (len(header) - right) + ["---:"] * right
    return [f"| {' | '.join(header)} |", f"| {' | '.join(align)} |", *(f"| {' | '.join(r)} |" for r in rows)]


def _samples(plan: SyncPlan, n: int) -> list[str]:
    """A few rows of each change kind, as one table."""
    rows: list[list[str]] = []
    for s in plan.changed_samples[:n]:
        for i, (f, c) in enumerate(s.fields.items()):
            rows.append(["~ changed" if i == 0 else "", code(s.key, 30) if i == 0 else "", code(f, 30), _cell(c.before), _cell(c.after)])
    for kind, items in (("+ added", plan.added_samples), ("− removed", plan.removed_samples)):
        for row in items[:n]:
            values = {k: v for k, v in row.items() if k != "key"}
            rows.append([kind, code(key_text(row.get("key")), 60), "", "", code(values, 80)])
    for r in plan.rejected_samples[:n]:
        rows.append(["✗ rejected", code(r.key, 30), "", "", code(r.reason, 80)])
    if not rows:
        return []
    shown = f"up to {n} per change"
    return [
        "",
        f"<details><summary>Sample rows ({shown})</summary>",
        "",
        *_table(["change", "key", "field", "before", "after / values"], rows),
        "",
        "</details>",
    ]


def _fields(plan: SyncPlan) -> str:
    return ", ".join(f"{code(f, 30)} ({n})" for f, n in plan.field_changes.items())


def _count_row(sync: str, status: str, plan: SyncPlan | None, to: str, mode: str, base: int | None) -> list[str]:
    if plan is None:
        return [code(sync, 40), status, code(to, 30), mode, str(base) if base is not None else "—", "—", "—", "—", "—", "—"]
    c = plan.counts
    removed = str(c.removed) if plan.removes_at_destination or not c.removed else f"{c.removed} (kept)"
    return [
        code(sync, 40),
        status,
        code(to, 30),
        mode,
        str(base if base is not None else c.delivered),
        str(c.model_rows),
        str(c.added),
        str(c.changed),
        removed,
        str(c.rejected),
    ]


def _warning(w: ReviewWarning) -> str:
    who = f"**{code(w.sync, 40)}** " if w.sync else ""
    return f"- ⚠️ {who}{_plain(w.message)} <sub>`{w.kind}`</sub>"


def _plain(text: str) -> str:
    """Free text in Markdown: no accidental HTML, tables or emphasis (`code spans` kept)."""
    parts = redact(text).replace("\n", " ").split("`")
    # even parts are outside code spans (an unmatched backtick leaves the rest as text)
    return "`".join(re.sub(r"([<>*|\[\]])", r"\\\1", part) if i % 2 == 0 or i == len(parts) - 1 else part for i, part in enumerate(parts))


# ---------------------------------------------------------------- plain plan


def plans_markdown(plans: list[SyncPlan], *, samples: int = SAMPLES) -> str:
    def render(n: int) -> str:
        lines = [MARKER, "## activation plan", ""]
        warnings = [ReviewWarning(kind="blocked", sync=p.sync, message=p.blocked) for p in plans if p.blocked]
        warnings += [ReviewWarning(kind="warning", sync=p.sync, message=w) for p in plans for w in p.warnings]
        if warnings:
            lines += ["### Warnings", "", *map(_warning, warnings), ""]
        header = ["sync", "", "to", "mode", "delivered", "rows", "added", "changed", "removed", "rejected"]
        lines += _table(header, (_count_row(p.sync, "", p, p.destination, p.mode, None) for p in plans), right=6)
        for p in plans:
            if p.up_to_date and not p.counts.rejected:
                continue
            lines += ["", f"#### {code(p.sync, 60)}"]
            if p.field_changes:
                lines += ["", f"Changed fields: {_fields(p)}"]
            lines += _samples(p, n)
        return "\n".join(lines) + "\n"

    return _fit(render, samples)


# ---------------------------------------------------------------- review (plan --base)


def _change_line(path: str, before: Any, after: Any) -> str:
    if before is None:
        return f"- {code(path, 50)}: added {code(after)}"
    if after is None:
        return f"- {code(path, 50)}: removed (was {code(before)})"
    return f"- {code(path, 50)}: {code(before)} → {code(after)}"


def _status(s: SyncReview) -> str:
    return "reads a change" if s.status == "unchanged" else s.status


def _sync_section(s: SyncReview, n: int) -> list[str]:
    title = f"#### {code(s.sync, 60)} ({_status(s)}" + (f" from {code(s.renamed_from, 40)}" if s.renamed_from else "") + ")"
    lines = ["", title, ""]
    lines += [_change_line(c.path, c.before, c.after) for c in s.config_changes]
    if s.upstream_changes:
        lines.append(f"- reads changed definitions: {', '.join(_plain(u) for u in s.upstream_changes)}")
    plan = s.effect
    if plan is None:
        left = f"{s.delivered} delivered rows" if s.delivered else f"{s.base_rows or 0} rows under today's data"
        lines.append(f"- deleted: {left} stay at {code(s.destination, 30)}")
        return lines
    if s.new_target:
        lines.append(f"- effect: a first load of {plan.counts.model_rows} rows at the new target")
    elif plan.up_to_date and not plan.counts.rejected:
        lines.append("- effect: no row changes at the destination")
    if plan.field_changes and not s.new_target:
        lines.append(f"- changed fields: {_fields(plan)}")
    return lines + _samples(plan, n)


def _definition(m: ModelChange) -> list[str]:
    name = f"{m.kind} <code>{html.escape(m.name)}</code>" + (
        f" (renamed from <code>{html.escape(m.renamed_from)}</code>)" if m.renamed_from else f" ({m.change})"
    )
    before = redact(m.before or "").splitlines()
    after = redact(m.after or "").splitlines()
    diff = list(difflib.unified_diff(before, after, lineterm="", n=2))[2:] or [f"  {line}" for line in after]
    if len(diff) > DIFF_LINES:
        diff = diff[:DIFF_LINES] + [f"… {len(diff) - DIFF_LINES} more lines"]
    body = "\n".join(diff).replace("```", "`\u200b``")
    return ["", f"<details><summary>{name}</summary>", "", "```diff", body, "```", "", "</details>"]


def review_markdown(review: Review, *, samples: int = SAMPLES) -> str:
    def render(n: int) -> str:
        lines = [MARKER, f"## activation plan: working tree vs `{_plain(review.base)}`", ""]
        changed = len(review.syncs)
        lines.append(
            f"**{changed} sync{'s' * (changed != 1)} affected** · {len(review.unchanged_syncs)} unchanged · "
            f"{len(review.warnings)} warning{'s' * (len(review.warnings) != 1)}"
        )
        if review.warnings:
            lines += ["", "### Warnings", "", *map(_warning, review.warnings)]
        if review.syncs:
            header = ["sync", "change", "to", "mode", "base rows", "new rows", "added", "changed", "removed", "rejected"]
            lines += [
                "",
                "### Effect on today's data",
                "",
                *_table(
                    header, (_count_row(s.sync, _status(s), s.effect, s.destination, s.mode, s.base_rows) for s in review.syncs), right=6
                ),
                "",
                "<sub>Both configs computed on the same warehouse data: base rows are what the base config maps today.</sub>",
            ]
            for s in review.syncs:
                lines += _sync_section(s, n)
        if review.models:
            lines += ["", "### Definitions changed"]
            for m in review.models:
                lines += _definition(m)
        if review.project_changes:
            lines += ["", "### Project settings changed", ""]
            lines += [_change_line(c.path, c.before, c.after) for c in review.project_changes]
        if review.unchanged_syncs:
            lines += ["", f"Unchanged: {', '.join(code(s, 40) for s in review.unchanged_syncs)}"]
        return "\n".join(lines) + "\n"

    return _fit(render, samples)


def _fit(render: Any, samples: int) -> str:
    """Fewer samples, then none, then a cut, until the comment fits GitHub's limit."""
    for n in dict.fromkeys([samples, 1, 0]):
        text = render(n)
        if len(text) <= LIMIT:
            return text
    return text[:LIMIT] + "\n\n… (truncated: see the job's `--json` output for everything)\n"
