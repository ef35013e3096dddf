"""REST resources of the emulator: sObject rows and describe, sObject Collections, query, limits.

sObject Collections answer 200 with one result per record, in request order; a malformed
request (too many records, no ``attributes.type``, bad JSON) is a 400 for the whole request.
Unknown fields and values that cannot be read as the field's type are also refused for the
whole request by default — the body is deserialized into sObjects before any DML runs — unless
`field_errors_per_record` is set, which reports them per record (INVALID_FIELD,
INVALID_TYPE_ON_FIELD_IN_RECORD) instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .schema import SObjectType, normalize_id
from .store import RecordError, parse_json_record
from .wire import Reply, Request, error_reply, json_reply, no_content, not_found

if TYPE_CHECKING:
    from .emulator import SalesforceEmulator

MAX_COLLECTION = 200
ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the request was using AllOrNone header"
)
_NO_COLUMN = (
    "No such column '{}' on entity '{}'. If you are attempting to use a custom field, be "
    "sure to append the '__c' after the custom field name. Please reference your WSDL "
    "or the describe call for the appropriate names."
)


def route(emu: SalesforceEmulator, req: Request, version: str, segs: list[str]) -> Reply:
    """`segs`: the path after ``/services/data/vNN.N``, split and percent-decoded."""
    if not segs:
        base = f"/services/data/v{version}"
        return json_reply(200, {k: f"{base}/{k}" for k in ("sobjects", "query", "queryAll", "limits", "composite", "jobs")})
    head, rest = segs[0], segs[1:]
    if head == "sobjects":
        return _sobjects(emu, req, version, rest)
    if head == "composite" and rest[:1] == ["sobjects"]:
        return _collections(emu, req, version, rest[1:])
    if head in ("query", "queryAll") and not rest and req.method == "GET":
        return _query(emu, req, version, include_deleted=head == "queryAll")
    if head == "limits" and req.method == "GET":
        used, limit = emu.api_usage
        return json_reply(
            200,
            {
                "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            },
        )
    if head == "jobs" and rest[:1] == ["ingest"]:
        return emu.bulk.route(req, rest[1:], version)
    return not_found()


def render(sot: SObjectType, rec: dict[str, Any], version: str, fields: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": sot.name, "url": f"/services/data/v{version}/sobjects/{sot.name}/{rec['Id']}"}}
    for name in fields or list(sot.fields):
        f = sot.field(name)
        if f is not None:
            out[f.name] = rec.get(f.name)
    return out


def _fail(e: RecordError, upsert: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"success": False, "errors": [e.to_json()]}
    if upsert:
        out["created"] = False
    return out


def _ok(rid: str, created: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "success": True, "errors": []}
    if created is not None:
        out["created"] = created
    return out


def _record_error_reply(e: RecordError) -> Reply:
    status = 404 if e.code in ("INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED") else 400
    if status == 404 and e.code == "INVALID_CROSS_REFERENCE_KEY":
        return not_found()
    return error_reply(status, e.code, e.message, e.fields)


def _body(req: Request) -> Any:
    try:
        return req.json()
    except ValueError:
        return _BAD_JSON


_BAD_JSON = object()


# ---------------------------------------------------------------- /sobjects


def _sobjects(emu: SalesforceEmulator, req: Request, version: str, segs: list[str]) -> Reply:
    if not segs:
        return json_reply(
            200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [s.global_entry(version) for s in emu.schema.values()]}
        )
    sot = emu.sobject(segs[0])
    if sot is None:
        return not_found()
    rest, m, store = segs[1:], req.method, emu.store
    if not rest:
        if m == "GET":
            return json_reply(200, {"objectDescribe": sot.global_entry(version), "recentItems": []})
        if m == "POST":
            body = _body(req)
            if not isinstance(body, dict):
                return error_reply(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            try:
                values, rels = parse_json_record(emu.schema, sot, body)
                return json_reply(201, _ok(store.insert(sot, values, rels)))
            except RecordError as e:
                return error_reply(400, e.code, e.message, e.fields)
        return _not_allowed(req, "GET,POST")
    if rest[0].lower() == "describe" and len(rest) == 1 and m == "GET":
        return json_reply(200, sot.describe(version))
    fields = [f for f in req.query.get("fields", "").split(",") if f] or None
    if len(rest) == 1:  # /sobjects/X/{id}
        try:
            rid = store.check_id(sot, rest[0], label=f"{sot.label} ID")
        except RecordError as e:
            return not_found() if e.code == "MALFORMED_ID" else _record_error_reply(e)
        if m == "GET":
            return json_reply(200, render(sot, store.live[sot.name][rid], version, fields))
        if m == "PATCH":
            body = _body(req)
            if not isinstance(body, dict):
                return error_reply(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            try:
                values, rels = parse_json_record(emu.schema, sot, body)
                store.update(sot, rid, values, rels)
            except RecordError as e:
                return error_reply(400, e.code, e.message, e.fields)
            return no_content()
        if m == "DELETE":
            store.delete(rid)
            return no_content()
        return _not_allowed(req, "GET,PATCH,DELETE")
    if len(rest) != 2:
        return not_found()
    ext = sot.field(rest[0])  # /sobjects/X/{ExtIdField}/{value}
    if ext is None:
        return error_reply(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {rest[0]}")
    ids = store.find_ids(sot.name, ext.name, rest[1])
    if m == "GET" or m == "DELETE":
        if not ids:
            return not_found()
        if len(ids) > 1:  # the real API answers 300 Multiple Choices with the candidates
            return json_reply(300, [f"/services/data/v{version}/sobjects/{sot.name}/{i}" for i in ids])
        if m == "DELETE":
            store.delete(ids[0])
            return no_content()
        return json_reply(200, render(sot, store.live[sot.name][ids[0]], version, fields))
    if m != "PATCH":
        return _not_allowed(req, "GET,PATCH,DELETE")
    if not ext.external_id:
        return error_reply(
            400, "INVALID_FIELD", f"Invalid field for upsert, must be an External Id custom or standard indexed field: {ext.name}"
        )
    body = _body(req)
    if not isinstance(body, dict):
        return error_reply(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    try:
        values, rels = parse_json_record(emu.schema, sot, body, skip=[ext.name])
        rid, created = store.upsert(sot, ext, rest[1], values, rels)
    except RecordError as e:
        if e.code == "DUPLICATE_EXTERNAL_ID":
            return json_reply(300, [f"/services/data/v{version}/sobjects/{sot.name}/{i}" for i in ids])
        return error_reply(400, e.code, e.message, e.fields)
    return json_reply(201 if created else 200, _ok(rid, created))


def _not_allowed(req: Request, allowed: str) -> Reply:
    return error_reply(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are {allowed}")


# ---------------------------------------------------------------- /composite/sobjects


def _collections(emu: SalesforceEmulator, req: Request, version: str, segs: list[str]) -> Reply:
    m = req.method
    if m == "DELETE" and not segs:
        return _collection_delete(emu, req)
    if m in ("GET", "POST") and len(segs) == 1:
        return _collection_retrieve(emu, req, version, segs[0])
    op = {("POST", 0): "create", ("PATCH", 0): "update", ("PATCH", 2): "upsert"}.get((m, len(segs)))
    if op is None:
        return not_found() if segs else _not_allowed(req, "POST,PATCH,DELETE")
    target: SObjectType | None = None
    ext = None
    if op == "upsert":
        target = emu.sobject(segs[0])
        if target is None:
            return not_found()
        ext = target.field(segs[1])
        if ext is None:
            return error_reply(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {segs[1]}")
        if not ext.external_id:
            return error_reply(
                400, "INVALID_FIELD", f"Invalid field for upsert, must be an External Id custom or standard indexed field: {ext.name}"
            )
    body = _body(req)
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return error_reply(400, "JSON_PARSER_ERROR", "Expected a JSON object with a records array")
    if len(records) > MAX_COLLECTION:
        return error_reply(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
    all_or_none = body.get("allOrNone") is True

    parsed: list[Any] = []  # (sot, values, rels, raw) or a RecordError
    for raw in records:
        typ = (raw.get("attributes") or {}).get("type")
        if not typ:
            return error_reply(400, "INVALID_TYPE", "Must send a concrete entity type.")
        sot = emu.sobject(typ)
        if sot is None or (target is not None and sot is not target):
            return error_reply(
                400,
                "INVALID_TYPE",
                f"sObject type '{typ}' is not supported" + (f" by this request (expected {target.name})." if sot else "."),
            )
        try:
            values, rels = parse_json_record(emu.schema, sot, raw, skip=["id"] if op == "update" else ())
            parsed.append((sot, values, rels, raw))
        except RecordError as e:
            if not emu.field_errors_per_record:
                code = "INVALID_FIELD" if e.code == "INVALID_FIELD" else "JSON_PARSER_ERROR"
                msg = (
                    e.message
                    if code == "INVALID_FIELD"
                    else (
                        f"Cannot deserialize instance of {e.fields[0] if e.fields else 'field'} from "
                        f"value: {e.message} or request may be missing a required field"
                    )
                )
                return error_reply(400, code, msg)
            parsed.append(e)

    dupes: set[Any] = set()
    if ext is not None:  # the same external id twice in one request: every such record fails
        seen: dict[Any, int] = {}
        for item in parsed:
            if not isinstance(item, RecordError) and item[1].get(ext.name) is not None:
                k = emu.store._key(ext, item[1][ext.name])
                seen[k] = seen.get(k, 0) + 1
        dupes = {k for k, n in seen.items() if n > 1}

    store = emu.store
    snap = store.snapshot() if all_or_none else None
    results: list[dict[str, Any]] = []
    for item in parsed:
        if isinstance(item, RecordError):
            results.append(_fail(item, op == "upsert"))
            continue
        sot, values, rels, raw = item
        try:
            named = values.get(ext.name) if ext is not None else next((v for k, v in raw.items() if k.lower() == "id"), None)
            if named is not None and emu.take_row_lock(named):
                raise RecordError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records")
            if op == "create":
                results.append(_ok(store.insert(sot, values, rels)))
            elif op == "update":
                raw_id = next((v for k, v in raw.items() if k.lower() == "id"), None)
                if not raw_id:
                    raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
                rid = store.check_id(sot, raw_id, label=f"{sot.label} ID")
                store.update(sot, rid, values, rels)
                results.append(_ok(rid))
            else:
                assert ext is not None
                value = values.pop(ext.name, None)
                if value is not None and store._key(ext, value) in dupes:
                    raise RecordError("DUPLICATE_VALUE", f"Duplicate external id specified: {value}")
                rid, created = store.upsert(sot, ext, value, values, rels)
                results.append(_ok(rid, created))
        except RecordError as e:
            results.append(_fail(e, op == "upsert"))
    if all_or_none and any(not r["success"] for r in results):
        assert snap is not None
        store.restore(snap)
        results = [r if not r["success"] else _fail(ROLLED_BACK, op == "upsert") for r in results]
    return json_reply(200, results)


def _collection_delete(emu: SalesforceEmulator, req: Request) -> Reply:
    ids = [i for i in req.query.get("ids", "").split(",") if i]
    if not ids:
        return error_reply(400, "MISSING_ARGUMENT", "ids parameter is required")
    if len(ids) > MAX_COLLECTION:
        return error_reply(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
    all_or_none = req.query.get("allOrNone", "false").lower() == "true"
    snap = emu.store.snapshot() if all_or_none else None
    results: list[dict[str, Any]] = []
    for raw in ids:
        try:
            results.append(_ok(emu.store.delete(raw)))
        except RecordError as e:
            results.append(_fail(e))
    if all_or_none and any(not r["success"] for r in results):
        assert snap is not None
        emu.store.restore(snap)
        results = [r if not r["success"] else _fail(ROLLED_BACK) for r in results]
    return json_reply(200, results)


def _collection_retrieve(emu: SalesforceEmulator, req: Request, version: str, name: str) -> Reply:
    sot = emu.sobject(name)
    if sot is None:
        return not_found()
    if req.method == "POST":
        body = _body(req)
        ids = body.get("ids") if isinstance(body, dict) else None
        fields = body.get("fields") if isinstance(body, dict) else None
    else:
        ids = [i for i in req.query.get("ids", "").split(",") if i]
        fields = [f for f in req.query.get("fields", "").split(",") if f]
    if not ids or not fields:
        return error_reply(400, "MISSING_ARGUMENT", "ids and fields are required")
    out: list[Any] = []
    for raw in ids:
        rid = normalize_id(raw)
        rec = emu.store.get(sot.name, rid) if rid else None
        out.append(render(sot, rec, version, fields) if rec else None)
    return json_reply(200, out)


# ---------------------------------------------------------------- /query (a tiny SOQL subset)

_SELECT = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)(?P<rest>.*)$", re.I | re.S)
_TAIL = re.compile(
    r"^\s*(?:WHERE\s+(?P<where>.+?))?\s*(?:ORDER\s+BY\s+(?P<order>[\w.]+)"
    r"(?:\s+(?P<dir>ASC|DESC))?)?\s*(?:LIMIT\s+(?P<limit>\d+))?\s*$",
    re.I | re.S,
)
_COND = re.compile(
    r"\s*(?P<f>[\w.]+)\s*(?P<op>=|!=|<>|NOT\s+IN\b|IN\b)\s*(?P<v>'(?:[^'\\]|\\.)*'"
    r"|\([^)]*\)|[\w.:+-]+)\s*",
    re.I,
)
_LIT = re.compile(r"'(?:[^'\\]|\\.)*'|[^,\s]+")


def _literal(tok: str) -> Any:
    if tok.startswith("'"):
        return re.sub(r"\\(.)", r"\1", tok[1:-1])
    low = tok.lower()
    if low in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[low]
    try:
        return float(tok)
    except ValueError:
        return tok


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        ia, ib = normalize_id(a), normalize_id(b)
        return (ia == ib) if ia and ib else a.lower() == b.lower()  # SOQL '=' ignores case
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _query(emu: SalesforceEmulator, req: Request, version: str, include_deleted: bool) -> Reply:
    q = req.query.get("q", "")
    m = _SELECT.match(q)
    tail = _TAIL.match(m.group("rest")) if m else None
    if not m or not tail:
        return error_reply(400, "MALFORMED_QUERY", f"unexpected token in query: {q}")
    sot = emu.sobject(m.group("obj"))
    if sot is None:
        return error_reply(400, "INVALID_TYPE", f"sObject type '{m.group('obj')}' is not supported.")
    selected = [s.strip() for s in m.group("fields").split(",")]
    count_only = [s.lower() for s in selected] == ["count()"]

    def column(name: str) -> tuple[str, str | None]:
        rel, _, sub = name.partition(".")
        if sub:
            ref = sot.relationship(rel)
            target = emu.sobject((ref.reference_to or [""])[0]) if ref else None
            if ref is None or target is None or target.field(sub) is None:
                raise RecordError("INVALID_FIELD", _NO_COLUMN.format(name, sot.name))
            return ref.name, target.field(sub).name  # type: ignore[union-attr]
        f = sot.field(name)
        if f is None:
            raise RecordError("INVALID_FIELD", _NO_COLUMN.format(name, sot.name))
        return f.name, None

    try:
        cols = [] if count_only else [(s, *column(s)) for s in selected]
        conds, where, pos = [], tail.group("where") or "", 0
        while pos < len(where):
            c = _COND.match(where, pos)
            if not c:
                return error_reply(400, "MALFORMED_QUERY", f"unexpected token: {where[pos:]}")
            name, _ = column(c.group("f"))
            v = c.group("v")
            vals = [_literal(t) for t in _LIT.findall(v[1:-1])] if v.startswith("(") else [_literal(v)]
            conds.append((name, c.group("op").upper().replace(" ", ""), vals))
            pos = c.end()
            a = re.match(r"AND\s+", where[pos:], re.I)
            if a:
                pos += a.end()
            elif pos < len(where):
                return error_reply(400, "MALFORMED_QUERY", f"only AND is supported: {where[pos:]}")
        order = column(tail.group("order"))[0] if tail.group("order") else None
    except RecordError as e:
        return error_reply(400, e.code, e.message)

    live = emu.store.live.get(sot.name, {})
    indexed = next(
        (
            (n, vs)
            for n, op, vs in conds
            if op in ("=", "IN") and vs and not include_deleted and (f := sot.field(n)) is not None and f.indexed
        ),
        None,
    )
    if indexed is not None:  # candidates from the field's index, like Salesforce's selective filters
        ids = {i for v in indexed[1] for i in emu.store.id_set(sot.name, indexed[0], v)}
        recs = [live[i] for i in sorted(ids) if i in live]
    else:
        recs = list(live.values())
    if include_deleted:
        recs += list(emu.store.deleted.get(sot.name, {}).values())
    for name, op, vals in conds:
        if vals and all(isinstance(v, str) and normalize_id(v) is None for v in vals):
            # Plain strings (no ids): SOQL's case-insensitive '=' is set membership on lower
            # case, so a WHERE Email IN (200 values) over 100k records stays linear.
            wanted = {v.lower() for v in vals}

            def in_lower(r: dict[str, Any], n: str = name, w: set[str] = wanted) -> bool:
                return isinstance(r.get(n), str) and r[n].lower() in w

            hit: Callable[[dict[str, Any]], bool] = in_lower
        else:

            def same_as_any(r: dict[str, Any], n: str = name, vs: list[Any] = vals) -> bool:
                return any(_same(r.get(n), v) for v in vs)

            hit = same_as_any
        recs = [r for r in recs if hit(r) == (op in ("=", "IN"))]
    if order:
        recs.sort(key=lambda r: (r.get(order) is None, r.get(order) or 0), reverse=(tail.group("dir") or "").upper() == "DESC")
    if tail.group("limit"):
        recs = recs[: int(tail.group("limit"))]
    if count_only:
        return json_reply(200, {"totalSize": len(recs), "done": True, "records": []})
    out = []
    for rec in recs:
        row = render(sot, rec, version, [])
        for _, name, sub in cols:
            if sub is None:
                row[name] = rec.get(name)
                continue
            f = sot.fields[name]
            target = emu.sobject((f.reference_to or [""])[0])
            parent = emu.store.get(target.name, rec.get(name) or "") if target else None
            rel = row.setdefault(f.relationship_name or name, None)
            if parent is not None and target is not None:
                rel = rel or render(target, parent, version, [])
                rel[sub] = parent.get(sub)
                row[f.relationship_name or name] = rel
        out.append(row)
    return json_reply(200, {"totalSize": len(out), "done": True, "records": out})
