"""From diff rows to changes and a `SyncPlan`: what a sync would send, per row and field."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from activation.diff.differ import DiffRow
from activation.diff.mapping import FieldMapper, MappingError
from activation.state.identities import UNKNOWN_HASH

ChangeKind = Literal["added", "changed", "removed", "noop", "rejected"]
SAMPLES = 5


@dataclass(slots=True)
class Change:
    kind: ChangeKind
    key: str | None
    values: dict[str, Any] | None  # the mapped fields now (None when removed)
    previous: dict[str, Any] | None  # what was delivered (None when new)
    changed_fields: list[str]
    row_hash: str | None
    dest_id: str | None
    reason: str | None = None  # why a row is rejected
    rows: int = 1  # model rows behind this change (>1 only for a duplicated key)
    resend: bool = False  # possibly never delivered (recovered from an interrupted run)


class FieldChange(BaseModel):
    before: Any = None
    after: Any = None


class ChangedSample(BaseModel):
    key: str
    fields: dict[str, FieldChange]


class RejectedSample(BaseModel):
    key: str | None
    reason: str


class PlanCounts(BaseModel):
    model_rows: int = 0
    delivered: int = Field(0, description="Rows delivered before this plan.")
    added: int = 0
    changed: int = 0
    removed: int = Field(0, description="Rows that left the model.")
    unchanged: int = 0
    rejected: int = Field(0, description="Rows (or duplicated keys) that cannot be sent.")
    released: int = Field(
        0,
        description="Records or identifiers the destination holds that no row maps to any more: removed at the "
        "destination in mirror and audience modes (a row that left keeps its record while another row maps to it).",
    )


class SyncPlan(BaseModel):
    sync: str
    destination: str
    mode: str
    object: str | None = None
    counts: PlanCounts = Field(default_factory=PlanCounts)
    field_changes: dict[str, int] = Field(default_factory=dict, description="Changed rows per field.")
    rejected_reasons: dict[str, int] = Field(default_factory=dict)
    added_samples: list[dict[str, Any]] = Field(default_factory=list)
    changed_samples: list[ChangedSample] = Field(default_factory=list)
    removed_samples: list[dict[str, Any]] = Field(default_factory=list)
    rejected_samples: list[RejectedSample] = Field(default_factory=list)
    removes_at_destination: bool = Field(True, description="False when removed rows are only forgotten (upsert/update/insert modes).")
    warnings: list[str] = Field(default_factory=list)
    blocked: str | None = Field(None, description="Why a run of this plan would stop before sending.")

    @property
    def up_to_date(self) -> bool:
        c = self.counts
        return c.added == c.changed == c.removed == c.released == 0

    @property
    def to_send(self) -> int:
        c = self.counts
        return c.added + c.changed + (c.released if self.removes_at_destination else 0)


DUPLICATE = "duplicate key: several model rows share it"
SHARED = "shares its record at the destination with another row"


def shared_reason(match: list[str], others: int, other: str) -> str:
    """Why a row that would write the same record as other rows is rejected."""
    rows = "another row" if others == 1 else f"{others} other rows"
    what = ", ".join(match) or "identity"
    return (
        f"{SHARED}: its {what} is the same as {rows}' (e.g. key {other}), and one record cannot hold both; "
        "fix the model, or set the sync's identity_conflicts"
    )


def changes(rows: Iterator[DiffRow], mapper: FieldMapper, target: str = "") -> Iterator[Change]:
    """Map each diff row; drop nothing silently (bad rows become `rejected`).

    Rows arrive in key order, so the rows of a duplicated key are adjacent: they become
    one rejection (joins can multiply a duplicated source row, so per-row counts mislead).
    """
    dup: Change | None = None
    for d in rows:
        if dup is not None and not (d.kind == "duplicate_key" and d.key == dup.key):
            yield dup
            dup = None
        if d.kind == "removed":
            yield Change("removed", d.key, None, d.stored_values, [], None, d.dest_id)
            continue
        if d.kind == "null_key":
            yield Change("rejected", None, None, None, [], None, None, "key is NULL")
            continue
        if d.kind == "shared_identity":
            others, other = d.shared or (1, "?")
            yield Change("rejected", d.key, None, d.stored_values, [], None, d.dest_id, shared_reason(list(mapper.match), others, other))
            continue
        if d.kind == "duplicate_key":
            if dup is None:
                dup = Change("rejected", d.key, None, d.stored_values, [], None, d.dest_id, DUPLICATE, rows=0)
            dup.rows += 1
            continue
        assert d.row is not None
        try:
            values = mapper.map(d.row)
        except MappingError as e:
            yield Change("rejected", d.key, None, d.stored_values, [], None, d.dest_id, str(e))
            continue
        if d.kind == "added":
            yield Change("added", d.key, values, None, list(values), d.row_hash, None)
            continue
        before = d.stored_values or {}
        if d.stored_hash == UNKNOWN_HASH or not (d.stored_hash or "").startswith(f"{target}:"):
            # Sent by a run that died before its acknowledgement was recorded, or sent to
            # another target (to/object/mode/match changed): the destination may not hold
            # it, so send it whole, whatever it looks like.
            yield Change("changed", d.key, values, before, list(values), d.row_hash, d.dest_id, resend=True)
            continue
        changed = [f for f in values if f not in before or before[f] != values[f]]
        changed += [f for f in before if f not in values]
        yield Change("changed" if changed else "noop", d.key, values, before, changed, d.row_hash, d.dest_id)
    if dup is not None:
        yield dup


class PlanBuilder:
    """Accumulates counts and a few samples: memory independent of the model's size."""

    def __init__(self, plan: SyncPlan) -> None:
        self.plan = plan
        self.fields: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.rejected_rows = 0
        self.kinds: Counter[str] = Counter()  # into plan.counts at finish(): a pydantic setattr per row costs

    def add(self, c: Change) -> None:
        p = self.plan
        self.kinds[c.kind] += 1
        if c.kind == "added":
            _sample(p.added_samples, c.key, lambda: {"key": c.key, **(c.values or {})})
        elif c.kind == "changed":
            self.fields.update(c.changed_fields)
            before, after = c.previous or {}, c.values or {}
            _sample(
                p.changed_samples,
                c.key,
                lambda: ChangedSample(
                    key=c.key or "", fields={f: FieldChange(before=before.get(f), after=after.get(f)) for f in c.changed_fields}
                ),
            )
        elif c.kind == "removed":
            _sample(p.removed_samples, c.key, lambda: {"key": c.key, **(c.previous or {})})
        elif c.kind == "rejected":
            self.rejected_rows += c.rows
            reason = c.reason or "rejected"
            self.reasons[reason.split(":")[0] if reason.startswith(("field", SHARED)) else reason] += 1
            shown = f"{reason} ({c.rows} rows)" if c.rows > 1 else reason
            _sample(p.rejected_samples, c.key, lambda: RejectedSample(key=c.key, reason=shown))

    def finish(self) -> SyncPlan:
        p, n = self.plan, self.plan.counts
        n.added += self.kinds["added"]
        n.changed += self.kinds["changed"]
        n.removed += self.kinds["removed"]
        n.rejected += self.kinds["rejected"]
        self.kinds.clear()
        p.field_changes = dict(self.fields.most_common())
        p.rejected_reasons = dict(self.reasons.most_common())
        n.unchanged = max(n.model_rows - n.added - n.changed - self.rejected_rows, 0)
        return p


