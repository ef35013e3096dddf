"""Lint: what is valid but probably not what you meant (`activation lint`).

`validate` answers "will it run" (errors, exit 2); lint answers "is it wise" (warnings).
Rules:
- `unused-trait`, `unused-audience`: defined, but no sync reads it, directly or through
  a score, an audience or SQL that a sync reads;
- `pii-unhashed`: a sync maps a PII column (the entity's `identifiers:` and obvious names:
  email, phone, names, address, …) to a field an ad destination sends as it is;
- `schedule-quota`: a full send of the model at the destination's request rate takes
  longer than the interval between scheduled runs (needs the warehouse's row count).
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel

from activation.destinations import build_destination, destination_class
from activation.destinations.base import SyncTarget
from activation.extras import install_line
from activation.models.compiler import compile_offline
from activation.project.loader import LoadedProject
from activation.project.schedule import Schedule
from activation.project.spec import Project, SyncSpec
from activation.project.templating import TemplateProblem, columns_used

Rule = Literal["unused-trait", "unused-audience", "pii-unhashed", "schedule-quota"]
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALL = "\x00every column"  # what columns_used returns for a template reading the whole row
PII_NAMES = frozenset(
    {
        "first_name",
        "firstname",
        "last_name",
        "lastname",
        "full_name",
        "fullname",
        "surname",
        "given_name",
        "address",
        "street",
        "street_address",
        "address_line1",
        "address_line_1",
        "zip",
        "zip_code",
        "zipcode",
        "postal_code",
        "postcode",
        "date_of_birth",
        "dob",
        "birthday",
        "birthdate",
        "ip",
        "ip_address",
        "ssn",
    }
)
PII_PARTS = ("email", "phone", "mobile")


class Finding(BaseModel):
    rule: Rule
    subject: str  # "trait ltv", "sync users_to_ads"
    message: str
    location: str | None = None  # file:line:column

    def __str__(self) -> str:
        return f"{self.location + ': ' if self.location else ''}{self.rule}: {self.subject}: {self.message}"


class LintReport(BaseModel):
    findings: list[Finding]
    notes: list[str]


def is_pii(column: str, identifiers: set[str]) -> bool:
    c = column.lower()
    return c in identifiers or c in PII_NAMES or any(part in c for part in PII_PARTS)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text))


def _mapped_columns(spec: SyncSpec) -> dict[tuple[str, str], set[str]]:
    """(section, destination field) -> model columns its mapping reads."""
    out = {}
    for section, mapping in (("match", spec.match), ("fields", spec.fields)):
        for dest, expr in mapping.items():
            try:
                out[(section, dest)] = columns_used(expr, [_ALL])
            except TemplateProblem:
                out[(section, dest)] = set()  # validate reports it
    return out


# ---------------------------------------------------------------- unused traits and audiences


def _unused(loaded: LoadedProject) -> list[Finding]:
    p = loaded.project
    traits_of = {e: {t for t, spec in p.traits.items() if spec.entity == e} for e in p.entities}
    named = {("trait", t) for t in p.traits} | {("audience", a) for a in p.audiences}

    def refs(text: str, entity: str | None, whole_row: bool = False) -> set[tuple[str, str]]:
        words = _words(text)
        found = {("audience", a) for a in p.audiences if a in words}
        pool = traits_of.get(entity, set()) if entity else set(p.traits)
        found |= {("trait", t) for t in pool if whole_row or t in words}
        found |= {("trait", t) for t in p.traits if f"'{t}'" in text or f'"{t}"' in text}  # ref('t')
        return found

    uses: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for name, t in p.traits.items():
        text = " ".join(t.score) if t.score else _sql(loaded, t.sql)
        uses[("trait", name)] = refs(text, t.entity) - {("trait", name)}
    for name, a in p.audiences.items():
        uses[("audience", name)] = refs(a.where if a.where is not None else _sql(loaded, a.sql), a.entity) - {("audience", name)}
    roots: set[tuple[str, str]] = set()
    for s in p.syncs.values():
        entity = _entity_of(p, s)
        if s.from_ in p.audiences:
            roots.add(("audience", s.from_))
        cols = set().union(*_mapped_columns(s).values()) if (s.match or s.fields) else set()
        roots |= refs(" ".join(cols) + " " + _sql(loaded, s.sql), entity, whole_row=_ALL in cols)
    reached: set[tuple[str, str]] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in reached:
            reached.add(node)
            stack.extend(uses.get(node, ()))
    findings = []
    for kind, name in sorted(named - reached):
        readers = sorted(f"{k} {n}" for (k, n), used in uses.items() if (kind, name) in used)
        why = (
            f"only {', '.join(readers)} read{'s' * (len(readers) == 1)} it, and no sync reads {'them' if len(readers) > 1 else 'that'}"
            if readers
            else "no sync, score, audience or model reads it"
        )
        hint = "delete it, or map it in a sync's `fields:`" if kind == "trait" else "delete it, or sync it (`from: " + name + "`)"
        section = "traits" if kind == "trait" else "audiences"
        findings.append(
            Finding(
                rule=f"unused-{kind}",
                subject=f"{kind} {name}",
                message=f"{why}: it is computed on every run for nothing ({hint})",
                location=_loc(loaded, section, name),
            )
        )
    return findings


def _entity_of(p: Project, s: SyncSpec) -> str | None:
    """The entity whose rows a sync reads: its `from:` entity, or its audience's; None for SQL."""
    return s.from_ if s.from_ in p.entities else p.audiences[s.from_].entity if s.from_ in p.audiences else None


