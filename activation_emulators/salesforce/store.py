"""Records and DML for the Salesforce emulator: value parsing, validation, insert/update/upsert/delete.

Every write goes through `Store._put`, which keeps the unique/external-id indexes in step, so
upserts and duplicate checks stay O(1) per row even for bulk jobs of many thousand rows.

Validation runs in phases and reports the first phase that fails (field access, required,
format, references, uniqueness), with Salesforce's status codes and message shapes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Sequence
from typing import Any

from .schema import NUMBER_TYPES, TEXT_TYPES, Field, SObjectType, make_id, normalize_id

UNSET: Any = object()  # a CSV cell left empty: "do not touch this field"
_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


class RecordError(Exception):
    """A per-record failure, as it appears in a SaveResult's `errors` (or a bulk sf__Error)."""

    def __init__(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.fields = code, message, list(fields)

    def to_json(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def to_bulk(self) -> str:
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


def now_iso() -> str:
    t = dt.datetime.now(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


def _type_error(f: Field, value: Any) -> RecordError:
    return RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {value}", [f.name])


def _parse_datetime(s: str) -> str | None:
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s.strip().replace("Z", "+00:00"))
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    t = t.replace(tzinfo=t.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


def parse_text(f: Field, s: str) -> Any:
    """Parse a string for field `f` (CSV cells, and JSON strings for non-text fields)."""
    if f.type in TEXT_TYPES or f.type in ("id", "reference"):
        return s
    if f.type in NUMBER_TYPES:
        try:
            n = float(s)
        except ValueError:
            raise _type_error(f, s) from None
        if f.type == "int":
            if not n.is_integer():
                raise _type_error(f, s)
            return int(n)
        return n
    if f.type == "boolean":
        low = s.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise _type_error(f, s)
    if f.type == "date":
        try:  # strictly YYYY-MM-DD (fromisoformat alone also takes 20240131 and week dates)
            if len(s.strip()) != 10:
                raise ValueError(s)
            return dt.date.fromisoformat(s.strip()).isoformat()
        except ValueError:
            raise _type_error(f, s) from None
    parsed = _parse_datetime(s)  # datetime
    if parsed is None:
        raise _type_error(f, s)
    return parsed


def parse_json_value(f: Field, v: Any) -> Any:
    """A JSON value for `f`; scalars are coerced the way the REST API's JSON reader does."""
    if v is None:
        return None
    if isinstance(v, (dict, list)):
        raise _type_error(f, v)
    if f.type in TEXT_TYPES or f.type in ("id", "reference"):
        return ("true" if v else "false") if isinstance(v, bool) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    if f.type in NUMBER_TYPES and isinstance(v, (int, float)) and not isinstance(v, bool):
        if f.type == "int":
            if float(v).is_integer():
                return int(v)
            raise _type_error(f, v)
        return float(v)
    if f.type == "boolean" and isinstance(v, bool):
        return v
    if isinstance(v, str):
        return parse_text(f, v)
    raise _type_error(f, v)


Rels = dict[str, tuple[SObjectType, Field, Any]]  # reference field → (target, ext field, value)


def unknown_field(sot: SObjectType, name: str) -> RecordError:
    return RecordError("INVALID_FIELD", f"No such column '{name}' on sobject of type {sot.name}")


def parse_json_record(
    schema: dict[str, SObjectType], sot: SObjectType, raw: dict[str, Any], skip: Sequence[str] = ()
) -> tuple[dict[str, Any], Rels]:
    """Canonical field values and relationship references (``"Account": {"Ext__c": "a1"}``)."""
    values: dict[str, Any] = {}
    rels: Rels = {}
    skip_low = {s.lower() for s in skip} | {"attributes"}
    for key, v in raw.items():
        if key.lower() in skip_low:
            continue
        if isinstance(v, dict):
            ref = sot.relationship(key)
            if ref is None:
                raise unknown_field(sot, key)
            rels[ref.name] = relationship_target(schema, ref, v)
            continue
        f = sot.field(key)
        if f is None:
            raise unknown_field(sot, key)
        values[f.name] = parse_json_value(f, v)
    return values, rels


def relationship_target(schema: dict[str, SObjectType], ref: Field, spec: dict[str, Any]) -> tuple[SObjectType, Field, Any]:
    target_name = (spec.get("attributes") or {}).get("type") or (ref.reference_to or [""])[0]
    target = schema.get(target_name)
    keys = [k for k in spec if k != "attributes"]
    if target is None or len(keys) != 1:
        raise RecordError("INVALID_FIELD", f"Invalid foreign key reference for {ref.relationship_name}")
    ext = target.field(keys[0])
    if ext is None or not (ext.external_id or ext.type == "id"):
        raise RecordError("INVALID_FIELD", f"Invalid field for foreign key {keys[0]} on {target.name}")
    return target, ext, spec[keys[0]]


class Store:
    """Live and recycle-bin records for every sObject, with unique/external-id indexes."""

    def __init__(self, schema: dict[str, SObjectType]) -> None:
        self.schema = schema
        self.live: dict[str, dict[str, dict[str, Any]]] = {}
        self.deleted: dict[str, dict[str, dict[str, Any]]] = {}
        self._index: dict[tuple[str, str], dict[Any, set[str]]] = {}
        self._seq = itertools.count(1)

    # ------------------------------------------------------------ state

    def snapshot(self) -> tuple[Any, ...]:
        return ({s: dict(r) for s, r in self.live.items()}, {s: dict(r) for s, r in self.deleted.items()})

    def restore(self, snap: tuple[Any, ...]) -> None:
        """Roll back to `snap` (allOrNone). Records are replaced, never mutated, so a shallow
        copy of the id→record maps is a full snapshot."""
        self.live, self.deleted = snap
        self._index = {}
        for sobject, recs in self.live.items():
            for rid, rec in recs.items():
                self._reindex(sobject, rid, None, rec)

    def owner(self, rid: str) -> tuple[str, bool] | None:
        """(sobject, deleted) of a normalized id, or None when it never existed."""
        sobject = next((s.name for s in self.schema.values() if rid.startswith(s.key_prefix)), None)
        if sobject is None:
            return None
        if rid in self.live.get(sobject, {}):
            return sobject, False
        if rid in self.deleted.get(sobject, {}):
            return sobject, True
        return None

    def get(self, sobject: str, rid: str) -> dict[str, Any] | None:
        return self.live.get(sobject, {}).get(rid)

    # ------------------------------------------------------------ indexes

    @staticmethod
    def _key(f: Field, value: Any) -> Any:
        if isinstance(value, str) and not f.case_sensitive and f.type not in ("id", "reference"):
            return value.lower()
        return value

    def _reindex(self, sobject: str, rid: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for f in self.schema[sobject].fields.values():
            if not f.indexed:
                continue
            idx = self._index.setdefault((sobject, f.name), {})
            if old is not None and old.get(f.name) is not None:
                ids = idx.get(self._key(f, old[f.name]))
                if ids:
                    ids.discard(rid)
            if new is not None and new.get(f.name) is not None:
                idx.setdefault(self._key(f, new[f.name]), set()).add(rid)

    def id_set(self, sobject: str, field: str, value: Any) -> set[str] | list[str]:
        """find_ids without sorting, straight from the index where there is one."""
        f = self.schema[sobject].field(field)
        if f is not None and f.indexed:
            return self._index.get((sobject, f.name), {}).get(self._key(f, value), set())  # type: ignore[return-value]
        return self.find_ids(sobject, field, value)

    def find_ids(self, sobject: str, field: str, value: Any) -> list[str]:
        sot = self.schema[sobject]
        f = sot.field(field)
        if f is None:
            return []
        if f.indexed:
            return sorted(self._index.get((sobject, f.name), {}).get(self._key(f, value), ()))
        want = self._key(f, value)
        return [rid for rid, rec in self.live.get(sobject, {}).items() if self._key(f, rec.get(f.name)) == want]

    def _put(self, sobject: str, rid: str, rec: dict[str, Any] | None, *, deleted: bool = False) -> None:
        live = self.live.setdefault(sobject, {})
        self._reindex(sobject, rid, live.get(rid), None if deleted else rec)
        if deleted or rec is None:
            live.pop(rid, None)
            if rec is not None:
                self.deleted.setdefault(sobject, {})[rid] = rec
            else:
                self.deleted.get(sobject, {}).pop(rid, None)
        else:
            live[rid] = rec
            self.deleted.get(sobject, {}).pop(rid, None)

    # ------------------------------------------------------------ validation

    def resolve(self, rels: Rels, values: dict[str, Any]) -> None:
        """Turn external-id relationship references into ids (in `values`)."""
        for ref_name, (target, ext, value) in rels.items():
            ids = (
                self.find_ids(target.name, ext.name, value)
                if ext.type != "id"
                else ([normalize_id(value)] if self.owner(normalize_id(value) or "") else [])
            )
            if len(ids) != 1:
                detail = "not found" if not ids else "matched more than one record"
                raise RecordError(
                    "INVALID_FIELD", f"Foreign key external ID: {value} {detail} for field {ext.name} in entity {target.name}"
                )
            values[ref_name] = ids[0]

    def check_id(self, sot: SObjectType, raw: Any, *, label: str) -> str:
        """A live record id of type `sot`, or the RecordError an update/delete gets."""
        rid = normalize_id(raw)
        if rid is None or not rid.startswith(sot.key_prefix):
            raise RecordError("MALFORMED_ID", f"{label}: id value of incorrect type: {raw}", ["Id"])
        found = self.owner(rid)
        if found is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if found[1]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        return rid

    def _validate(self, sot: SObjectType, values: dict[str, Any], rid: str | None, current: dict[str, Any] | None) -> None:
        creating = current is None
        # 1. field access: calculated / system / create-only fields
        denied = [n for n in values if not (sot.fields[n].createable if creating else sot.fields[n].updateable)]
        if denied:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(denied)}. Please check "
                "the security settings of this field and verify that it is read/write "
                "for your profile or permission set.",
                denied,
            )
        # 2. required: absent on create, or explicitly nulled
        missing = [
            f.name
            for f in sot.fields.values()
            if (f.is_required and creating and values.get(f.name) is None)
            or (f.name in values and values[f.name] is None and not f.nillable)
        ]
        if creating:
            for group in sot.one_of_required:
                if all(values.get(n) is None for n in group):
                    missing += list(group)
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        # 3. formats
        for name, v in values.items():
            f = sot.fields[name]
            if v is None:
                continue
            if f.type in TEXT_TYPES and len(str(v)) > (f.length or 0):
                raise RecordError("STRING_TOO_LONG", f"{f.label}: data value too large: {v} (max length={f.length})", [name])
            if f.type == "email" and not _EMAIL_RE.match(v):
                raise RecordError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {v}", [name])
            if f.type == "picklist" and f.restricted and v not in (f.picklist or []):
                raise RecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"{f.label}: bad value for restricted picklist field: {v}", [name]
                )
        # 4. references
        for name, v in list(values.items()):
            f = sot.fields[name]
            if f.type != "reference" or v is None:
                continue
            ref = normalize_id(v)
            if ref is None:
                raise RecordError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {v}", [name])
            found = self.owner(ref)
            if not any(ref.startswith(self.schema[t].key_prefix) for t in (f.reference_to or []) if t in self.schema):
                raise RecordError("FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {v}", [name])
            if found is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            if found[1]:
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
            values[name] = ref
        # 5. uniqueness (against live records, including earlier rows of this request)
        merged = {**(current or {}), **values}
        for name, v in values.items():
            f = sot.fields[name]
            if f.unique and v is not None:
                clash = [i for i in self.find_ids(sot.name, name, v) if i != rid]
                if clash:
                    raise RecordError("DUPLICATE_VALUE", f"duplicate value found: {name} duplicates value on record with id: {clash[0]}")
        for fields, message in sot.unique_together:
            if any(merged.get(n) is None for n in fields):
                continue
            # the most selective field's index (a contact has few memberships, a campaign many)
            first = min((self.id_set(sot.name, n, merged[n]) for n in fields), key=len)
            if any(i != rid and all(self.live[sot.name][i].get(n) == merged[n] for n in fields) for i in first):
                raise RecordError("DUPLICATE_VALUE", message)

    # ------------------------------------------------------------ DML

    def insert(self, sot: SObjectType, values: dict[str, Any], rels: Rels | None = None) -> str:
        if values.get("Id") is not None:
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"])
        values = {k: v for k, v in values.items() if k != "Id" and v is not UNSET}
        self.resolve(rels or {}, values)
        self._validate(sot, values, None, None)
        rid = make_id(sot.key_prefix, next(self._seq))
        stamp = now_iso()
        rec: dict[str, Any] = {n: (f.default if f.default not in (None, "") else None) for n, f in sot.fields.items()}
        rec.update(values)
        rec.update(Id=rid, IsDeleted=False, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        if sot.compute:
            rec.update(sot.compute(rec))
        self._put(sot.name, rid, rec)
        return rid

    def update(self, sot: SObjectType, rid: str, values: dict[str, Any], rels: Rels | None = None) -> None:
        values = {k: v for k, v in values.items() if k != "Id" and v is not UNSET}
        current = self.live[sot.name][rid]
        self.resolve(rels or {}, values)
        self._validate(sot, values, rid, current)
        stamp = now_iso()
        rec = {**current, **values, "LastModifiedDate": stamp, "SystemModstamp": stamp}
        if sot.compute:
            rec.update(sot.compute(rec))
        self._put(sot.name, rid, rec)

    def upsert(self, sot: SObjectType, ext: Field, value: Any, values: dict[str, Any], rels: Rels | None = None) -> tuple[str, bool]:
        """Match on `ext` = `value` among live records: none → insert, one → update."""
        if value is None or value == "":
            raise RecordError("MISSING_ARGUMENT", f"{ext.name} not specified")
        ids = self.find_ids(sot.name, ext.name, value)
        if len(ids) > 1:
            raise RecordError("DUPLICATE_EXTERNAL_ID", f"{ext.label}: more than one record found for external id field: {ids}", [ext.name])
        if ids:
            rest = {k: v for k, v in values.items() if k != ext.name}
            self.update(sot, ids[0], rest, rels)
            return ids[0], False
        return self.insert(sot, {**values, ext.name: value}, rels), True

    def delete(self, raw: Any, *, hard: bool = False) -> str:
        rid = normalize_id(raw)
        if rid is None:
            raise RecordError("MALFORMED_ID", f"malformed id {raw}", [])
        found = self.owner(rid)
        if found is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        sobject, was_deleted = found
        if was_deleted and not hard:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        if hard:  # gone for good, recycle bin included
            self._put(sobject, rid, None)
        else:
            rec = {**self.live[sobject][rid], "IsDeleted": True, "SystemModstamp": now_iso()}
            self._put(sobject, rid, rec, deleted=True)
        # Salesforce deletes a person's (or a campaign's) campaign members with it
        members = (
            sorted({mid for link in ("ContactId", "LeadId", "CampaignId") for mid in self.id_set("CampaignMember", link, rid)})
            if "CampaignMember" in self.schema
            else []
        )
        for mid in members:
            self.delete(mid, hard=hard)
        return rid
