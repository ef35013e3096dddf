"""The warnings of a review: what a change does that a reviewer must not miss.

Each rule reads the config diff, the base rows, the effect plans and the project's own
state store, and says in numbers what happens at the destination.
"""

from __future__ import annotations

from dataclasses import dataclass

from activation.destinations import destination_class
from activation.diff.plan import SyncPlan
from activation.project.spec import Project, SyncSpec
from activation.review.configdiff import ProjectDiff, SyncDiff
from activation.review.effect import BaseRows, RealState
from activation.review.model import ModelChange, ReviewWarning
from activation.runner import REMOVING_MODES


@dataclass
class Facts:
    old: Project
    new: Project
    diff: ProjectDiff
    base: BaseRows
    real: RealState
    plans: dict[str, SyncPlan]


def _where(s: SyncSpec) -> str:
    parts = [s.to] + ([s.object] if s.object else []) + ([f"audience {s.audience!r}"] if s.audience else [])
    return " / ".join(parts)


def _held(f: Facts, name: str) -> str:
    """How many rows a sync has at its destination: the state store's count, else the base's."""
    delivered = f.real.delivered.get(name, 0)
    if delivered:
        return f"the {delivered} rows it delivered"
    rows = f.base.rows.get(name)
    return (
        f"the rows it delivered ({rows} under today's data; the state store here records none)"
        if rows is not None
        else "the rows it delivered"
    )


def sync_warnings(f: Facts, d: SyncDiff) -> list[ReviewWarning]:
    out: list[ReviewWarning] = []

    def warn(kind: str, message: str) -> None:
        out.append(ReviewWarning(kind=kind, sync=d.name, message=message))

    plan = f.plans.get(d.name)
    if d.name in f.base.failed:
        warn(
            "base_not_computed",
            f"the base config of {d.name} cannot be computed on today's data "
            f"({f.base.failed[d.name]}); its effect is shown as a first load",
        )
    if d.status == "removed":
        assert d.old is not None
        removes = d.old.mode in REMOVING_MODES
        src = f" (members of audience {d.old.from_})" if d.old.from_ in f.old.audiences else ""
        warn(
            "sync_removed",
            f"sync {d.name} is deleted: {_held(f, d.name)}{src} stay at {_where(d.old)}; nothing will "
            f"update {'or remove ' if removes else ''}them any more"
            + (" (to take them out first, empty its source and run it with --allow-removal, then delete it)" if removes else ""),
        )
        return out
    assert d.new is not None
    if d.status == "renamed":
        before = f.real.delivered.get(d.renamed_from or "", 0)
        warn(
            "sync_renamed",
            f"sync {d.renamed_from} was renamed to {d.name}: the state is kept per sync name, so "
            f"{d.name} sends all {plan.counts.model_rows if plan else '?'} rows again as a first load and what "
            f"{d.renamed_from} delivered ({before} rows) is forgotten"
            + (" (rows that leave the model later will not be removed)" if d.new.mode in REMOVING_MODES else "")
            + "; keep the old name to avoid this",
        )
    if d.old is not None and d.status != "renamed":
        out += _target_warnings(f, d, plan)
    if plan is not None:
        out += _effect_warnings(f, d, d.new, plan)
    return out


def _target_warnings(f: Facts, d: SyncDiff, plan: SyncPlan | None) -> list[ReviewWarning]:
    assert d.old is not None and d.new is not None
    old, new = d.old, d.new
    out = []
    n = plan.counts.model_rows if plan else "?"
    keys = d.target_keys_changed
    if "match" in keys:
        out.append(
            ReviewWarning(
                kind="match_changed",
                sync=d.name,
                message=(
                    f"match changed from {', '.join(sorted(old.match))} to {', '.join(sorted(new.match))}: the destination identifies "
                    f"records by it, so all {n} rows are sent as records keyed by {', '.join(sorted(new.match))}, and "
                    f"{_held(f, d.name)} keyed by {', '.join(sorted(old.match))} stay at {_where(old)} (orphaned, or duplicated "
                    "where the destination cannot merge them)"
                ),
            )
        )
    moved = [k for k in keys if k in ("to", "object", "audience")]
    if moved:
        what = ", ".join(f"{k} {getattr(old, k)!r} → {getattr(new, k)!r}" for k in moved)
        out.append(
            ReviewWarning(
                kind="target_changed",
                sync=d.name,
                message=(f"{what}: every row ({n}) is sent to {_where(new)} as a first load, and {_held(f, d.name)} stay at {_where(old)}"),
            )
        )
    if d.key_changed:
        out.append(
            ReviewWarning(
                kind="key_changed",
                sync=d.name,
                message=(
                    f"key changed from {old.key or 'the entity key'} to {new.key or 'the entity key'}: rows are tracked by the new "
                    "key, so every row whose key value differs counts as removed and added again"
                    + (" (mode " + new.mode + " sends the removals)" if new.mode in REMOVING_MODES else "")
                ),
            )
        )
    if old.mode != new.mode:
        now = (
            "rows that leave the model are now removed at the destination"
            if new.mode in REMOVING_MODES and old.mode not in REMOVING_MODES
            else "rows that leave the model are no longer removed at the destination"
            if old.mode in REMOVING_MODES and new.mode not in REMOVING_MODES
            else f"mode {new.mode} applies from now on"
        )
        out.append(
            ReviewWarning(
                kind="mode_changed",
                sync=d.name,
                message=(
                    f"mode {old.mode} → {new.mode}: the next run resends every row once ({n}: delivered rows are tagged with "
                    f"the mode), and {now}"
                ),
            )
        )
    if new.to in f.diff.destinations_changed and new.to == old.to:
        changed = [c.path.split(".", 2)[2] for c in f.diff.project_changes if c.path.startswith(f"destinations.{new.to}.")]
        out.append(
            ReviewWarning(
                kind="destination_changed",
                sync=d.name,
                message=(
                    f"destination {new.to}'s settings changed ({', '.join(changed)}): the state still records "
                    f"{_held(f, d.name)}, so if it now points to another endpoint or account, that one receives "
                    f"only later changes (`activation reset {d.name}` makes the next run send everything)"
                ),
            )
        )
    return out


