"""HubSpot CRM through the official SDK (hubspot-api-client): objects and static lists.

- Objects (contacts, companies, custom by name) are written with the v3 batch endpoints,
  100 inputs per call: upsert by the match property (email for contacts), create, update,
  and archive for `mirror`.
- Values are converted by each property's definition (`values`), read once per object
  per run from the properties API, and only when a push writes something. A value that cannot
  be converted, or a property the object lacks, rejects only its row, before any call.
- `mode: audience` manages a MANUAL list's memberships; the list is found or created by name.
- HubSpot refuses a whole batch with 400 when one input has an invalid value. The batch is
  then bisected until the bad inputs stand alone: only they are rejected, with HubSpot's
  message, in O(bad · log 100) extra calls.
- Calls, the rate limiter and retries live in `transport`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from activation.destinations.base import (
    ConfigError,
    Destination,
    DestinationError,
    DestinationReport,
    IdentityModel,
    RequestBudget,
    RowOp,
    RowResult,
    SyncTarget,
    account_key,
)
from activation.destinations.hubspot.transport import BatchRefused, HubSpotTransport, JsonBody, Unanswered
from activation.destinations.hubspot.values import ConversionError, Converter, PropertyInfo, as_text, converter
from activation.project.secrets import MissingSecret, redact, resolve_env, scrub_personal_data

LIST_OBJECT_TYPES = {"contacts": "0-1", "companies": "0-2"}
DEFAULT_ID_PROPERTY = {"contacts": "email"}
property_value = as_text  # a value as HubSpot stores a string property

# One input ready to send: the op, its JSON input, and what its result is matched by.
Prepared = tuple[RowOp, dict[str, Any], str]


class HubSpotDestination(Destination):
    identity_model: ClassVar[IdentityModel] = "record"  # HubSpot finds a record by its unique property (an email compares without case)
    identity_folds_case: ClassVar[bool] = True
    type: ClassVar[str] = "hubspot"
    # A push carries up to 4,000 rows, sent as API calls of `batch_size` (≤ 100, HubSpot's
    # limit) `concurrency` at a time: the state store commits once per push, and its cost
    # per row falls with the push's size (DuckDB: ~16 µs a row at 1,000, ~9 at 4,000).
    max_batch_size: ClassVar[int] = 4000
    # Two pushes in flight: the calls of the next push start while the runner records the
    # last one, so HubSpot (and the rate limiter's budget) is not left idle in between.
    pushes_in_flight: ClassVar[int] = 2

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self.transport = HubSpotTransport(name, spec, sleep)
        self._list_ids: dict[str, str] = {}
        self._converters: dict[str, dict[str, Converter]] = {}  # object → field → converter, once per run
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # pushes run concurrently: what they share is built once

    # -- set-up ------------------------------------------------------------------------

    def budget_account(self) -> str | None:
        """HubSpot meters each app (its token) in its portal: every sync and daemon sending
        with one token shares its quota."""
        try:
            token, host = resolve_env(self.spec.token), resolve_env(self.spec.base_url).rstrip("/")
        except MissingSecret:
            return None  # open() says what is missing
        return account_key("hubspot", host, token)

    def share_budget(self, budget_for: Callable[[str], RequestBudget]) -> None:
        if (account := self.budget_account()) is not None:
            self.transport.limiter.budget = budget_for(account)

    def estimated_calls(self, target: SyncTarget, writes: int, removals: int) -> int | None:
        # calls of batch_size (<= 100): a write each (an audience first reads the records' ids),
        # a read and an archive or membership removal per call of removals, and the properties
        size, per_write = self.spec.batch_size, 2 if target.mode == "audience" else 1
        return -(-writes // size) * per_write + -(-removals // size) * 2 + 1

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
        self.transport.client  # noqa: B018 - a missing token fails before any batch

    def _properties(self, target: SyncTarget) -> dict[str, dict[str, Any]]:
        _, body = self.transport.call(self.transport.api("properties").get_all, target.object)
        return {p["name"]: p for p in (body or {}).get("results", [])}

    def check_remote(self, target: SyncTarget) -> list[str]:
        try:
            known = self._properties(target)
        except BatchRefused as e:
            return [f"HubSpot refused to list the properties of {target.object!r}: {e}"]
        problems = []
        for field in target.match_fields + target.fields:
            prop = known.get(field)
            if prop is None:
                problems.append(f"HubSpot {target.object} has no property {field!r}")
            elif PropertyInfo.from_api(prop).read_only:
                problems.append(f"HubSpot {target.object} property {field!r} is read-only")
        return problems

    def _field_converters(self, target: SyncTarget) -> dict[str, Converter]:
        """How each mapped field is written, from the object's property definitions (one call)."""
        obj = target.object or ""
        with self._lock:
            if obj not in self._converters:
                try:
                    known = self._properties(target)
                except BatchRefused as e:
                    raise DestinationError(f"HubSpot refused to list the properties of {obj!r}: {e}", retryable=False) from None
                self._converters[obj] = {
                    field: converter(PropertyInfo.from_api(known[field]), field) if field in known else _missing(obj, field)
                    for field in dict.fromkeys(target.match_fields + target.fields)
                }
            return self._converters[obj]

    # -- objects ---------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        """Write (or, for released identities, archive) `ops`. A row whose email changed arrives
        as a write of the new identity, whole; the core archives the old one once no row maps
        to it (releases). HubSpot does not rename a contact in place (`renames_in_place` is off):
        the core's rename check sees the claims of earlier runs only, so a row of the same run
        that takes the old email (row 1 c→a, row 2 a→b) would find its values on the record
        being renamed away."""
        if target.mode == "audience":
            return self._push_members(target, ops)
        idp = self.id_property(target)
        results: list[RowResult] = []
        removes = [o for o in ops if o.kind == "remove"]
        groups = (
            ("upsert", [o for o in ops if o.kind == "upsert"]),
            ("update", [o for o in ops if o.kind == "update"]),
            ("create", [o for o in ops if o.kind == "insert"]),
        )
        if removes:
            results += self._archive(target, idp, removes)
        size = self.spec.batch_size
        calls: list[tuple[str, list[Prepared]]] = []
        for kind, group in groups:
            if group:
                prepared, rejected = self._inputs(self._field_converters(target), idp, kind, group)
                results += rejected
                calls += [(kind, prepared[i : i + size]) for i in range(0, len(prepared), size)]
        if len(calls) <= 1 or self.spec.concurrency == 1:
            for kind, chunk in calls:
                results += self._write(target, idp, kind, chunk)
            return results
        with self._lock:
            if self._pool is None:  # shared by concurrent pushes: `concurrency` calls in flight in all
                self._pool = ThreadPoolExecutor(max_workers=self.spec.concurrency, thread_name_prefix="hubspot")
        for chunk_results in self._pool.map(lambda c: self._write(target, idp, c[0], c[1]), calls):
            results += chunk_results
        return results

    def _inputs(self, convert: dict[str, Converter], idp: str, kind: str, ops: Sequence[RowOp]) -> tuple[list[Prepared], list[RowResult]]:
        """Each op as a batch input, its values converted; a row that cannot be is rejected."""
        out: list[Prepared] = []
        rejected: list[RowResult] = []
        keep_id = kind == "create"  # otherwise the id property is the input's `id`
        conv = convert.get
        id_conv = conv(idp, as_text)
        for op in ops:
            values = op.values
            # A known row sends only what changed; a new one sends everything.
            names = op.changed_fields if op.changed_fields is not None and op.previous is not None else values
            try:
                props = {f: conv(f, as_text)(values.get(f)) for f in names if keep_id or f != idp}
                ident = id_conv(values.get(idp))
            except ConversionError as e:
                rejected.append(RowResult(key=op.key, ok=False, error=str(e)))
                continue
            if kind == "create":
                props[idp] = ident
                out.append((op, {"properties": props, "objectWriteTraceId": op.key}, op.key))
            else:
                out.append((op, {"id": ident, "idProperty": idp, "properties": props}, ident.lower()))
        return out, rejected

    def _write(self, target: SyncTarget, idp: str, kind: str, prepared: list[Prepared], ambiguous: bool = False) -> list[RowResult]:
        """Send one batch; `ambiguous`: an earlier call with these inputs may have been applied."""
        api = self.transport.api("batch")
        call = {
            "upsert": (api.upsert, "batch_input_simple_public_object_batch_input_upsert"),
            "update": (api.update, "batch_input_simple_public_object_batch_input"),
            "create": (api.create, "batch_input_simple_public_object_batch_input_for_create"),
        }[kind]
        try:
            _, body, retried = self.transport.call_with_outcome(
                call[0], target.object, **{call[1]: JsonBody(inputs=[p[1] for p in prepared])}
            )
        except Unanswered as e:  # the write may have been applied: possibly delivered, resent next run
            return [RowResult(key=op.key, ok=False, unknown=True, error=redact(str(e))) for op, _, _ in prepared]
        except BatchRefused as e:
            # A refusal answering a retry of a call that may have been applied (a conflict with
            # the record it made, say) leaves its rows possibly delivered.
            ambiguous = ambiguous or e.after_ambiguous
            if len(prepared) == 1:
                op = prepared[0][0]
                if kind == "create" and (existing := _existing_id(str(e))):
                    return [RowResult(key=op.key, ok=True, dest_id=existing)]
                return [RowResult(key=op.key, ok=False, unknown=ambiguous, error=_reason(str(e), op))]
            half = len(prepared) // 2  # isolate the inputs HubSpot objects to
            return self._write(target, idp, kind, prepared[:half], ambiguous) + self._write(target, idp, kind, prepared[half:], ambiguous)
        return self._map_results(target, idp, kind, prepared, body or {}, ambiguous or retried)

    def _map_results(
        self, target: SyncTarget, idp: str, kind: str, prepared: list[Prepared], body: dict[str, Any], ambiguous: bool
    ) -> list[RowResult]:
        """One result per input. HubSpot documents neither the order of `results` nor that an
        upsert's result echoes the idProperty's value: a result is matched by what it echoes
        (the objectWriteTraceId of a create, the unique value), else by its record id, read back. An input that no result or error accounts
        for may have been written all the same: possibly delivered, never acknowledged or
        refused."""
        ok: dict[str, str] = {}
        unmatched: list[str] = []  # record ids of results that echo nothing we can match
        for r in body.get("results", []):
            rec_id = str(r.get("id", ""))
            echoed = (r.get("properties") or {}).get(idp)
            if kind == "create" and r.get("objectWriteTraceId"):
                ok[str(r["objectWriteTraceId"])] = rec_id
            elif echoed and kind != "create":
                ok[str(echoed).lower()] = rec_id
            elif rec_id:
                unmatched.append(rec_id)
        by_value: dict[str, str] = {}
        if unmatched:
            by_value = self._read_values(target, idp, unmatched)  # a create: by the value it was created with
        failed: dict[str, str] = {}
        for err in body.get("errors", []):
            ctx = err.get("context") or {}
            for v in ctx.get("objectWriteTraceId", []) + ctx.get("ids", []):
                failed[str(v).lower() if kind in ("upsert", "update") else str(v)] = err.get("message", "rejected")
        if kind == "create":
            # insert: a record that exists already is never touched; it is there (made by an
            # earlier attempt whose answer was lost, or by anyone): the row is delivered
            for err in body.get("errors", []):
                if str(err.get("category")) == "CONFLICT" and (existing := _existing_id(str(err.get("message", "")))):
                    ok.update({str(v): existing for v in (err.get("context") or {}).get("objectWriteTraceId", [])})
        out = []
        for op, _, ident in prepared:
            value = _ident(op.values, idp)
            if ident in ok:
                out.append(RowResult(key=op.key, ok=True, dest_id=ok[ident]))
            elif value in by_value:
                out.append(RowResult(key=op.key, ok=True, dest_id=by_value[value]))
            elif ident in failed:
                # a per-input error answering a retry may be HubSpot's view of its own earlier write
                out.append(RowResult(key=op.key, ok=False, unknown=ambiguous, error=_reason(failed[ident], op)))
            else:
                out.append(
                    RowResult(
                        key=op.key, ok=False, unknown=True, error="HubSpot's answer does not account for this row: it may have been written"
                    )
                )
        return out

    def _read_values(self, target: SyncTarget, idp: str, ids: list[str]) -> dict[str, str]:
        """Record ids by their (lower-cased) value of `idp`, read back by id; {} when the read fails
        (the rows stay possibly delivered)."""
        found: dict[str, str] = {}
        try:
            for chunk in self._chunks(list(dict.fromkeys(ids))):
                _, body = self.transport.call(
                    self.transport.api("batch").read,
                    target.object,
                    batch_read_input_simple_public_object_id=JsonBody(
                        inputs=[{"id": i} for i in chunk], properties=[idp], propertiesWithHistory=[]
                    ),
                )
                found.update(
                    {
                        str((r.get("properties") or {}).get(idp, "")).lower(): str(r["id"])
                        for r in (body or {}).get("results", [])
                        if (r.get("properties") or {}).get(idp)
                    }
                )
        except (BatchRefused, DestinationError):
            return {}
        return found

    def _whole(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """A call whose refusal fails the whole push (a read, an archive, a list change): it
        is no row's fault, so the push fails and is retried next run."""
        try:
            return self.transport.call(fn, *args, **kwargs)
        except BatchRefused as e:
            raise DestinationError(f"HubSpot refused to {what}: HTTP {e.status}: {str(e)[:500]}", retryable=False) from None

    def _chunks(self, items: Sequence[Any]) -> Iterator[Sequence[Any]]:
        size = self.spec.batch_size  # ≤ 100: HubSpot's limit for every batch endpoint
        for i in range(0, len(items), size):
            yield items[i : i + size]

    def _resolve_ids(self, target: SyncTarget, idp: str, values: list[str]) -> dict[str, str]:
        """Record ids of `values` of the unique property `idp` (lower-cased keys)."""
        found: dict[str, str] = {}
        for chunk in self._chunks(list(dict.fromkeys(values))):
            _, body = self._whole(
                f"read {target.object} by {idp}",
                self.transport.api("batch").read,
                target.object,
                batch_read_input_simple_public_object_id=JsonBody(
                    inputs=[{"id": v} for v in chunk], idProperty=idp, properties=[idp], propertiesWithHistory=[]
                ),
            )  # required by HubSpot's documents
            found.update({str((r.get("properties") or {}).get(idp, "")).lower(): str(r["id"]) for r in (body or {}).get("results", [])})
        return found

    def _archive(self, target: SyncTarget, idp: str, ops: list[RowOp]) -> list[RowResult]:
        missing = [_match_value(o.values, idp) for o in ops if not o.dest_id]
        found = self._resolve_ids(target, idp, missing)
        ids = [o.dest_id or found.get(_ident(o.values, idp)) for o in ops]
        todo = [{"id": i} for i in dict.fromkeys(i for i in ids if i)]
        for chunk in self._chunks(todo):  # archiving an unknown or archived id is a no-op: removal is idempotent
            self._whole(
                f"archive {target.object}",
                self.transport.api("batch").archive,
                target.object,
                batch_input_simple_public_object_id=JsonBody(inputs=list(chunk)),
            )
        return [RowResult(key=o.key, ok=True) for o in ops]

    # -- lists (mode: audience) ---------------------------------------------------------------

    def _list_id(self, target: SyncTarget) -> str:
        name = target.audience or ""
        with self._lock:  # concurrent pushes find (or create) the list once
            if name not in self._list_ids:
                self._list_ids[name] = self._find_or_create_list(target, name)
            return self._list_ids[name]

    def _find_or_create_list(self, target: SyncTarget, name: str) -> str:
        type_id = LIST_OBJECT_TYPES[target.object or "contacts"]
        lists = self.transport.api("lists")

        def find() -> str | None:
            try:
                _, body = self.transport.call(lists.get_by_name, list_name=name, object_type_id=type_id)
            except BatchRefused as e:
                if e.status != 404:
                    raise DestinationError(f"HubSpot list {name!r}: {e}", retryable=False) from None
                return None
            return str(body["list"]["listId"])

        if (found := find()) is not None:
            return found
        try:
            _, body = self.transport.call(
                lists.create, list_create_request={"name": name, "objectTypeId": type_id, "processingType": "MANUAL"}
            )
        except BatchRefused as e:
            # A create retried after its answer was lost finds the list made the first time
            # (names are unique): use it; any other refusal fails the push, not the run.
            if (found := find()) is not None:
                return found
            raise DestinationError(f"HubSpot refused to create the list {name!r}: HTTP {e.status}: {e}", retryable=False) from None
        return str(body["list"]["listId"])

    def _push_members(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        idp = self.id_property(target)
        list_id = self._list_id(target)
        adds = [o for o in ops if o.kind in ("upsert", "insert", "update")]
        found = self._resolve_ids(target, idp, [_match_value(o.values, idp) for o in adds])
        # Records of released identities without a known id (delivered by a run that died
        # before recording it): found by their identity.
        old = self._resolve_ids(target, idp, [_match_value(o.values, idp) for o in ops if o.kind == "remove" and not o.dest_id])
        results, to_add, to_remove = [], [], []
        for o in ops:
            if o.kind == "remove":
                gone = o.dest_id or old.get(_ident(o.values, idp))
                if gone:
                    to_remove.append(gone)
                results.append(RowResult(key=o.key, ok=True))  # no record at all: nothing to remove
                continue
            record = found.get(_ident(o.values, idp))
            if record is None:  # the match value is not shown: it may be personal data
                results.append(RowResult(key=o.key, ok=False, error=f"no HubSpot {target.object} has this row's {idp}"))
                continue
            if o.dest_id and o.dest_id != record:
                to_remove.append(o.dest_id)  # the email now belongs to another record: the old one leaves
            to_add.append(record)
            results.append(RowResult(key=o.key, ok=True, dest_id=record))
        if to_add or to_remove:
            try:
                self._whole(
                    f"change the members of list {target.audience!r}",
                    self.transport.api("memberships").add_and_remove,
                    list_id,
                    membership_change_request=JsonBody(recordIdsToAdd=to_add, recordIdsToRemove=to_remove),
                )
            except Unanswered as e:  # the change may have been applied: possibly done, sent again next run
                return [
                    RowResult(key=r.key, ok=False, unknown=True, dest_id=r.dest_id, error=redact(str(e))) if r.ok else r for r in results
                ]
        return results

    def report(self) -> DestinationReport:
        t = self.transport
        details = {"lists": dict(self._list_ids)} if self._list_ids else {}
        return DestinationReport(requests=t.requests, retries=t.retries, throttled=t.throttled, details=details)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.transport.close()
        self._converters.clear()


def _missing(obj: str, field: str) -> Converter:
    def reject(_value: Any) -> str:
        raise ConversionError(
            f"field {field!r}: HubSpot {obj} has no property {field!r} "
            "(create it, or check the mapping with `activation validate --remote`)"
        )

    return reject


def _reason(message: str, op: RowOp) -> str:
    """HubSpot's reason for refusing `op`, without the row's own values: HubSpot quotes the
    value it refuses ("Email address … is invalid"), in shapes no generic pattern finds (no
    top-level domain, spaces). The state keeps the reason; the row is named by its key. A value
    is replaced where it stands as a whole (plain or JSON-escaped), never inside a word."""
    texts = [(field, value.strip()) for field, value in op.values.items() if type(value) is str and len(value.strip()) >= 3]
    for field, text in sorted(texts, key=lambda ft: -len(ft[1])):  # longest first: a value inside another
        mark = "<email>" if field == "email" or "@" in text else f"<{field}>"
        for form in dict.fromkeys((text, json.dumps(text)[1:-1])):
            message = re.sub(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])", mark, message, flags=re.IGNORECASE)
    return scrub_personal_data(redact(message))[:500]


def _existing_id(message: str) -> str | None:
    """The record id in HubSpot's conflict message ("Contact already exists. Existing ID: 123")."""
    m = re.search(r"already exists\. Existing ID: (\d+)", message)
    return m.group(1) if m else None


def _match_value(values: dict[str, Any] | None, idp: str) -> str:
    """A row's value of the unique property `idp`, as HubSpot stores it."""
    return property_value((values or {}).get(idp))


def _ident(values: dict[str, Any] | None, idp: str) -> str:
    """The same as record ids are looked up by (`_resolve_ids`): case-insensitively."""
    return _match_value(values, idp).lower()
