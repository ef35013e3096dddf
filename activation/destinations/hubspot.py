"""HubSpot CRM through the official SDK (hubspot-api-client): objects and static lists.

- Objects (contacts, companies, custom by name) are written with the v3 batch endpoints,
  100 inputs per call: upsert by the match property (email for contacts), create, update,
  and archive for `mirror`.
- `mode: audience` manages a MANUAL list's memberships; the list is found or created by name.
- HubSpot refuses a whole batch with 400 when one input has an invalid value. The batch is
  then bisected until the bad inputs stand alone: only they are rejected, with HubSpot's
  message, in O(bad · log 100) extra calls.
- A client-side limiter keeps under the app's request quota, so 429s stay rare; when one
  comes, its Retry-After / rate-limit headers are honoured.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from activation.destinations.base import ConfigError, Destination, DestinationError, DestinationReport, RowOp, RowResult, SyncTarget
from activation.project.secrets import MissingSecret, redact, resolve_env

LIST_OBJECT_TYPES = {"contacts": "0-1", "companies": "0-2"}
_STALE = "\x00stale:"  # key prefix of the extra archive ops _find_renamed adds (never a real key)
DEFAULT_ID_PROPERTY = {"contacts": "email"}


class _BatchRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateLimiter:
    """Spaces calls at most `rate` per second across threads (no bursts over the quota)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self.next_at = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:  # reserve the next slot, then sleep outside the lock
            now = self.clock()
            slot = max(now, self.next_at)
            self.next_at = slot + self.interval
        if slot > now:
            self.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self.next_at = max(self.next_at, self.clock() + seconds)