def _effect_warnings(f: Facts, d: SyncDiff, new: SyncSpec, plan: SyncPlan) -> list[ReviewWarning]:
    out = []
    c = plan.counts
    warn = lambda kind, msg: out.append(ReviewWarning(kind=kind, sync=d.name, message=msg))  # noqa: E731
    limit = new.removal_limit
    if not d.new_target and c.delivered:
        if c.model_rows == 0:
            warn(
                "removal_above_limit",
                f"the new config selects no rows where the base selects {c.delivered}: "
                "the next run stops (an empty source) unless run with --allow-removal",
            )
        elif c.removed / c.delivered > limit:
            kept = "removed at" if plan.removes_at_destination else "left at (mode " + new.mode + " keeps them)"
            warn(
                "removal_above_limit",
                f"the change removes {c.removed} of the {c.delivered} rows the base config maps "
                f"({c.removed / c.delivered:.0%}), above max_removal {limit:.0%}: they would be {kept} {_where(new)}, "
                "and the next run stops unless run with --allow-removal",
            )
    spec = f.new.destinations.get(new.to)
    minimum = destination_class(spec.type).min_audience_size if spec is not None else None
    members = c.model_rows - c.rejected
    if new.mode == "audience" and minimum and members < minimum:
        warn(
            "audience_below_minimum",
            f"the audience would have {members} members, below the {minimum} {spec.type if spec else new.to} needs to serve it",
        )
    if not d.new_target and d.old is not None:
        moved = [m for m in new.match if plan.field_changes.get(m)]
        if moved:
            counts = ", ".join(f"{plan.field_changes[m]} rows change {m}" for m in moved)
            fate = (
                "their old identities are removed from the audience and the new ones added"
                if new.mode == "audience"
                else "each becomes a new record there and the old one stays (orphaned, or duplicated)"
            )
            warn("match_changed", f"{counts}, which identifies records at {_where(new)}: {fate}")
    seen = set().union(
        *(f.real.fields.get(n, set()) for n, s in {**f.old.syncs, **f.new.syncs}.items() if s.to == new.to and s.object == new.object)
    )
    fresh = [k for k in [*new.match, *new.fields] if k not in (d.old.match if d.old else {}) and k not in (d.old.fields if d.old else {})]
    unseen = [k for k in fresh if seen and k not in seen]
    if unseen:
        warn(
            "field_not_seen",
            f"maps {', '.join(f'`{k}`' for k in unseen)}, never delivered to {_where(new)} before: "
            "make sure the field exists there (`activation validate --remote` asks the destination)",
        )
    return out


def audience_warnings(f: Facts) -> list[ReviewWarning]:
    """A renamed audience: who reads it now, and what happens to the old one's members."""
    out = []
    for m in f.diff.models:
        if not (m.kind == "audience" and m.change == "renamed"):
            continue
        readers = [d for d in f.diff.syncs.values() if d.old is not None and d.old.from_ == m.renamed_from]
        if not readers:
            out.append(
                ReviewWarning(kind="audience_renamed", message=f"audience {m.renamed_from} was renamed to {m.name}; no sync read it")
            )
        for d in readers:
            out.append(ReviewWarning(kind="audience_renamed", sync=d.name, message=_renamed(f, m, d)))
    return out


def _renamed(f: Facts, m: ModelChange, d: SyncDiff) -> str:
    head = f"audience {m.renamed_from} was renamed to {m.name}"
    if d.new is None:
        return f"{head}, and sync {d.name}, which synced it, is deleted: its members stay at {_where(d.old) if d.old else '?'}"
    if d.new.from_ != m.name:
        return f"{head}; sync {d.name} now reads {d.new.from_}"
    plan = f.plans.get(d.name)
    if plan is None or d.new_target:
        return f"{head}; sync {d.name} now reads {m.name} and sends all its members to {_where(d.new)}"
    gone = plan.counts.removed
    if not gone:
        return f"{head}; sync {d.name} now reads {m.name}: every member of {m.renamed_from} is in {m.name}, nothing is removed"
    fate = "removed from" if plan.removes_at_destination else "left at (mode " + d.new.mode + " keeps them)"
    return f"{head}; sync {d.name} now reads {m.name}: {gone} members of {m.renamed_from} are not in {m.name} and will be {fate} {_where(d.new)}"
