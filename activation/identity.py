"""A sync's rows as its destination keeps them: by identity, not by the sync's key.

`SyncIdentities` binds a destination's identity rules to one sync (what `identities` a row's
values map to, what a removal of one carries); the state keeps each delivered row's claims
and the identities released (see `state/identities.py`). `ReleasePlan` is the dry run's view
of the end of a run: which released identities no live row will claim any more, so a plan
shows the removals the run will make at the destination, and no more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from activation.destinations.base import Destination, SyncTarget
from activation.state import identities as ids
from activation.state.store import StateStore


@dataclass(frozen=True)
class SyncIdentities:
    destination: Destination
    target: SyncTarget

    @property
    def version(self) -> str:
        """Changes with anything that changes a row's identities: claims are then recomputed."""
        d = self.destination
        return f"{d.type}:{d.identity_model}:{d.identity_version}:{int(d.identity_folds_case)}:{','.join(self.target.match_fields)}"

    @property
    def shares_records(self) -> bool:
        """Two live rows with one identity would write one record (not ad members' identifiers)."""
        return self.destination.identity_model == "record"

    @property
    def record_follows_row(self) -> bool:
        """A row's record keeps its id when the row's identity changes (the destination renames
        it in place, upsert and mirror modes): a run that died after sending a new identity
        leaves the record under either identity, and its id still names it."""
        return self.destination.renames_in_place and self.target.mode in ("upsert", "mirror")

    def identify(self, key: str, values: dict[str, Any]) -> tuple[str, ...]:
        return self.destination.identities(self.target, key, values)

    def removal(self, identity: str, values: dict[str, Any]) -> dict[str, Any]:
        return self.destination.removal_values(self.target, identity, values)


@dataclass
class ReleasePlan:
    """What a run's release would remove, worked out by a dry run that writes nothing.

    Candidates are the identities rows stop claiming (rows that leave, identities that change)
    and those already waiting in the releases; one is removed unless a live row claims it after
    the run: a row this run sends under it, or a delivered row the run leaves alone. Memory
    grows with the rows that leave or change, not with the model.
    """

    state: StateStore
    sync: str
    rules: SyncIdentities
    candidates: dict[str, str | None] = field(default_factory=dict)  # identity -> a row that held it
    moved: set[str] = field(default_factory=set)  # rows whose claims this run replaces or drops
    sent: set[int] = field(default_factory=set)  # hash() of identities sent by this run (changes only)

    def leaves(self, key: str, values: dict[str, Any]) -> None:
        self.moved.add(key)
        for i in self.rules.identify(key, values):
            self.candidates.setdefault(i, key)

    def changes(self, key: str, before: dict[str, Any] | None, identities: tuple[str, ...]) -> None:
        """A row sent by the run, under `identities` (claimed before: under `before`'s)."""
        self.sent.update(hash(i) for i in identities)
        if before is None:
            return
        old = self.rules.identify(key, before)
        if old != identities:
            self.moved.add(key)
            for i in old:
                if i not in identities:
                    self.candidates.setdefault(i, key)

    def count(self) -> int:
        """How many identities the run would release."""
        for batch in ids.releasable(self.state, self.sync):
            for r in batch:
                self.candidates.setdefault(r.identity, r.row_key)
        if not self.candidates:
            return 0
        # hash(): equal identities hash equal, so a hit is a claim by this run (a collision
        # would only hide a removal from the plan, never make the run remove anything)
        unsent = [i for i in self.candidates if hash(i) not in self.sent]
        kept: set[str] = set()
        for i in range(0, len(unsent), 5000):
            for identity, holders in ids.claimants(self.state, self.sync, unsent[i : i + 5000]).items():
                if holders - self.moved:  # a delivered row this run leaves alone holds it
                    kept.add(identity)
        return len(unsent) - len(kept)


def mapped_identities(rows: Iterator[tuple[str, dict[str, Any]]], map_row: Any, rules: SyncIdentities) -> Iterator[tuple[str, str]]:
    """(key, identity) of every model row, for a sync whose match fields are templates (the
    identity of a record cannot be computed in SQL then); rows that cannot be mapped are left
    out (the plan rejects them for their own reason)."""
    from activation.diff.mapping import MappingError

    for key, row in rows:
        try:
            values = map_row(row)
        except MappingError:
            continue
        for identity in rules.identify(key, values):
            yield key, identity
