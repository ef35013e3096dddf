"""Webhook destination: POST each batch as one JSON document to a URL you own.

Body::

    {"sync": ..., "object": ..., "mode": ..., "batch_id": "<sha256 hex>",
     "rows": [{"op": "upsert", "key": "42", "version": 1764921600123456, "fields": {...},
               "previous": {...} | null, "changed": [...] | null}, ...]}

sent with ``Idempotency-Key: <uuid>`` (one per push, the same across its retries) so a
receiver can drop a request it already applied. ``version`` orders the writes of a row: it is
larger for every later write of the same key, so a receiver keeping the version it holds can
drop an older write that arrives late (see `Versions`).

The receiver answers 2xx, optionally with ``{"results": [{"key": ..., "ok": true|false,
"error": ..., "id": ..., "status": ...}]}`` for per-row outcomes. A remove answered "not
found" (``"status": 404`` or ``"not_found"``) is done: the record is gone, which was the goal.
A 2xx whose body is not JSON, or whose results are malformed, acknowledges nothing: its rows
are possibly delivered. So is a row a refusal answers when an earlier attempt of the request
may have been applied (`Answer.rejected`). A 4xx rejects the batch's rows (per row when the
body carries results); 401/403 stop the sync; 5xx, 408, 429 and network errors are retried
by `HttpClient`, then raise `DestinationError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from activation.destinations.base import (
    ConfigError,
    Destination,
    DestinationError,
    DestinationReport,
    RowOp,
    RowResult,
    SyncTarget,
)
from activation.destinations.http import (
    HttpClient,
    RetryPolicy,
    json_body,
    rejected,
    safe_url,
    unreadable,
)
from activation.project.secrets import MissingSecret, resolve_env
from activation.values import to_jsonable

UNREPORTED = "receiver did not report this row (it may have applied it)"
MALFORMED = "receiver sent malformed results (expected a list)"
NOT_FOUND = frozenset({"404", "not_found", "not found", "notfound"})


class Versions:
    """Row versions: microseconds since the epoch when the batch was built, strictly
    increasing within the process (a batch never reuses or goes below the last one).
    Microseconds, not nanoseconds: they stay below 2**53, so a receiver that parses JSON
    numbers as doubles (JavaScript) compares them exactly.

    A later write of a row is always built later: in the same run, or in a later run (one run
    per sync at a time: the lease). So its version is larger, as long as the clocks of the
    hosts running the syncs do not step back by more than the time between two runs of a
    sync. A retry of a request resends its versions unchanged. Nothing is stored: the clock
    is the sequence."""

    def __init__(self, clock: Callable[[], int] = lambda: time.time_ns() // 1000) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._clock(), self._last + 1)
            return self._last


#: One per process: two destinations sending the same sync (a daemon reloading its
#: project) still never reuse a version.
VERSIONS = Versions()


def _json_default(value: Any) -> Any:
    """JSON for values the stdlib encoder refuses (rows are normally JSON-safe already): the
    shared rule (activation.values), so a Decimal keeps every digit here too."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)  # sorted: canonical JSON must not depend on set order
    if callable(getattr(value, "item", None)):  # numpy / pandas scalars
        return value.item()
    return to_jsonable(value)


def _finite(value: Any) -> Any:
    """Copy of `value` with NaN/inf floats as null (they are not valid JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Deterministic, valid JSON: sorted keys, no spaces, no NaN."""
    options: dict[str, Any] = dict(
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
        allow_nan=False,
    )
    try:
        return json.dumps(value, **options)
    except ValueError:  # NaN/inf somewhere: take the slow path once
        return json.dumps(_finite(value), **options)


def batch_id(target: SyncTarget, rows_json: str) -> str:
    """sha256 of sync, object, mode and the canonical rows: names the batch's content.

    Sync/object/mode are included so two syncs sending identical rows to the same URL do
    not share an id.
    """
    head = canonical_json([target.sync, target.object, target.mode])
    return hashlib.sha256(f"{head}\n{rows_json}".encode()).hexdigest()


def _entry_ok(entry: dict[str, Any]) -> bool:
    if "ok" in entry:
        return entry["ok"] is True
    if "status" in entry:
        return str(entry["status"]).lower() in ("ok", "success", "200", "201", "204")
    return not entry.get("error")


def _not_found(entry: dict[str, Any]) -> bool:
    return any(str(entry.get(f, "")).lower() in NOT_FOUND for f in ("status", "code"))


