"""The destination plugin interface.

A destination receives batches of `RowOp`s and answers one `RowResult` per op. It knows
nothing of YAML, state or diffs: the runner decides *what* to send, the destination only
*how*. Raising `DestinationError` fails the whole batch (nothing in it is marked delivered,
so it is resent next run); per-row problems are `RowResult(ok=False, error=...)`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

OpKind = Literal["upsert", "insert", "update", "remove"]


# RowOp and RowResult are per-row objects on the hot path (a first load creates millions):
# slotted dataclasses cost a fraction of a pydantic model, and the runner builds them from
# already-validated data, so validation would buy nothing here.


class RequestBudget(Protocol):
    """The request slots of a vendor account (see `Destination.share_budget`)."""

    def take(self, interval: float) -> float:
        """Seconds to wait before the next call, at one call per `interval` seconds."""
        ...

    def pause(self, seconds: float) -> None:
        """No call to the account from anyone for `seconds` (the vendor said 429)."""
        ...

    def observe_daily(self, remaining: int, limit: int) -> None:
        """The vendor said how much of the account's daily quota remains (for `plan`)."""
        ...

    def flush(self) -> None:
        """Keep what was said and not yet kept (the destination closes)."""
        ...


def account_key(vendor: str, *parts: str) -> str:
    """A stable name for a vendor account (for its shared budget) that reveals nothing of the
    credentials it is made of: a digest."""
    return f"{vendor}:{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:24]}"


@dataclass(slots=True)
class RowOp:
    """One change to apply at the destination.

    upsert/insert/update write one model row (`key` is the sync's key). `previous` and
    `changed_fields` are set only when the destination already holds the row under the same
    identity (send only what changed), or when `rename` allows moving that record to the new
    identity; otherwise the op writes a record that may not exist yet, whole.

    remove releases one identity the destination holds and no live row maps to any more
    (`key` is that identity, `values` what the destination needs to find it: see
    `Destination.removal_values`); removing what is already gone succeeds.
    """

    kind: OpKind
    key: str
    values: dict[str, Any] = field(default_factory=dict)  # mapped fields (remove: see above)
    previous: dict[str, Any] | None = None  # what was delivered last time, under the same record
    changed_fields: list[str] | None = None  # fields that changed since `previous`
    dest_id: str | None = None  # the destination's id of that record, if known
    # The row's identity changed, no other row maps to the old one and nothing is held under
    # the new one: the destination may rename the record `dest_id` in place (say so with
    # RowResult.moved) instead of writing a new record for the new identity.
    rename: bool = False


@dataclass(slots=True)
class RowResult:
    key: str
    ok: bool
    dest_id: str | None = None
    error: str | None = None
    # The outcome cannot be known: an attempt may have been applied (its answer was lost, cut
    # or unreadable) and what followed does not say. The row counts as *possibly delivered*:
    # resent next run while it is in the model, removed by its identity when it leaves.
    unknown: bool = False
    # The record of the previous identity now holds the new one (a rename in place): the old
    # identity is gone from the destination and must not be removed.
    moved: bool = False
    # A removal the vendor cannot do now and that is not a failure (Mailchimp cannot untag a
    # member another sync archived; it keeps the tag and brings it back with the member):
    # the identity stays released and its removal is tried again next run, silently.
    deferred: bool = False


@dataclass(frozen=True)
class ValueTransform:
    """How a destination rewrites every mapped row before it is diffed, stored and sent.

    Ad platforms normalise and hash identifiers here, so the state store, the in-flight
    journal, plans and requests only ever hold hashes. `apply` raises ValueError to reject a
    row (the message names the field, never the value); `version` salts the row hashes, so
    changing the rules re-diffs every row.
    """

    version: str
    apply: Callable[[dict[str, Any]], dict[str, Any]]


IdentityModel = Literal["key", "record", "member"]
#: Joins the parts of an identity made of several match fields.
IDENTITY_SEPARATOR = "\x1f"


class SyncTarget(BaseModel):
    """What a destination needs to know about the sync it serves."""

    sync: str
    object: str | None = None
    mode: str
    match_fields: list[str] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=list)
    audience: str | None = None  # mode audience: the list/campaign/audience name

    @classmethod
    def of(cls, name: str, spec: Any) -> SyncTarget:
        """The target of sync `name` as its `SyncSpec` declares it (a field that is also a
        match field is sent as the match)."""
        return cls(
            sync=name,
            object=spec.object,
            mode=spec.mode,
            match_fields=list(spec.match),
            fields=[f for f in spec.fields if f not in spec.match],
            audience=spec.audience,
        )


