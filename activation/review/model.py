"""What `plan --base REV` reports: the config diff and the data effect, per sync."""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from activation.diff.plan import SyncPlan
from activation.project.secrets import redact

ChangeStatus = Literal["added", "removed", "changed", "renamed", "unchanged"]


class ConfigChange(BaseModel):
    """One key of syncs.yaml that differs: `fields.plan`, `mode`, `match.email`, …"""

    path: str
    before: Any = None
    after: Any = None


class ModelChange(BaseModel):
    """A trait, audience, entity or SQL model whose definition differs."""

    kind: Literal["trait", "audience", "entity", "model"]
    name: str
    change: ChangeStatus
    renamed_from: str | None = None
    before: str | None = Field(None, description="The definition at the base (SQL text, `where`, score).")
    after: str | None = Field(None, description="The definition in the working tree.")

    @computed_field(description="A unified diff of the definition (lines starting -, + or a space), secrets redacted.")  # type: ignore[prop-decorator]
    @property
    def diff(self) -> list[str]:
        return diff_lines(self.before, self.after)


def diff_lines(before: str | None, after: str | None) -> list[str]:
    """A unified diff of two definitions, without its file header: a changed SQL trait shows
    the lines that changed, not two cut copies that look alike (the one diff every format shows)."""
    old, new = redact(before or "").splitlines(), redact(after or "").splitlines()
    return list(difflib.unified_diff(old, new, lineterm="", n=1))[2:] or [f" {line}" for line in new]


class ReviewWarning(BaseModel):
    kind: str = Field(
        description="sync_removed, sync_renamed, audience_renamed, match_changed, target_changed, "
        "key_changed, mode_changed, destination_changed, removal_above_limit, "
        "audience_below_minimum, field_not_seen, base_not_computed, base_invalid, lint:<rule>"
    )
    sync: str | None = None
    message: str


class SyncReview(BaseModel):
    sync: str
    status: ChangeStatus = Field(description="How the sync's own config changed.")
    renamed_from: str | None = None
    destination: str
    mode: str
    config_changes: list[ConfigChange] = Field(default_factory=list)
    upstream_changes: list[str] = Field(
        default_factory=list, description="Traits, audiences, entities or models it reads whose definition changed."
    )
    new_target: bool = Field(
        False, description="Rows go to another place or identity (to, object, audience, match, key): the effect is a first load there."
    )
    base_rows: int | None = Field(None, description="Rows the base config maps today (what it would keep delivered).")
    delivered: int | None = Field(None, description="Rows the state store records as delivered by this sync.")
    effect: SyncPlan | None = Field(
        None,
        description="The new config's rows diffed against the base config's rows on today's warehouse "
        "data (counts.delivered holds the base rows). None for a removed sync.",
    )
    warnings: list[ReviewWarning] = Field(default_factory=list)


class Review(BaseModel):
    base: str = Field(description="The revision compared with, e.g. 'main (merge base 1a2b3c4d5e)'.")
    base_commit: str
    head: str = "working tree"
    project_changes: list[ConfigChange] = Field(default_factory=list, description="warehouse, state, vars, destinations.")
    models: list[ModelChange] = Field(default_factory=list)
    syncs: list[SyncReview] = Field(default_factory=list, description="Syncs whose config or data effect changed.")
    unchanged_syncs: list[str] = Field(default_factory=list)
    warnings: list[ReviewWarning] = Field(default_factory=list, description="Every warning, project-wide first.")

    @property
    def failed(self) -> bool:
        """As `plan`: a run would stop (removals above max_removal) or rows would be rejected."""
        return any(s.effect is not None and (s.effect.blocked or s.effect.counts.rejected) for s in self.syncs)
