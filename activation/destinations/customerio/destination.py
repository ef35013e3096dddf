"""Customer.io people and manual segments over the Track API, through the official SDK (customerio).

One destination is one Customer.io workspace (its Track API site id and key, in its region).
People are identified the way the workspace identifies them (`identify_by: id | email`; the
sync's `match:` names that field); every other mapped field is a person attribute.

- `upsert` / `mirror`: people are written with `identify` operations in `POST /api/v2/batch`
  (the SDK's `batch`: up to `batch_size` people and 500 KB per call; one call, not one
  `PUT /api/v1/customers/{id}` per person). Customer.io upserts by identifier, so a call resent
  after a lost answer writes the same values again, never a second person. A person written
  before under the same identity gets only its changed attributes. `mirror` deletes a person
  whose row left the model with `delete` operations in the same batch endpoint (Customer.io
  deletes the whole profile, and its membership of every segment); deleting a person already
  gone succeeds.
- `audience`: membership of a manual segment (`segment_id:`, or the sync's `audience:` when it
  is the segment's number; the segment must exist: Customer.io creates segments only in its
  UI or App API). Entering rows are identified (with their fields), then added with
  `POST /api/v1/segments/{id}/add_customers`; leaving rows are removed with `remove_customers`
  (the person stays). The SDK has no segment calls: those go through the shared HTTP client
  (`?id_type=email` in email workspaces), up to `batch_size` ids per call.
- Values are typed as Customer.io stores attributes: strings, numbers, booleans, lists and
  objects as JSON has them; timestamps and dates as UNIX seconds (Customer.io's convention for
  `created_at` and date attributes; a time without a zone is UTC); NULL removes the attribute.
- A 207 names refused operations by `batch_index` (`reason`, `field`, `message`): those rows
  are rejected with Customer.io's reason (tried again next run), the others are delivered; an
  error naming no valid index, or an answer that cannot be read, leaves the rows of the call
  possibly delivered. A refusal answering a retry after a lost answer is possibly delivered
  too. Another 4xx naming no row fails the batch; 401/403 stop the sync as terminal. 429
  (Retry-After honoured when sent), 5xx and dropped connections are retried with backoff.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

from activation.destinations.base import (
    ConfigError,
    Destination,
    DestinationError,
    DestinationReport,
    IdentityModel,
    RowOp,
    RowResult,
    SyncTarget,
    identity_text,
    record_identity,
)
from activation.destinations.customerio.client import TrackClient, error_text
from activation.destinations.http import rejected, unreadable
from activation.destinations.pacing import json_chunks
from activation.project.secrets import redact, resolve_env, scrub_personal_data

#: Customer.io's limit on a /api/v2/batch request body (500 KB); we keep a margin under it.
MAX_BODY = 500_000
ITEMS_BYTES = MAX_BODY - 20  # what the operations of one batch may take: its envelope is ~20 bytes
#: Attributes a sync may not map: Customer.io sets or reserves them.
RESERVED = frozenset({"cio_id", "anonymous_id", "_update", "cio_relationships"})
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$")


def unix_seconds(when: datetime) -> int:
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
    return int(when.timestamp())


def customerio_value(value: Any) -> Any:
    """A model value as Customer.io types an attribute: numbers, booleans, lists and objects as
    JSON has them; timestamps and dates (ISO-8601 text too) as UNIX seconds; text as it is."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return None if value != value else value  # NaN: no value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return unix_seconds(value)
    if isinstance(value, date):
        return unix_seconds(datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        if _ISO.match(value):
            text = value.replace("Z", "+00:00").replace(" ", "T", 1)
            if len(text) > 19 and text[-5] in "+-" and text[-4:].isdigit():
                text = f"{text[:-2]}:{text[-2:]}"  # +0200 -> +02:00
            try:
                return unix_seconds(datetime.fromisoformat(text))
            except ValueError:
                return value
        return value
    if isinstance(value, (list, tuple)):
        return [customerio_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): customerio_value(v) for k, v in value.items()}
    return str(value)