class DestinationReport(BaseModel):
    """What a destination says about a run's calls: kept in the run record, exported as metrics."""

    requests: int = Field(0, description="HTTP requests made (retries included).")
    retries: int = Field(0, description="Requests repeated after a transient failure.")
    throttled: int = Field(0, description="429 / rate-limit answers received.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="The platform's own ids and figures for this run (a job or session id, "
        "num_received, API usage), as the platform reports them.",
    )


#: After a vendor said an account's daily quota is used up, the soonest a sync tries again: the
#: reset's time is not told (HubSpot: midnight in the account's time zone; Salesforce: a rolling
#: 24 hours), and a try too early costs one call of the next window.
DAILY_RETRY_SECONDS = 3600.0


class DestinationError(Exception):
    """The whole batch failed (after retries); nothing in it was acknowledged.

    `retryable=False` says retrying cannot help until someone changes something (a refused
    token, a missing permission, an unknown object or account): the run fails as *terminal*
    and the daemon pauses the sync instead of trying it at every slot. Anything that may pass
    by itself (a 5xx, a 429 or a connection failure after every retry) stays retryable.
    `retry_after`: the vendor said when trying again can help (a daily quota: after its reset),
    so the daemon waits at least that long, whatever its backoff."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class AmbiguousOutcome(DestinationError):
    """A request that must not run twice (a create) failed in a way that leaves open whether
    the vendor acted: look before trying again."""


def find_or_create(find: Callable[[], T | None], create: Callable[[], T], *, attempts: int) -> T:
    """An object that must exist once at the vendor (an audience, a campaign): `find` it, else
    `create` it. A create whose outcome is unknown (`AmbiguousOutcome`) is not retried
    blindly: the next attempt looks again first. After `attempts` creates, the last raises."""
    for attempt in range(1, attempts + 1):
        if (found := find()) is not None:
            return found
        try:
            return create()
        except AmbiguousOutcome:
            if attempt >= attempts:
                raise
    raise AssertionError("attempts must be at least 1")


def identity_text(value: Any) -> str:
    """A match value as text, as SQL's CAST(... AS VARCHAR) writes the usual types."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def record_identity(values: dict[str, Any], fields: list[str], fold: bool) -> str:
    """The identity of a "record" destination's row: its match values, joined."""
    if fold:
        return IDENTITY_SEPARATOR.join(identity_text(values.get(f)).strip().lower() for f in fields)
    return IDENTITY_SEPARATOR.join(identity_text(values.get(f)) for f in fields)


class ConfigError(Exception):
    """The destination cannot serve this sync as configured (caught by `validate`)."""