def property_value(value: Any) -> str:
    """HubSpot stores every property as a string; "" clears one."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if isinstance(value, (list, tuple)):
        return ";".join(property_value(v) for v in value)  # multiple checkboxes
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


class HubSpotDestination(Destination):
    type: ClassVar[str] = "hubspot"
    # A push carries up to 1,000 rows, sent as API calls of `batch_size` (≤ 100, HubSpot's
    # limit) `concurrency` at a time: the state store commits per push, so committing
    # every 100 rows would cost more than the HTTP calls themselves.
    max_batch_size: ClassVar[int] = 1000

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self._sleep = sleep
        self._client: Any = None
        self._list_ids: dict[str, str] = {}
        self.limiter = RateLimiter(spec.requests_per_second, sleep=sleep)
        self.requests = self.throttled = self.retries = 0  # approximate under concurrency

    # -- set-up ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            from hubspot import HubSpot

            try:
                token = resolve_env(self.spec.token)
                host = resolve_env(self.spec.base_url).rstrip("/")
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            self._client = HubSpot(access_token=token, host=host)
        return self._client

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.max_batch_size, self.max_batch_size)  # spec.batch_size is per API call

    def id_property(self, target: SyncTarget) -> str:
        return target.match_fields[0] if target.match_fields else DEFAULT_ID_PROPERTY.get(target.object or "", "")

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if not target.object:
            raise ConfigError("a hubspot sync needs `object:` (contacts, companies or a custom object name)")
        if len(target.match_fields) != 1:
            raise ConfigError("a hubspot sync needs exactly one `match:` field, a unique property (e.g. match: {email: email})")
        if target.mode == "audience":
            if not target.audience:
                raise ConfigError("mode audience needs `audience:`, the name of the HubSpot list")
            if target.object not in LIST_OBJECT_TYPES:
                raise ConfigError(f"lists hold contacts or companies, not {target.object!r}")

    def open(self, target: SyncTarget) -> None:
        self.client  # noqa: B018 - a missing token fails before any batch

    def check_remote(self, target: SyncTarget) -> list[str]:
        try:
            _, body = self._call(self.client.crm.properties.core_api.get_all, target.object)
        except _BatchRefused as e:
            return [f"HubSpot refused to list the properties of {target.object!r}: {e}"]
        known = {p["name"]: p for p in body.get("results", [])}
        problems = []
        for field in target.match_fields + target.fields:
            prop = known.get(field)
            if prop is None:
                problems.append(f"HubSpot {target.object} has no property {field!r}")
            elif (prop.get("modificationMetadata") or {}).get("readOnlyValue"):
                problems.append(f"HubSpot {target.object} property {field!r} is read-only")
        return problems

    # -- the transport: limiter, retries, typed failures ---------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
        from urllib3.exceptions import HTTPError as TransportError

        attempt = 0
        while True:
            self.limiter.wait()
            self.requests += 1
            try:
                response = fn(*args, _preload_content=False, **kwargs)
                data = response.data
                return response.status, json.loads(data) if data else None
            except Exception as e:  # the SDK raises a per-module ApiException class
                status = getattr(e, "status", None)
                if status is None and not isinstance(e, (TransportError, ConnectionError, TimeoutError)):
                    raise
                body = getattr(e, "body", "") or ""
                headers = getattr(e, "headers", None) or {}
                retryable = status is None or status == 429 or status >= 500
                if status in (401, 403):
                    raise DestinationError(f"HubSpot answered {status}: {_message(body)} (check the token and its scopes)", retryable=False) from None
                if not retryable:
                    raise _BatchRefused(status or 0, _message(body)) from None
                if status == 429:
                    self.throttled += 1
                attempt += 1
                if attempt > self.spec.max_retries:
                    what = f"HTTP {status}: {_message(body)}" if status else f"{type(e).__name__}: {e}"
                    raise DestinationError(redact(f"HubSpot still failing after {attempt - 1} retries: {what}")) from None
                self.retries += 1
                self.limiter.pause(_wait(headers, attempt, status))

    # -- objects ---------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        if target.mode == "audience":
            return self._push_members(target, ops)
        idp = self.id_property(target)
        results: list[RowResult] = []
        stale = self._find_renamed(target, idp, ops)
        removes = [o for o in ops if o.kind == "remove"] + stale
        by_id = [o for o in ops if o.kind in ("upsert", "update") and o.dest_id and _identity_changed(o, idp)]
        upserts = [o for o in ops if o.kind == "upsert" and o not in by_id]
        updates = [o for o in ops if o.kind == "update" and o not in by_id]
        creates = [o for o in ops if o.kind == "insert"]
        if removes:
            archived = self._archive(target, idp, removes)
            results += [r for r in archived if not r.key.startswith(_STALE)]
        size = self.spec.batch_size
        calls = [(kind, group[i : i + size])
                 for kind, group in (("upsert", upserts), ("update", updates), ("create", creates), ("update_by_id", by_id))
                 for i in range(0, len(group), size)]
        if len(calls) <= 1 or self.spec.concurrency == 1:
            for kind, chunk in calls:
                results += self._write(target, idp, kind, chunk)
            return results
        with ThreadPoolExecutor(max_workers=self.spec.concurrency, thread_name_prefix="hubspot") as pool:
            for chunk_results in pool.map(lambda c: self._write(target, idp, c[0], c[1]), calls):
                results += chunk_results
        return results

    def _find_renamed(self, target: SyncTarget, idp: str, ops: list[RowOp]) -> list[RowOp]:
        """Rows whose identity changed but whose record id is unknown (a run died before
        recording it): find the record by the old value so it is updated, not duplicated.
        When a record with the new value exists too, the row upserts into it and, in mirror
        mode, the old record is archived (returned as extra remove ops): one record per row."""
        renamed = [o for o in ops if o.kind in ("upsert", "update") and not o.dest_id and _identity_changed(o, idp)]
        if not renamed:
            return []
        old = self._resolve_ids(target, idp, [property_value((o.previous or {}).get(idp)) for o in renamed])
        new = self._resolve_ids(target, idp, [property_value(o.values.get(idp)) for o in renamed])
        stale = []
        for o in renamed:
            was = old.get(property_value((o.previous or {}).get(idp)).lower())
            if was is None:
                continue
            if property_value(o.values.get(idp)).lower() not in new:
                o.dest_id = was  # update it in place, by id
            elif target.mode == "mirror":
                stale.append(RowOp(kind="remove", key=_STALE + o.key, values=o.previous or {}, dest_id=was))
        return stale

    def _inputs(self, idp: str, kind: str, ops: Sequence[RowOp]) -> list[dict[str, Any]]:
        out = []
        for op in ops:
            # A known row sends only what changed; a new one sends everything.
            names = op.changed_fields if op.changed_fields is not None and op.previous is not None else list(op.values)
            props = {f: property_value(op.values.get(f)) for f in names if f != idp or kind in ("create", "update_by_id")}
            if kind == "create":
                props[idp] = property_value(op.values.get(idp))
                out.append({"properties": props, "objectWriteTraceId": op.key})
            elif kind == "update_by_id":
                out.append({"id": op.dest_id, "properties": props})
            else:
                out.append({"id": property_value(op.values.get(idp)), "idProperty": idp, "properties": props})
        return out

    def _write(self, target: SyncTarget, idp: str, kind: str, ops: list[RowOp]) -> list[RowResult]:
        api = self.client.crm.objects.batch_api
        inputs = self._inputs(idp, kind, ops)
        call = {"upsert": (api.upsert, "batch_input_simple_public_object_batch_input_upsert"),
                "update": (api.update, "batch_input_simple_public_object_batch_input"),
                "update_by_id": (api.update, "batch_input_simple_public_object_batch_input"),
                "create": (api.create, "batch_input_simple_public_object_batch_input_for_create")}[kind]
        try:
            _, body = self._call(call[0], target.object, **{call[1]: {"inputs": inputs}})
        except _BatchRefused as e:
            if len(ops) == 1:
                return [RowResult(key=ops[0].key, ok=False, error=redact(str(e)))]
            half = len(ops) // 2  # isolate the inputs HubSpot objects to
            return self._write(target, idp, kind, ops[:half]) + self._write(target, idp, kind, ops[half:])
        return self._map_results(idp, kind, ops, body or {})

    def _map_results(self, idp: str, kind: str, ops: list[RowOp], body: dict[str, Any]) -> list[RowResult]:
        def ident(op: RowOp) -> str:
            if kind == "create":
                return op.key
            if kind == "update_by_id":
                return str(op.dest_id)
            return property_value(op.values.get(idp)).lower()

        ok: dict[str, str] = {}
        for r in body.get("results", []):
            if kind == "create":
                ok[str(r.get("objectWriteTraceId"))] = str(r["id"])
            elif kind == "update_by_id":
                ok[str(r["id"])] = str(r["id"])
            else:
                ok[str((r.get("properties") or {}).get(idp, "")).lower()] = str(r["id"])
        failed: dict[str, str] = {}
        for err in body.get("errors", []):
            ctx = err.get("context") or {}
            for v in ctx.get("objectWriteTraceId", []) + ctx.get("ids", []):
                failed[str(v).lower() if kind in ("upsert", "update") else str(v)] = err.get("message", "rejected")
        out = []
        for op in ops:
            i = ident(op)
            if i in ok:
                out.append(RowResult(key=op.key, ok=True, dest_id=ok[i]))
            else:
                out.append(RowResult(key=op.key, ok=False, error=redact(failed.get(i, "HubSpot did not return this record"))))
        return out

    def _whole(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """A call whose refusal fails the whole push (a read, an archive, a list change): it
        is no row's fault, so the push fails and is retried next run."""
        try:
            return self._call(fn, *args, **kwargs)
        except _BatchRefused as e:
            raise DestinationError(f"HubSpot refused to {what}: HTTP {e.status}: {e}", retryable=False) from None

    def _chunks(self, items: Sequence[Any]) -> Iterator[Sequence[Any]]:
        size = self.spec.batch_size  # ≤ 100: HubSpot's limit for every batch endpoint
        for i in range(0, len(items), size):
            yield items[i : i + size]

    def _resolve_ids(self, target: SyncTarget, idp: str, values: list[str]) -> dict[str, str]:
        """Record ids of `values` of the unique property `idp` (lower-cased keys)."""
        found: dict[str, str] = {}
        for chunk in self._chunks(list(dict.fromkeys(values))):
            _, body = self._whole(f"read {target.object} by {idp}", self.client.crm.objects.batch_api.read, target.object,
                                  batch_read_input_simple_public_object_id={"inputs": [{"id": v} for v in chunk],
                                                                            "idProperty": idp, "properties": [idp]})
            found.update({str((r.get("properties") or {}).get(idp, "")).lower(): str(r["id"]) for r in (body or {}).get("results", [])})
        return found

    def _archive(self, target: SyncTarget, idp: str, ops: list[RowOp]) -> list[RowResult]:
        missing = [property_value(o.values.get(idp)) for o in ops if not o.dest_id]
        found = self._resolve_ids(target, idp, missing)
        ids = [o.dest_id or found.get(property_value(o.values.get(idp)).lower()) for o in ops]
        todo = [{"id": i} for i in dict.fromkeys(i for i in ids if i)]
        for chunk in self._chunks(todo):  # archiving an unknown or archived id is a no-op: removal is idempotent
            self._whole(f"archive {target.object}", self.client.crm.objects.batch_api.archive, target.object,
                        batch_input_simple_public_object_id={"inputs": list(chunk)})
        return [RowResult(key=o.key, ok=True) for o in ops]

    # -- lists (mode: audience) ---------------------------------------------------------------

    def _list_id(self, target: SyncTarget) -> str:
        name = target.audience or ""
        if name not in self._list_ids:
            type_id = LIST_OBJECT_TYPES[target.object or "contacts"]
            lists = self.client.crm.lists.lists_api
            try:
                _, body = self._call(lists.get_by_name, list_name=name, object_type_id=type_id)
            except _BatchRefused as e:
                if e.status != 404:
                    raise DestinationError(f"HubSpot list {name!r}: {e}", retryable=False) from None
                _, body = self._call(lists.create, list_create_request={"name": name, "objectTypeId": type_id, "processingType": "MANUAL"})
            self._list_ids[name] = str(body["list"]["listId"])
        return self._list_ids[name]

    def _push_members(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        idp = self.id_property(target)
        list_id = self._list_id(target)
        members = self.client.crm.lists.memberships_api
        adds = [o for o in ops if o.kind in ("upsert", "insert", "update")]
        found = self._resolve_ids(target, idp, [property_value(o.values.get(idp)) for o in adds])
        # Records of rows that leave (or change identity) without a known id, e.g. delivered by
        # a run that died before recording it: found by their last delivered identity.
        lost = [o.values if o.kind == "remove" else (o.previous or {}) for o in ops
                if not o.dest_id and (o.kind == "remove" or _identity_changed(o, idp))]
        old = self._resolve_ids(target, idp, [property_value(v.get(idp)) for v in lost])
        results, to_add, to_remove = [], [], []
        for o in ops:
            if o.kind == "remove":
                gone = o.dest_id or old.get(property_value(o.values.get(idp)).lower())
                if gone:
                    to_remove.append(gone)
                results.append(RowResult(key=o.key, ok=True))  # no record at all: nothing to remove
                continue
            record = found.get(property_value(o.values.get(idp)).lower())
            if record is None:
                results.append(RowResult(key=o.key, ok=False, error=f"no HubSpot {target.object} with {idp} = {o.values.get(idp)!r}"))
                continue
            before = o.dest_id or (old.get(property_value((o.previous or {}).get(idp)).lower()) if _identity_changed(o, idp) else None)
            if before and before != record:
                to_remove.append(before)  # the member's identity changed: the old record leaves
            to_add.append(record)
            results.append(RowResult(key=o.key, ok=True, dest_id=record))
        if to_add or to_remove:
            self._whole(f"change the members of list {target.audience!r}", members.add_and_remove, list_id,
                        membership_change_request={"recordIdsToAdd": to_add, "recordIdsToRemove": to_remove})
        return results

    def report(self) -> DestinationReport:
        details = {"lists": dict(self._list_ids)} if self._list_ids else {}
        return DestinationReport(requests=self.requests, retries=self.retries, throttled=self.throttled, details=details)

    def close(self) -> None:
        self._client = None


def _identity_changed(op: RowOp, idp: str) -> bool:
    return op.previous is not None and property_value(op.previous.get(idp)).lower() != property_value(op.values.get(idp)).lower()


def _message(body: Any) -> str:
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        return str(data.get("message") or data)[:500]
    except (ValueError, AttributeError):
        return str(body)[:500]


def _wait(headers: Any, attempt: int, status: int | None) -> float:
    """How long to back off: Retry-After, else HubSpot's interval header, else jittered backoff."""
    get = headers.get if hasattr(headers, "get") else (lambda _k: None)
    retry_after = get("Retry-After")
    if retry_after:
        try:
            return min(float(retry_after), 60.0)
        except ValueError:
            pass
    if status == 429 and get("X-HubSpot-RateLimit-Interval-Milliseconds") and get("X-HubSpot-RateLimit-Remaining") == "0":
        return min(int(get("X-HubSpot-RateLimit-Interval-Milliseconds")) / 1000, 10.0)
    return min(0.5 * 2 ** (attempt - 1), 30.0) * (0.5 + random.random() / 2)
