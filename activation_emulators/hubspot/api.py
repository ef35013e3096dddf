"""The CRM v3 behaviour: objects (single, batch, search) and properties over the store; lists in lists.py.

Handlers take already-validated input and return ``(status, body, headers)``. Where HubSpot's
behaviour is documented or seen in public reports it is followed; the rest is marked
"(unconfirmed)" in comments.
"""

from __future__ import annotations

import json
import random
from typing import Any, Literal

from .lists import ListsApi
from .replies import Reply, cursor, error, scalar_str
from .spec import Match
from .store import HubSpotList, ObjectType, PropertyDef, Record, check_value, now_iso, options_from, seeded_types, stored_value

BatchErrors = Literal["hubspot", "multi-status"]
MAX_BATCH = 100


class _Failure:
    """Why one batch input failed; becomes a 207 error entry or fails the whole batch."""

    def __init__(
        self, category: str, message: str, results: list[dict[str, Any]] | None = None, context: dict[str, list[str]] | None = None
    ) -> None:
        self.category, self.message, self.results, self.context = category, message, results or [], context or {}

    def entry(self) -> dict[str, Any]:
        details = [{"message": r["message"], "code": r["error"], "in": r["name"]} for r in self.results]
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": self.context,
            "errors": details,
            "links": {},
        }