class Destination(ABC):
    """Base class of every destination plugin."""

    type: ClassVar[str]
    #: Modes this destination can serve.
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "update", "insert", "mirror", "audience"})
    #: Largest batch the API accepts; the runner never sends more.
    max_batch_size: ClassVar[int] = 1000
    #: Pushes the runner may have in flight at once (each from its own thread; `push` is
    #: always called from a thread other than the one that called `open`). Above 1, `push`
    #: must be thread-safe.
    pushes_in_flight: ClassVar[int] = 1
    #: An ad platform: identifiers must leave the process normalised and hashed.
    ad_platform: ClassVar[bool] = False
    #: Smallest audience the platform will serve (plan warns below it); None: no minimum.
    min_audience_size: ClassVar[int | None] = None
    #: What the destination keeps records under (see `identities`):
    #: "key": the sync's key (a webhook receiver keys rows by `key`);
    #: "record": one record per identity, the `match` values; two live rows that map to one
    #: record conflict (the plan rejects them, or the sync's `identity_conflicts` rule decides);
    #: "member": members known by identifiers that several people may share (ad audiences):
    #: a shared identifier is normal, and is removed only when no live row holds it.
    identity_model: ClassVar[IdentityModel] = "key"
    #: "record": whether the destination compares match values without case and surrounding
    #: spaces (emails at HubSpot and Mailchimp) or exactly (a file's columns).
    identity_folds_case: ClassVar[bool] = False
    #: Changes when `identities` changes: the identities of delivered rows are then recomputed.
    identity_version: ClassVar[str] = "1"
    #: The destination may rename a record in place when a row's identity changes (RowOp.rename).
    renames_in_place: ClassVar[bool] = False

    def __init__(self, name: str, spec: Any, project_dir: str) -> None:
        self.name = name
        self.spec = spec
        self.project_dir = project_dir

    def batch_size(self, requested: int | None) -> int:
        configured = getattr(self.spec, "batch_size", None) or self.max_batch_size
        return min(requested or configured, self.max_batch_size)

    def check_target(self, target: SyncTarget) -> None:
        """Raise ConfigError when this destination cannot serve `target` (no network)."""
        if target.mode not in self.modes:
            raise ConfigError(
                f"destination type {self.type!r} does not support mode {target.mode!r} (supported: {', '.join(sorted(self.modes))})"
            )

    def check_remote(self, target: SyncTarget) -> list[str]:
        """Check credentials and fields against the live API; return problems found."""
        return []

    def hashed_fields(self, target: SyncTarget) -> frozenset[str]:
        """The mapped fields this destination normalises and hashes before they leave the
        process (ad platforms); every other mapped field is sent as it is."""
        return frozenset()

    def value_transform(self, target: SyncTarget) -> ValueTransform | None:
        """A rewrite of every mapped row before it is diffed, stored and sent (ad platforms:
        normalise and hash identifiers); None: rows are stored and sent as mapped."""
        return None

    def identities(self, target: SyncTarget, key: str, values: dict[str, Any]) -> tuple[str, ...]:
        """The identities the destination keeps this row's record(s) under: what a removal
        must not touch while any live row still maps to it. Runs per row: keep it cheap."""
        if self.identity_model == "key":
            return (key,)
        if self.identity_model == "record":
            return (record_identity(values, target.match_fields, self.identity_folds_case),)
        raise NotImplementedError(f"{type(self).__name__} keeps members: it must define identities()")

    def identity_sql(
        self, target: SyncTarget, match_sql: Mapping[str, str | None], as_text: Callable[[str], str] = lambda e: f"CAST({e} AS VARCHAR)"
    ) -> str | None:
        """A row's record identity as SQL over the model, given each match field's SQL (None
        where a field maps a template): how the plan finds rows that would share a record.
        Equal here must mean equal for `identities`; None: found by mapping the rows instead.
        `as_text(expr)` is the warehouse's cast of `expr` to its string type."""
        if self.identity_model != "record" or any(match_sql.get(f) is None for f in target.match_fields):
            return None
        parts = [as_text(match_sql[f] or "") for f in target.match_fields]
        if self.identity_folds_case:
            parts = [f"LOWER(TRIM({p}))" for p in parts]
        return f" || '{IDENTITY_SEPARATOR}' || ".join(parts)

    def removal_values(self, target: SyncTarget, identity: str, values: dict[str, Any]) -> dict[str, Any]:
        """What a remove op for `identity` carries, from the last values delivered under it."""
        return values

    def requests_per_second(self) -> float | None:
        """The request rate this destination keeps to (its client-side limit), if any."""
        rate = getattr(self.spec, "requests_per_second", None)
        return float(rate) if rate else None

    def budget_account(self) -> str | None:
        """The vendor account whose quota this destination's calls count against (see
        `account_key`), or None when the vendor meters nothing per account that we track."""
        return None

    def estimated_calls(self, target: SyncTarget, writes: int, removals: int) -> int | None:
        """About how many API calls a run writing `writes` rows and removing `removals`
        records makes, for `plan` to weigh against the account's daily quota (None: unknown)."""
        return None

    def share_budget(self, budget_for: Callable[[str], RequestBudget]) -> None:  # noqa: B027 - an optional hook
        """Called before `open` in a run that writes state: `budget_for(account)` is the
        request budget of a vendor account, shared by every sync and process that writes to it
        through one state store (activation/state/budget.py). A destination whose vendor meters
        requests per account takes its call slots from it."""

    def open(self, target: SyncTarget) -> None:  # noqa: B027 - an optional hook, not abstract
        """Called once before the first batch of a sync."""

    @abstractmethod
    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        """Apply `ops`; return one result per op, in any order, keyed by `RowOp.key`."""

    def report(self) -> DestinationReport:
        """Counters and platform ids of the calls made since `open` (read before `close`)."""
        return DestinationReport()

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Called once after the last batch (also after a failure)."""