def _key_of(sample: Any) -> str:
    key = sample["key"] if isinstance(sample, dict) else sample.key
    return "" if key is None else key  # NULL keys sort first


def _sample(samples: list[Any], key: str | None, make: Any) -> None:
    """Keep the SAMPLES smallest keys: the same samples whatever order rows arrive in
    (the SQL differ streams unordered; sorting a large diff would cost memory)."""
    k = "" if key is None else key
    if len(samples) >= SAMPLES and k >= _key_of(samples[-1]):
        return
    keys = [_key_of(x) for x in samples]
    samples.insert(bisect.bisect_right(keys, k), make())
    del samples[SAMPLES:]


def check_guards(plan: SyncPlan, max_removal: float, allow_removal: bool) -> str | None:
    """Why a run must stop before sending, or None."""
    if allow_removal:
        return None
    n = plan.counts
    if n.model_rows == 0 and n.delivered > 0:
        return (
            f"the source returned no rows but {n.delivered} were delivered before; refusing to "
            "treat that as 'remove everything' (re-run with --allow-removal if it is intended)"
        )
    if n.delivered and n.removed / n.delivered > max_removal:
        share = n.removed / n.delivered
        return (
            f"would remove {n.removed} of {n.delivered} delivered rows ({share:.0%}), above "
            f"max_removal {max_removal:.0%}; re-run with --allow-removal to accept"
        )
    return None