class CrmApi(ListsApi):
    def __init__(self, portal_id: int = 12345678, batch_errors: BatchErrors = "hubspot", shuffle_results: bool = False) -> None:
        self.portal_id = portal_id
        self.batch_errors = batch_errors
        self.shuffle_results = shuffle_results  # HubSpot does not promise input order in batch results
        # Whether an upsert's or update's results echo the idProperty's value in `properties`.
        # HubSpot does not document that they do: a client must not depend on it.
        self.echo_id_property = True
        self.reset()

    def reset(self, keep_schema: bool = False) -> None:
        if keep_schema:
            for t in self.types.values():
                t.records.clear()
                t.unique_index.clear()
        else:
            self.types: dict[str, ObjectType] = seeded_types()
            self._custom_ids = 0
        self.lists: dict[str, HubSpotList] = {}
        self._next_id = 100  # ids are strings of an incrementing integer
        self._next_list_id = 1

    # -- schema

    def object_type(self, key: str) -> ObjectType | None:
        key = key.lower()
        for t in self.types.values():
            if key in (t.name, t.type_id, t.singular.lower()):
                return t
        return None

    def add_object_type(
        self, name: str, properties: list[str | dict[str, Any]] | None = None, unique: list[str] | None = None, singular: str | None = None
    ) -> ObjectType:
        self._custom_ids += 1
        t = ObjectType(name, f"2-{1000 + self._custom_ids}", (singular or name.removeprefix("p_").rstrip("s")).upper())
        for p in ("hs_object_id", "hs_createdate", "hs_lastmodifieddate"):
            kind = "number" if p == "hs_object_id" else "datetime"
            t.properties[p] = PropertyDef(p, kind, hubspot_defined=True, read_only=True, group_name=f"{name}_information")
        for spec in properties or []:  # "name" or {"name": ..., "type": ..., "options": [...]}
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            prop_name = spec.pop("name")
            spec["unique"] = bool(spec.get("unique")) or prop_name in (unique or [])
            self.add_property(t, prop_name, **spec)
        for u in unique or []:
            if u not in t.properties:
                self.add_property(t, u, unique=True)
            t.properties[u].has_unique_value = True
        t.schema_changed()
        t.default_read = ("hs_object_id", "hs_createdate", "hs_lastmodifieddate")
        t.modified_property = "hs_lastmodifieddate"
        self.types[name] = t
        return t

    def add_property(
        self,
        object_type: str | ObjectType,
        name: str,
        type: str = "string",
        options: list[str | dict[str, Any]] | None = None,
        unique: bool = False,
        label: str | None = None,
        field_type: str | None = None,
        group_name: str | None = None,
    ) -> PropertyDef:
        t = object_type if isinstance(object_type, ObjectType) else self.object_type(object_type)
        if t is None:
            raise KeyError(f"unknown object type {object_type!r}")
        if type not in ("string", "number", "bool", "enumeration", "date", "datetime", "phone_number"):
            raise ValueError(f"unknown property type {type!r}")
        group = group_name or {"contacts": "contactinformation", "companies": "companyinformation"}.get(t.name, f"{t.name}_information")
        prop = PropertyDef(name, type, label or "", field_type or "", group, options=options_from(options or []), has_unique_value=unique)
        t.properties[name] = prop
        t.schema_changed()
        return prop

    # -- record rendering

    def _render(self, t: ObjectType, rec: Record, names: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        props = self._read_props(t, rec, names)
        body = {"id": rec.id, "properties": props, "createdAt": rec.created_at, "updatedAt": rec.updated_at, "archived": rec.archived}
        if rec.archived_at:
            body["archivedAt"] = rec.archived_at
        body.update(extra)
        return body

    @staticmethod
    def _read_props(t: ObjectType, rec: Record, names: list[str] | None) -> dict[str, str]:
        # Unset properties are left out: the document types values as strings (live HubSpot sends null).
        if names is None:  # a write answers with everything it holds
            return dict(rec.properties)
        wanted = names or list(t.default_read)
        base = [n for n in t.default_read if n in ("hs_object_id", "createdate", "hs_createdate", t.modified_property)]
        return {n: rec.properties[n] for n in dict.fromkeys(wanted + base) if rec.properties.get(n, "") != ""}

    def _order(self, items: list[Any]) -> list[Any]:
        if self.shuffle_results:
            random.shuffle(items)
        return items

    # -- writes

    def _invalid(self, name: str, message: str, code: str) -> dict[str, Any]:
        result: dict[str, Any] = {"isValid": False, "message": message, "error": code, "name": name}
        if code == "PROPERTY_DOESNT_EXIST":  # as in HubSpot's answers for unknown properties
            result.update(localizedErrorMessage=message, portalId=self.portal_id)
        elif code == "INVALID_OPTION":  # as in HubSpot's answers for enumeration values
            result.update(localizedErrorMessage=message)
        return result

    def _check_props(self, t: ObjectType, props: dict[str, str]) -> list[dict[str, Any]]:
        problems = []
        for name, value in props.items():
            prop = t.properties.get(name)
            if prop is None:
                problems.append(self._invalid(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"))
                continue
            bad = check_value(t.name, prop, value)
            if bad:
                problems.append(self._invalid(name, bad[1], bad[0]))
        return problems

    @staticmethod
    def _values_message(problems: list[dict[str, Any]]) -> str:
        return "Property values were not valid: " + json.dumps(problems, separators=(",", ":"))

    def _conflict(self, t: ObjectType, props: dict[str, str], own_id: str | None, pending: dict[tuple[str, str], str]) -> _Failure | None:
        for name in t.indexed():
            value = props.get(name)
            if not value:
                continue
            key = (name, t.index_key(name, value))
            other = t.unique_index.get(name, {}).get(key[1]) or pending.get(key)
            if other and other != own_id:
                return _Failure("CONFLICT", f"{t.singular.title()} already exists. Existing ID: {other}")
        return None

    def _write(self, t: ObjectType, rec: Record | None, props: dict[str, str], now: str) -> tuple[Record, bool]:
        writable = {}
        for k, v in props.items():
            prop = t.properties[k]
            if not prop.read_only:  # (unconfirmed) writes to read-only properties are ignored
                writable[k] = stored_value(prop, v) if prop.type in ("date", "datetime") else v
        if t.name == "contacts" and writable.get("email"):
            writable["email"] = writable["email"].lower()  # HubSpot keeps emails lower-case
        if rec is None:
            rec_id = str(self._next_id)
            self._next_id += 1
            rec = Record(rec_id, {}, now, now)
            created_prop = "createdate" if "createdate" in t.properties else "hs_createdate"
            rec.properties.update({"hs_object_id": rec_id, created_prop: now})
            new = True
            t.records[rec_id] = rec
        else:
            new = False
        old = dict(rec.properties)
        for k, v in writable.items():
            if v == "":
                rec.properties.pop(k, None)
            else:
                rec.properties[k] = v
        rec.updated_at = now
        rec.properties[t.modified_property] = now
        t.reindex(rec, old)
        return rec, new

    def _id_property_error(self, t: ObjectType, id_property: str | None, upsert: bool) -> Reply | None:
        if not id_property:
            return None
        if t.is_unique(id_property) or (upsert and t.name == "contacts" and id_property == "email"):
            return None
        # HubSpot's answer, seen for hs_object_id on 0-2 and for email in batch update on 0-1.
        return error(
            400,
            f"Unable to perform update/upsert by non-unique {t.type_id} property {id_property} in portal ID {self.portal_id}",
            "VALIDATION_ERROR",
        )

    def batch_write(self, t: ObjectType, kind: Literal["create", "update", "upsert"], inputs: list[dict[str, Any]]) -> Reply:
        started = now_iso()
        if len(inputs) > MAX_BATCH:
            return error(
                400,
                f"The maximum number of inputs supported in a batch is {MAX_BATCH}. Please reduce the number of items and try again",
                "VALIDATION_ERROR",
            )
        if kind != "create":
            for id_property in {i.get("idProperty") for i in inputs}:
                bad = self._id_property_error(t, id_property, kind == "upsert")
                if bad:
                    return bad
            seen: set[str] = set()
            dupes = []
            for i in inputs:
                key = t.index_key(i.get("idProperty") or "", scalar_str(i.get("id")))
                if key in seen:
                    dupes.append(scalar_str(i.get("id")))
                seen.add(key)
            if dupes:  # (unconfirmed wording)
                return error(400, f"Duplicate IDs found in batch input: {dupes}. IDs must be unique", "VALIDATION_ERROR")

        plans: list[tuple[dict[str, Any], Record | None, dict[str, str], _Failure | None]] = []
        pending: dict[tuple[str, str], str] = {}
        for n, item in enumerate(inputs):
            props = {k: scalar_str(v) for k, v in (item.get("properties") or {}).items()}
            target: Record | None = None
            failure: _Failure | None = None
            if kind in ("update", "upsert"):
                id_value, id_property = scalar_str(item.get("id")), item.get("idProperty")
                target = t.lookup(id_property or "hs_object_id", id_value)
                if target is not None and target.archived:
                    target = None
                if kind == "upsert" and id_property and target is None:
                    props = {id_property: id_value, **props}  # a created record carries its key
                elif target is None:
                    failure = _Failure("OBJECT_NOT_FOUND", "Object not found. objectId are usually numeric.", context={"ids": [id_value]})
            problems = [] if failure else self._check_props(t, props)
            if problems:
                failure = _Failure("VALIDATION_ERROR", self._values_message(problems), problems)
            if failure is None:
                failure = self._conflict(t, props, target.id if target else None, pending)
            if failure is None:
                for name in t.indexed():
                    if props.get(name):
                        pending[(name, t.index_key(name, props[name]))] = target.id if target else f"#{n}"
            elif kind == "create" and item.get("objectWriteTraceId"):
                failure.context.setdefault("objectWriteTraceId", [item["objectWriteTraceId"]])
            elif kind != "create":
                failure.context.setdefault("ids", [scalar_str(item.get("id"))])
            plans.append((item, target, props, failure))

        failures = [f for *_, f in plans if f]
        traces = [i.get("objectWriteTraceId") for i in inputs]
        multi = self.batch_errors == "multi-status" or (
            kind == "create" and all(traces) and len(set(traces)) == len(traces)
        )  # HubSpot's documented opt-in
        if failures and not multi:
            problems = [r for f in failures for r in f.results]
            if problems:  # the whole batch is refused, nothing is written
                return error(400, self._values_message(problems), "VALIDATION_ERROR")
            conflict = next((f for f in failures if f.category == "CONFLICT"), None)
            if conflict:
                return error(409, conflict.message, "CONFLICT")

        results, errors = [], []
        now = now_iso()  # one timestamp per batch, as HubSpot stamps a batch
        for item, target, props, failure in plans:
            if failure:
                errors.append(failure.entry())
                continue
            rec, new = self._write(t, target, props, now)
            extra: dict[str, Any] = {}
            if kind == "upsert":
                extra["new"] = new
            if item.get("objectWriteTraceId"):
                extra["objectWriteTraceId"] = item["objectWriteTraceId"]
            rendered = self._render(t, rec, **extra)
            if not self.echo_id_property and item.get("idProperty"):
                rendered["properties"].pop(item["idProperty"], None)
            results.append(rendered)
        body: dict[str, Any] = {"status": "COMPLETE", "results": self._order(results), "startedAt": started, "completedAt": now_iso()}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
            return 207, body, {}
        return (201 if kind == "create" else 200), body, {}

    def batch_read(self, t: ObjectType, body: dict[str, Any], archived: bool) -> Reply:
        started = now_iso()
        inputs = body.get("inputs") or []
        if len(inputs) > MAX_BATCH:
            return error(
                400,
                f"The maximum number of inputs supported in a batch is {MAX_BATCH}. Please reduce the number of items and try again",
                "VALIDATION_ERROR",
            )
        if "propertiesWithHistory" not in body:  # required by the published documents (also when they are not loaded)
            return error(400, "Invalid input JSON on line 1: 'propertiesWithHistory' is a required property", "VALIDATION_ERROR")
        id_property = body.get("idProperty")
        if id_property and not (t.is_unique(id_property) or id_property == "email" and t.name == "contacts"):
            # (unconfirmed wording)
            return error(400, f"{id_property} is not a unique property of {t.type_id}", "VALIDATION_ERROR")
        names = list(body.get("properties") or [])
        results, missing = [], []
        for item in inputs:
            value = scalar_str(item.get("id"))
            rec = t.lookup(id_property or "hs_object_id", value)
            if rec is None or rec.archived != archived:
                missing.append(value)
            else:
                results.append(self._render(t, rec, names))
        out: dict[str, Any] = {"status": "COMPLETE", "results": self._order(results), "startedAt": started, "completedAt": now_iso()}
        if missing:  # HubSpot answers 207 with one error listing the ids it could not find
            out.update(
                numErrors=1,
                errors=[
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"Could not get some {t.singular} objects, they may be deleted or not exist. Check that ids are valid.",
                        "context": {"ids": missing},
                        "errors": [],
                        "links": {},
                    }
                ],
            )
            return 207, out, {}
        return 200, out, {}

    def batch_archive(self, t: ObjectType, inputs: list[dict[str, Any]]) -> Reply:
        if len(inputs) > MAX_BATCH:
            return error(
                400,
                f"The maximum number of inputs supported in a batch is {MAX_BATCH}. Please reduce the number of items and try again",
                "VALIDATION_ERROR",
            )
        for item in inputs:  # unknown ids are ignored
            self.archive(t, scalar_str(item.get("id")))
        return 204, None, {}

    def archive(self, t: ObjectType, rec_id: str) -> None:
        rec = t.records.get(rec_id)
        if rec and not rec.archived:
            old = dict(rec.properties)
            rec.archived, rec.archived_at = True, now_iso()
            t.reindex(rec, old)
            for lst in self.lists.values():
                lst.members.pop(rec_id, None)

    # -- single objects

    def get_object(self, t: ObjectType, rec_id: str, query: dict[str, list[str]]) -> Reply:
        id_property = (query.get("idProperty") or [None])[0]
        rec = t.lookup(id_property or "hs_object_id", rec_id)
        archived = (query.get("archived") or ["false"])[0].lower() == "true"
        if rec is None or rec.archived != archived:
            return 404, None, {}  # (unconfirmed) HubSpot answers 404 with an empty body here
        return 200, self._render(t, rec, _names(query)), {}

    def list_objects(self, t: ObjectType, query: dict[str, list[str]], base: str) -> Reply:
        limit = min(int((query.get("limit") or ["10"])[0]), 100)
        after = cursor((query.get("after") or ["0"])[0])
        if after is None:
            return error(400, "Invalid paging cursor: after", "VALIDATION_ERROR")
        archived = (query.get("archived") or ["false"])[0].lower() == "true"
        recs = sorted((r for r in t.records.values() if r.archived == archived and int(r.id) >= after), key=lambda r: int(r.id))
        page = recs[:limit]
        body: dict[str, Any] = {"results": [self._render(t, r, _names(query)) for r in page]}
        if len(recs) > limit:
            nxt = recs[limit].id
            body["paging"] = {"next": {"after": nxt, "link": f"{base}?after={nxt}"}}
        return 200, body, {}

    def create_object(self, t: ObjectType, body: dict[str, Any]) -> Reply:
        status, out, headers = self.batch_write(t, "create", [{"properties": body.get("properties") or {}}])
        if status == 201:
            return 201, out["results"][0], headers
        return status, out, headers

    def update_object(self, t: ObjectType, rec_id: str, body: dict[str, Any], query: dict[str, list[str]]) -> Reply:
        id_property = (query.get("idProperty") or [None])[0]
        item = {"id": rec_id, "properties": body.get("properties") or {}, **({"idProperty": id_property} if id_property else {})}
        status, out, headers = self.batch_write(t, "update", [item])
        if status == 200:
            return 200, out["results"][0], headers
        if status == 207:
            return 404, None, {}
        return status, out, headers

    def search(self, t: ObjectType, body: dict[str, Any]) -> Reply:
        groups = body.get("filterGroups") or []
        matched = [
            r
            for r in sorted(t.records.values(), key=lambda r: int(r.id))
            if not r.archived and (not groups or any(all(_filter(t, r, f) for f in g.get("filters", [])) for g in groups))
        ]
        query = (body.get("query") or "").lower()
        if query:
            matched = [r for r in matched if any(query in v.lower() for v in r.properties.values())]
        offset = cursor(body.get("after") or "0")
        if offset is None:
            return error(400, "Invalid paging cursor: after", "VALIDATION_ERROR")
        limit = min(int(body.get("limit") or 10), 200)
        page = matched[offset : offset + limit]
        out: dict[str, Any] = {"total": len(matched), "results": [self._render(t, r, list(body.get("properties") or [])) for r in page]}
        if offset + limit < len(matched):
            out["paging"] = {"next": {"after": str(offset + limit)}}
        return 200, out, {}

    # -- properties

    def list_properties(self, t: ObjectType, archived: bool) -> Reply:
        return 200, {"results": [] if archived else [p.to_api() for p in t.properties.values()]}, {}

    def get_property(self, t: ObjectType, name: str) -> Reply:
        prop = t.properties.get(name)
        if prop is None:  # (unconfirmed wording)
            return error(404, f'Property "{name}" does not exist', "OBJECT_NOT_FOUND")
        return 200, prop.to_api(), {}

    def create_property(self, t: ObjectType, body: dict[str, Any]) -> Reply:
        name = body["name"]
        if name in t.properties:
            return error(409, f"Property named '{name}' already exists.", "CONFLICT")
        prop = self.add_property(
            t,
            name,
            body["type"],
            body.get("options") or [],
            bool(body.get("hasUniqueValue")),
            body.get("label"),
            body.get("fieldType"),
            body.get("groupName"),
        )
        prop.description = body.get("description") or ""
        return 201, prop.to_api(), {}

    # -- dispatch

    def handle(self, match: Match, query: list[tuple[str, str]], body: Any, base_url: str) -> Reply:
        op, v = match.operation, match.variables
        q: dict[str, list[str]] = {}
        for k, val in query:
            q.setdefault(k, []).append(val)
        template = op.template.replace("/crm/v3/objects/contacts", "/crm/v3/objects/{objectType}").replace(
            "/crm/v3/objects/companies", "/crm/v3/objects/{objectType}"
        )
        route = f"{op.method.upper()} {template}"
        if template.startswith("/crm/v3/objects/") or template.startswith("/crm/v3/properties/"):
            type_key = match.object_type or v.get("objectType", "")
            t = self.object_type(type_key)
            if t is None:
                return error(400, f"Unable to infer object type from: {type_key}", "VALIDATION_ERROR")
            rec_id = v.get("contactId") or v.get("companyId") or ""
            archived = (q.get("archived") or ["false"])[0].lower() in ("true", "1")
            objects = {
                "POST /crm/v3/objects/{objectType}/batch/create": lambda: self.batch_write(t, "create", body["inputs"]),
                "POST /crm/v3/objects/{objectType}/batch/update": lambda: self.batch_write(t, "update", body["inputs"]),
                "POST /crm/v3/objects/{objectType}/batch/upsert": lambda: self.batch_write(t, "upsert", body["inputs"]),
                "POST /crm/v3/objects/{objectType}/batch/read": lambda: self.batch_read(t, body, archived),
                "POST /crm/v3/objects/{objectType}/batch/archive": lambda: self.batch_archive(t, body["inputs"]),
                "GET /crm/v3/objects/{objectType}": lambda: self.list_objects(t, q, f"{base_url}/crm/v3/objects/{type_key}"),
                "POST /crm/v3/objects/{objectType}": lambda: self.create_object(t, body),
                "POST /crm/v3/objects/{objectType}/search": lambda: self.search(t, body),
                "GET /crm/v3/objects/{objectType}/{contactId}": lambda: self.get_object(t, rec_id, q),
                "GET /crm/v3/objects/{objectType}/{companyId}": lambda: self.get_object(t, rec_id, q),
                "PATCH /crm/v3/objects/{objectType}/{contactId}": lambda: self.update_object(t, rec_id, body, q),
                "PATCH /crm/v3/objects/{objectType}/{companyId}": lambda: self.update_object(t, rec_id, body, q),
                "DELETE /crm/v3/objects/{objectType}/{contactId}": lambda: (self.archive(t, rec_id), (204, None, {}))[1],
                "DELETE /crm/v3/objects/{objectType}/{companyId}": lambda: (self.archive(t, rec_id), (204, None, {}))[1],
                "GET /crm/v3/properties/{objectType}": lambda: self.list_properties(t, archived),
                "GET /crm/v3/properties/{objectType}/{propertyName}": lambda: self.get_property(t, v["propertyName"]),
                "POST /crm/v3/properties/{objectType}": lambda: self.create_property(t, body),
            }
            handler = objects.get(route)
        else:
            handler = self.list_routes(body, q, v).get(route)
        if handler is None:
            return error(501, f"The emulator does not implement {route}", "NOT_IMPLEMENTED")
        return handler()


def _names(query: dict[str, list[str]]) -> list[str]:
    # Form-exploded (properties=a&properties=b) or comma-separated (properties=a,b): HubSpot takes both.
    return [n for v in query.get("properties", []) for n in v.split(",") if n]


def _filter(t: ObjectType, rec: Record, f: dict[str, Any]) -> bool:
    name, op = f["propertyName"], f["operator"]
    value = rec.properties.get(name)
    if name == "email" and value is not None:
        value = value.lower()
    want = f.get("value")
    if name == "email" and want:
        want = want.lower()
    if op == "HAS_PROPERTY":
        return value is not None
    if op == "NOT_HAS_PROPERTY":
        return value is None
    if op == "EQ":
        return value == want
    if op == "NEQ":
        return value != want
    if op in ("IN", "NOT_IN"):
        values = [x.lower() if name == "email" else x for x in f.get("values") or []]
        return (value in values) == (op == "IN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        hit = value is not None and (want or "").strip("*").lower() in value.lower()
        return hit == (op == "CONTAINS_TOKEN")
    if value is None:
        return False
    try:
        a, b = float(value), float(want or 0)
        hi = float(f.get("highValue") or 0)
    except ValueError:
        a, b, hi = value, want or "", f.get("highValue") or ""  # type: ignore[assignment]
    return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b, "BETWEEN": b <= a <= hi}.get(op, False)