def _sql(loaded: LoadedProject, text: str | None) -> str:
    if not text:
        return ""
    try:
        return loaded.read_sql(text)[0]
    except OSError:
        return ""  # validate reports it


def _loc(loaded: LoadedProject, *path: str) -> str | None:
    loc = loaded.locate(*path)
    return str(loc) if loc else None


# ---------------------------------------------------------------- PII to ad platforms


def _pii(loaded: LoadedProject) -> list[Finding]:
    p = loaded.project
    findings = []
    for name, s in p.syncs.items():
        spec = p.destinations.get(s.to)
        if spec is None or not destination_class(spec.type).ad_platform:
            continue
        hashed = build_destination(s.to, spec, str(loaded.root)).hashed_fields(SyncTarget.of(name, s))
        entity = _entity_of(p, s)
        ids = {i.lower() for e, spec_e in p.entities.items() if entity in (None, e) for i in spec_e.identifiers}
        for (section, field), cols in _mapped_columns(s).items():
            pii = sorted(c for c in cols if c != _ALL and is_pii(c, ids)) or (["every column of the row"] if _ALL in cols and ids else [])
            if not pii or field in hashed:
                continue
            these = ", ".join(pii)
            ok = f"it hashes {', '.join(sorted(hashed))}" if hashed else "it hashes no field of this sync"
            findings.append(
                Finding(
                    rule="pii-unhashed",
                    subject=f"sync {name}",
                    message=f"`{section}.{field}` sends PII ({these}) to ad destination {s.to!r} unhashed ({ok}): "
                    "map it to a field the destination hashes, or leave it out",
                    location=_loc(loaded, "syncs", name, section, field),
                )
            )
    return findings


# ---------------------------------------------------------------- schedule vs quota


def schedule_interval(schedule: Schedule | None) -> float | None:
    """Shortest time between two scheduled runs, in seconds; None for manual, and for cron
    without APScheduler (the daemon extra): it computes cron's fire times."""
    try:
        return schedule.min_interval if schedule is not None else None
    except ModuleNotFoundError:
        return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _schedules(loaded: LoadedProject, row_counts: dict[str, int] | None) -> tuple[list[Finding], list[str]]:
    p = loaded.project
    findings, notes = [], []
    scheduled = {n: s for n, s in p.syncs.items() if schedule_interval(s.schedule) is not None}
    if any(s.schedule is not None and s.schedule.kind == "cron" and n not in scheduled for n, s in p.syncs.items()):
        notes.append(f"schedule-quota: cron schedules not checked (they need APScheduler: {install_line('daemon')})")
    if scheduled and row_counts is None:
        return [], ["schedule-quota: not checked offline (it needs each model's row count from the warehouse)"]
    for name, s in scheduled.items():
        spec = p.destinations.get(s.to)
        if spec is None or name not in (row_counts or {}):
            continue
        dest = build_destination(s.to, spec, str(loaded.root))
        rate = dest.requests_per_second()
        if not rate:
            continue  # the destination declares no quota
        per_call = min(dest.batch_size(s.batch_size), getattr(spec, "batch_size", None) or math.inf)
        rows = (row_counts or {})[name]
        needed = rows / (per_call * rate)
        interval = schedule_interval(s.schedule) or 0
        if needed > interval:
            findings.append(
                Finding(
                    rule="schedule-quota",
                    subject=f"sync {name}",
                    message=f"schedule {s.schedule.text if s.schedule else None!r} runs it every {_duration(interval)}, but sending all {rows:,} rows "
                    f"takes about {_duration(needed)} at {rate:g} requests/s × {per_call:g} rows per request "
                    f"(destination {s.to!r}): a first load or a mapping change overlaps the next runs; schedule it less often "
                    "or raise the destination's requests_per_second within your quota",
                    location=_loc(loaded, "syncs", name, "schedule"),
                )
            )
    return findings, notes


def lint_project(loaded: LoadedProject, row_counts: dict[str, int] | None = None) -> LintReport:
    """Every finding, in file order. `row_counts` (sync -> model rows) enables schedule-quota.
    Raises ProjectError for an invalid project (lint is about valid ones)."""
    compile_offline(loaded)
    schedule_findings, notes = _schedules(loaded, row_counts)
    findings = _unused(loaded) + _pii(loaded) + schedule_findings
    return LintReport(findings=sorted(findings, key=_file_order), notes=notes)


def _file_order(f: Finding) -> tuple[str, int, int]:
    file, _, rest = (f.location or "").partition(":")
    line, _, col = rest.partition(":")
    return file, int(line or 0), int(col or 0)