class CustomerioDestination(Destination):
    type: ClassVar[str] = "customerio"
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror", "audience"})
    max_batch_size: ClassVar[int] = 1000
    identity_model: ClassVar[IdentityModel] = "record"  # a person is their id (exactly) or email (without case)
    identity_folds_case: ClassVar[bool] = False  # by id; identities() folds emails

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self.client = TrackClient(name, spec, sleep=sleep)
        self.counts: dict[str, int] = {}

    @property
    def key(self) -> str:
        return str(self.spec.identify_by)

    def _fold(self) -> bool:
        return self.key == "email"

    # -- configuration ------------------------------------------------------------------

    def segment_id(self, target: SyncTarget) -> str | None:
        if self.spec.segment_id:
            return resolve_env(self.spec.segment_id).strip()
        return (target.audience or "").strip() or None

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if target.match_fields != [self.key]:
            raise ConfigError(
                f"this customerio destination identifies people by {self.key} (identify_by): use `match: {{{self.key}: <column>}}`"
            )
        if target.object not in (None, "people"):
            raise ConfigError(f"a customerio destination writes people; `object:` must be omitted or 'people', not {target.object!r}")
        if bad := sorted(set(target.fields) & RESERVED):
            raise ConfigError(f"customerio attributes {', '.join(bad)} are set by Customer.io: map another name")
        if target.mode == "audience":
            seg = self.spec.segment_id if self.spec.segment_id else target.audience
            if not seg or (not seg.startswith("${") and not seg.strip().isdigit()):
                raise ConfigError(
                    "mode audience needs a Customer.io manual segment id: the destination's `segment_id:` or the sync's "
                    f"`audience:` as the segment's number (got {seg!r}); create the manual segment in Customer.io first"
                )
        url = self.spec.url
        if url and not url.startswith("${") and not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"customerio url must start with https:// (or http:// for a local emulator), got {url!r}")

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.spec.batch_size, self.spec.batch_size, self.max_batch_size)

    def identities(self, target: SyncTarget, key: str, values: dict[str, Any]) -> tuple[str, ...]:
        return (record_identity(values, target.match_fields, self._fold()),)

    def identity_sql(
        self, target: SyncTarget, match_sql: Mapping[str, str | None], as_text: Callable[[str], str] = lambda e: f"CAST({e} AS VARCHAR)"
    ) -> str | None:
        expr = match_sql.get(self.key)
        if expr is None:
            return None
        return f"LOWER(TRIM({as_text(expr)}))" if self._fold() else as_text(expr)

    def _ident(self, values: dict[str, Any]) -> str:
        text = identity_text(values.get(self.key))
        return text.strip() if self._fold() else text

    # -- push -------------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        results: list[RowResult] = []
        writes: list[tuple[RowOp, dict[str, Any]]] = []
        for op in ops:
            if op.kind == "remove":
                continue
            if not self._ident(op.values):
                results.append(RowResult(key=op.key, ok=False, error=f"no {self.key}: Customer.io needs one to identify a person"))
            else:
                writes.append((op, self._identify(op)))
        leaving = [op for op in ops if op.kind == "remove" and self._ident(op.values)]
        results += [RowResult(key=op.key, ok=True) for op in ops if op.kind == "remove" and not self._ident(op.values)]
        written: list[RowResult] = []
        for chunk in json_chunks(writes, self.batch_size(None), ITEMS_BYTES):
            written += self._batch(chunk, "identified")
        if target.mode != "audience":
            gone = [(op, self._operation(op, "delete")) for op in leaving]
            for chunk in json_chunks(gone, self.batch_size(None), ITEMS_BYTES):
                results += self._batch(chunk, "deleted")
            return results + written
        segment = self.segment_id(target) or ""
        entering = {r.key for r in written if r.ok or r.unknown}
        ok_writes = [op for op, _ in writes if op.key in entering]
        membership = {r.key: r for r in self._members(segment, "add_customers", ok_writes)}
        results += [membership.get(r.key, r) if r.ok else r for r in written]
        results += self._members(segment, "remove_customers", leaving)
        return results

    def _operation(self, op: RowOp, action: str) -> dict[str, Any]:
        return {"type": "person", "identifiers": {self.key: self._ident(op.values)}, "action": action}

    def _identify(self, op: RowOp) -> dict[str, Any]:
        """An identify operation: the person's identifier and attributes (only the changed ones
        when Customer.io holds this person already under the same identity)."""
        known = op.previous is not None and op.changed_fields is not None
        names = op.changed_fields if known and op.changed_fields is not None else list(op.values)
        operation = self._operation(op, "identify")
        operation["attributes"] = {f: customerio_value(op.values.get(f)) for f in names if f != self.key and f in op.values}
        return operation

    def _batch(self, chunk: list[tuple[RowOp, dict[str, Any]]], counted: str) -> list[RowResult]:
        reply = self.client.batch([operation for _, operation in chunk])
        if not 200 <= reply.status < 300:
            # a 4xx naming no operation (malformed, too large): nothing was applied
            raise DestinationError(
                redact(f"Customer.io refused POST /api/v2/batch: HTTP {reply.status} {error_text(reply.body, '(no reason given)')}"),
                retryable=False,
            )
        body = reply.body
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(body, dict) or (errors is not None and not isinstance(errors, list)) or (reply.status == 207 and not errors):
            return [unreadable(op.key, f"HTTP {reply.status} from POST /api/v2/batch") for op, _ in chunk]
        named: dict[int, list[str]] = {}
        unindexed = 0
        for e in errors or []:
            index = e.get("batch_index") if isinstance(e, dict) else None
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(chunk):
                named.setdefault(index, []).append(_reason(e))
            else:
                unindexed += 1
        out: list[RowResult] = []
        for i, (op, operation) in enumerate(chunk):
            if i in named:
                out.append(rejected(op.key, "; ".join(named[i]), after_ambiguous=reply.after_ambiguous))
            elif unindexed:
                why = f"Customer.io reported {unindexed} error(s) naming no operation of this call: which rows failed is not known"
                out.append(RowResult(key=op.key, ok=False, unknown=True, error=why))
            else:
                ident = operation["identifiers"][self.key]
                out.append(RowResult(key=op.key, ok=True, dest_id=None if op.kind == "remove" else ident))
        self.counts[counted] = self.counts.get(counted, 0) + sum(r.ok for r in out)
        return out

    def _members(self, segment: str, action: str, ops: list[RowOp]) -> list[RowResult]:
        """add_customers / remove_customers in calls of `batch_size` ids."""
        out: list[RowResult] = []
        query = "?id_type=email" if self._fold() else ""
        path = f"/api/v1/segments/{quote(segment, safe='')}/{action}{query}"
        size = self.batch_size(None)
        for start in range(0, len(ops), size):
            chunk = ops[start : start + size]
            reply = self.client.call("POST", path, {"ids": [self._ident(op.values) for op in chunk]})
            if reply.status == 404:
                raise DestinationError(
                    f"Customer.io has no manual segment {segment} ({action}: HTTP 404 {error_text(reply.body)}); "
                    "create it in Customer.io (Segments → Create segment → Manual) and set its id",
                    retryable=False,
                )
            if not 200 <= reply.status < 300:
                raise DestinationError(
                    redact(f"Customer.io refused {action} for segment {segment}: HTTP {reply.status} {error_text(reply.body)}"),
                    retryable=False,
                )
            if reply.body is ValueError:
                out += [unreadable(op.key, f"HTTP {reply.status} from {action}") for op in chunk]
                continue
            out += [RowResult(key=op.key, ok=True, dest_id=None if op.kind == "remove" else self._ident(op.values)) for op in chunk]
            self.counts[action] = self.counts.get(action, 0) + len(chunk)
        return out

    # -- validate --remote ------------------------------------------------------------------

    def check_remote(self, target: SyncTarget) -> list[str]:
        """The credentials and their region (`GET /api/v1/accounts/region`, the Track API's one
        read). Attributes and segments cannot be read with Track API credentials (the App API
        holds them), so neither is checked."""
        try:
            reply = self.client.call("GET", "/api/v1/accounts/region")
        except DestinationError as e:
            return [str(e)]
        if reply.status != 200 or not isinstance(reply.body, dict):
            return [f"Customer.io's answer to GET /api/v1/accounts/region: HTTP {reply.status} {error_text(reply.body)}"]
        region = str(reply.body.get("data_center") or "").lower()
        if not self.spec.url and region and region != self.spec.region:
            return [f"this workspace is in Customer.io's {region.upper()} region: set `region: {region}` (it is {self.spec.region!r})"]
        return []

    def report(self) -> DestinationReport:
        requests, retries, throttled = self.client.counters()
        return DestinationReport(requests=requests, retries=retries, throttled=throttled, details=dict(self.counts))

    def close(self) -> None:
        self.client.close()


def _reason(error: dict[str, Any]) -> str:
    """Customer.io's reason for refusing one operation (no personal data kept)."""
    reason, field, message = (str(error.get(k) or "").strip() for k in ("reason", "field", "message"))
    head = " ".join(x for x in (reason, field) if x) or "refused"
    return scrub_personal_data(f"{head}: {message}" if message else head)[:300]