def parse_results(
    ops: Sequence[RowOp],
    body: Any,
    redact: Callable[[str], str] = lambda s: s,
    *,
    after_ambiguous: bool = False,
) -> list[RowResult]:
    """Per-row outcomes from a JSON-decoded answer (None: nothing per row, all acknowledged).

    `after_ambiguous`: an earlier attempt of the request may have been applied, so a
    refusal now leaves the row possibly delivered (see `http.rejected`)."""
    if not isinstance(body, dict) or "results" not in body:
        return [RowResult(key=op.key, ok=True, dest_id=op.dest_id) for op in ops]
    results = body["results"]
    if not isinstance(results, list):  # unreadable: the receiver may have applied any row
        return [unreadable(op.key, MALFORMED) for op in ops]
    reported = {str(entry["key"]): entry for entry in results if isinstance(entry, dict) and entry.get("key") is not None}
    out: list[RowResult] = []
    for op in ops:
        entry = reported.get(op.key)
        if entry is None:  # not said either way: possibly delivered (resent next run)
            out.append(RowResult(key=op.key, ok=False, unknown=True, error=UNREPORTED))
            continue
        dest_id = entry.get("id")
        dest = str(dest_id) if dest_id is not None else op.dest_id
        if _entry_ok(entry) or (op.kind == "remove" and _not_found(entry)):
            # a remove answered "not found": the record is gone, which is what it asked for
            out.append(RowResult(key=op.key, ok=True, dest_id=dest))
            continue
        error = redact(str(entry.get("error") or "rejected by receiver"))[:500]
        out.append(rejected(op.key, error, after_ambiguous=after_ambiguous))
    return out


class WebhookDestination(Destination):
    """POSTs batches to `spec.url` (a `WebhookDestinationSpec`)."""

    type = "webhook"
    max_batch_size = 100_000

    def __init__(
        self,
        name: str,
        spec: Any,
        project_dir: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(name, spec, project_dir)
        self._sleep = sleep
        self._http: HttpClient | None = None
        self._url: str | None = None
        # Shown in messages: the URL as written, so ${ENV} parts stay unresolved.
        self.display_url = safe_url(spec.url)

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        url = self.spec.url
        if not url.startswith("${") and not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"webhook url must start with http:// or https://, got {self.display_url!r}")

    @property
    def http(self) -> HttpClient:
        """The transport, created on first use (resolving ${ENV} in url and headers)."""
        if self._http is None:
            headers = {"Content-Type": "application/json"}
            try:
                headers.update({k: resolve_env(v) for k, v in self.spec.headers.items()})
                self._url = resolve_env(self.spec.url)
            except MissingSecret as exc:
                raise ConfigError(f"destination {self.name!r}: {exc}") from None
            self._http = HttpClient(
                timeout=self.spec.timeout_seconds,
                retry=RetryPolicy(max_retries=self.spec.max_retries),
                headers=headers,
                sleep=self._sleep,
            )
        return self._http

    def open(self, target: SyncTarget) -> None:
        self.http  # noqa: B018 - fail early on a missing ${ENV}, before any batch

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        if not ops:
            return []
        http = self.http
        version = VERSIONS.next()
        rows = [
            {
                "op": op.kind,
                "key": op.key,
                "version": version,
                "fields": op.values,
                "previous": op.previous,
                "changed": op.changed_fields,
            }
            for op in ops
        ]
        rows_json = canonical_json(rows)  # serialised once: hashed and sent as-is
        bid = batch_id(target, rows_json)
        body = (
            f'{{"sync":{canonical_json(target.sync)},"object":{canonical_json(target.object)},'
            f'"mode":{canonical_json(target.mode)},"batch_id":"{bid}","rows":{rows_json}}}'
        )
        url = self._url if self._url is not None else resolve_env(self.spec.url)
        # The Idempotency-Key is per push, reused by the transport's retries of that push:
        # a content hash would collide when a value flips A→B→A→B, and a receiver that
        # remembers keys would then drop a real change.
        answer = http.send(
            "POST",
            url,
            content=body.encode("utf-8"),
            headers={"Idempotency-Key": uuid.uuid4().hex},
            display_url=self.display_url,
        )
        response = answer.response
        status = response.status_code
        if 200 <= status < 300:
            if not response.content.strip():
                return parse_results(ops, None)  # nothing per row: the 2xx acknowledges all
            try:
                payload = json_body(response)
            except ValueError:
                # Cut or garbled: whatever it said per row is lost, and it may have refused
                # some rows. Nothing is acknowledged; every row is possibly delivered.
                return [unreadable(op.key, f"HTTP {status}, body not JSON") for op in ops]
            return parse_results(ops, payload, http.redact, after_ambiguous=answer.after_ambiguous)
        if status in (401, 403):
            # Every later batch would fail the same way: stop the sync instead of
            # rejecting each row. Nothing in this batch is marked delivered.
            raise DestinationError(
                f"POST {self.display_url}: HTTP {status} {http.describe(response)} (check the credentials in the destination's headers)",
                retryable=False,
            )
        if 400 <= status < 500:
            # Not marked delivered, so these rows are retried next run anyway. A body with
            # per-row results (a 404 for removes of records already gone, a 422 naming the bad
            # rows) says more than the status.
            try:
                payload = json_body(response)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("results"), list):
                return parse_results(ops, payload, http.redact, after_ambiguous=answer.after_ambiguous)
            error = f"HTTP {status}: {http.describe(response)}"
            return [answer.rejected(op.key, error) for op in ops]
        raise DestinationError(
            f"POST {self.display_url}: unexpected HTTP {status} (redirects are not followed; check the url)",
            retryable=False,
        )

    def report(self) -> DestinationReport:
        h = self._http
        return DestinationReport(requests=h.requests, retries=h.retries, throttled=h.throttled) if h else DestinationReport()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
