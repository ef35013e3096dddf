"""What Meta Custom Audiences and Google Customer Match share: a sync is an audience of people
known by hashed identifiers.

- Only `mode: audience`; the audience is named by the sync's `audience:` (a name, or the
  platform's numeric id).
- Every mapped field (`match` and `fields`) is one of the platform's identifiers, checked at
  `validate` time with a "did you mean".
- Rows are normalised and hashed by `value_transform` before they are diffed, stored or
  sent (see `identifiers`): the state store keeps hashes, never the raw email or phone.
- A member is known by identifiers that several people may share (an office phone, a first
  name): each identifier is an identity of its own (`identities`). A row's identifiers are
  added; an identifier is removed only when no member holds it any more, one identifier per
  removal row (the runner releases them, see `activation.delivery`).
- `push` refuses to send a hashed field that is not a SHA-256 digest: raw identifiers cannot
  leave the process even if a caller skips the transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from activation.destinations.base import ConfigError, Destination, IdentityModel, RowOp, RowResult, SyncTarget, ValueTransform
from activation.destinations.identifiers import Identifiers, is_sha256_hex


@dataclass(frozen=True, slots=True)
class Member:
    """One person to add or remove: the row's key and its identifiers as sent."""

    key: str
    values: dict[str, Any]


class AdAudienceDestination(Destination):
    modes: ClassVar[frozenset[str]] = frozenset({"audience"})
    ad_platform: ClassVar[bool] = True
    identity_model: ClassVar[IdentityModel] = "member"
    #: Identifiers the platform matches only together (Google's address: name, country and
    #: postal code): one identity, removed only all at once.
    combined: ClassVar[tuple[str, ...]] = ()
    identifiers: ClassVar[Identifiers]
    #: The platform and what it calls an audience, for messages.
    platform_name: ClassVar[str]
    audience_noun: ClassVar[str] = "audience"

    def fields(self, target: SyncTarget) -> list[str]:
        """The mapped identifiers in the platform's own order (stable across runs)."""
        mapped = set(target.match_fields) | set(target.fields)
        return [f for f in self.identifiers.by_name if f in mapped]

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if not target.audience:
            raise ConfigError(f"a {self.type} sync needs `audience:`, the {self.audience_noun}'s name (or numeric id)")
        if target.object:
            raise ConfigError(f"a {self.type} sync takes no `object:` (the {self.audience_noun} is named by `audience:`)")
        if not target.match_fields:
            raise ConfigError(f"a {self.type} sync needs `match:`, an identifier every member has (e.g. match: {{email: email}})")
        problems = [p for f in [*target.match_fields, *target.fields] if (p := self.identifiers.problem(f))]
        if problems:
            raise ConfigError("; ".join(problems))

    def hashed_fields(self, target: SyncTarget) -> frozenset[str]:
        return self.identifiers.hashed([*target.match_fields, *target.fields])

    def value_transform(self, target: SyncTarget) -> ValueTransform:
        apply = self.identifiers.transform(self.fields(target), invalid=self.spec.invalid_identifiers, region=self.spec.phone_region)
        return ValueTransform(self.identifiers.version, apply)

    # -- identities ---------------------------------------------------------------------

    def identities(self, target: SyncTarget, key: str, values: dict[str, Any]) -> tuple[str, ...]:
        """Each identifier the member is sent with ("email:<sha256>"); the `combined` ones as
        one ("first_name+last_name+…:<v>|<v>|…") when the row has them all."""
        out = [f"{f}:{v}" for f in self.fields(target) if f not in self.combined and (v := values.get(f)) not in (None, "")]
        parts = [values.get(f) for f in self.combined]
        if self.combined and all(p not in (None, "") for p in parts):
            out.append("+".join(self.combined) + ":" + "|".join(str(p) for p in parts))
        return tuple(out)

    def removal_values(self, target: SyncTarget, identity: str, values: dict[str, Any]) -> dict[str, Any]:
        """The one identifier (or combined set) to remove; every other one stays unknown."""
        fields, _, value = identity.partition(":")
        if "+" in fields:
            return dict(zip(fields.split("+"), value.split("|"), strict=False))
        return {fields: value}

    # -- turning ops into removals and additions ---------------------------------------

    def split(self, target: SyncTarget, ops: list[RowOp]) -> tuple[list[Member], list[Member], list[RowResult]]:
        """(members to remove, members to add, rows refused)."""
        hashed = self.hashed_fields(target)
        removes: list[Member] = []
        adds: list[Member] = []
        refused: list[RowResult] = []
        for op in ops:
            bad = _unhashed(op.values, hashed)
            if bad:
                refused.append(RowResult(op.key, False, error=f"field {bad!r} is not a SHA-256 digest; refusing to send it"))
            elif op.kind == "remove":
                removes.append(Member(op.key, op.values))
            else:
                adds.append(Member(op.key, op.values))
        return removes, adds, refused


def _unhashed(values: dict[str, Any] | None, hashed: frozenset[str]) -> str | None:
    """The first hashed field whose value is not a digest (or empty), if any."""
    for f in hashed:
        v = (values or {}).get(f)
        if v not in (None, "") and not is_sha256_hex(v):
            return f
    return None


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
