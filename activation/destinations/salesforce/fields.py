"""sObject describes, value conversion to Salesforce's formats, and mapping checks.

Values arrive JSON-safe (strings, numbers, booleans, ISO dates/datetimes, lists, None). Each is
converted for its field's describe type, so the API never sees a value it would refuse for its
shape; a value that cannot be converted rejects its row with a message naming the field.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

NUMBER_TYPES = frozenset({"double", "currency", "percent", "int", "long"})
_TRUE, _FALSE = frozenset({"true", "1", "yes", "y", "t"}), frozenset({"false", "0", "no", "n", "f"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class ConversionError(ValueError):
    """A value that cannot become the field's type (the row is rejected with this message)."""


@dataclass(frozen=True)
class SObjectInfo:
    """The parts of a describe the destination uses; field look-up ignores case, like the API."""

    name: str
    label: str
    fields: dict[str, dict[str, Any]]  # lower-case name → field describe

    @classmethod
    def from_describe(cls, desc: dict[str, Any]) -> SObjectInfo:
        return cls(desc["name"], desc.get("label") or desc["name"], {f["name"].lower(): f for f in desc.get("fields", [])})

    def field(self, name: str) -> dict[str, Any] | None:
        return self.fields.get(name.lower())

    def canonical(self, name: str) -> str:
        f = self.field(name)
        return f["name"] if f else name

    def suggest(self, name: str) -> str:
        names = [f["name"] for f in self.fields.values()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
        return f" (did you mean {', '.join(close)}?)" if close else ""


# ---------------------------------------------------------------- values


def _number(field: str, value: Any, integer: bool) -> int | float:
    if isinstance(value, bool):
        raise ConversionError(f"field {field}: expected a number, got a boolean ({value})")
    try:
        n = value if isinstance(value, (int, float)) else float(Decimal(str(value).strip()))
    except (ArithmeticError, ValueError):
        raise ConversionError(f"field {field}: cannot read {value!r} as a number") from None
    if isinstance(n, float) and not math.isfinite(n):
        raise ConversionError(f"field {field}: {value!r} is not a finite number")
    if integer:
        if float(n) != int(n):
            raise ConversionError(f"field {field}: expected a whole number, got {value!r}")
        return int(n)
    return n


def _datetime(field: str, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ConversionError(f"field {field}: expected an ISO date-time, got the number {value!r}")
    text = str(value).strip().replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)  # +0000 → +00:00
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConversionError(f"field {field}: cannot read {value!r} as a date-time (use ISO 8601)") from None
    t = (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)  # naive = UTC
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _date(field: str, value: Any) -> str:
    text = str(value).strip()
    if isinstance(value, (int, float, bool)) or not _DATE.match(text):
        raise ConversionError(f"field {field}: cannot read {value!r} as a date (use YYYY-MM-DD)")
    if len(text) > 10:  # a date-time for a date field: its UTC date
        return _datetime(field, text)[:10]
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ConversionError(f"field {field}: {value!r} is not a valid date") from None


def _text(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 42.0 → "42": external ids and codes often arrive as floats
    if isinstance(value, (dict, list)):
        raise ConversionError(f"field {field}: expected a single value, got {type(value).__name__}")
    return str(value)


def convert(describe: dict[str, Any], value: Any) -> Any:
    """`value` as the REST API wants it for this field (JSON); None stays None (clears it)."""
    if value is None:
        return None
    name, ftype = describe["name"], describe.get("type", "string")
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        low = str(value).strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ConversionError(f"field {name}: cannot read {value!r} as a boolean")
    if ftype in NUMBER_TYPES:
        return _number(name, value, ftype in ("int", "long"))
    if ftype == "date":
        return _date(name, value)
    if ftype == "datetime":
        return _datetime(name, value)
    if ftype == "multipicklist" and isinstance(value, (list, tuple)):
        return ";".join(_text(name, v) for v in value if v is not None)
    return _text(name, value)


def csv_cell(value: Any) -> str:
    """A converted value as a Bulk API CSV cell. An empty cell means "leave unchanged", so a
    cleared field (None or "") is sent as #N/A."""
    if value is None or value == "":
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")  # no exponent notation: 1e+20 is not a number in CSV
    return str(value)


# ---------------------------------------------------------------- checks


def field_problems(info: SObjectInfo, mode: str, match: str, fields: list[str]) -> list[str]:
    """What stops a sync of `mode` from writing `match` + `fields` to this sObject."""
    problems: list[str] = []
    obj = info.name
    ext = info.field(match)
    if ext is None:
        problems.append(f"{obj} has no field {match!r} (match){info.suggest(match)}")
    elif mode in ("upsert", "mirror") and not ext.get("externalId"):
        problems.append(
            f"{obj}.{ext['name']} is not an External ID field: upsert needs one (mark it External ID in Setup, or match on a field that is)"
        )
    elif mode == "update" and not ext.get("filterable", True):
        problems.append(f"{obj}.{ext['name']} cannot be filtered on, so records cannot be found by it")
    writes = [match] if mode in ("upsert", "mirror", "insert") else []
    for name in writes + [f for f in fields if f.lower() != match.lower()]:
        f = info.field(name)
        if f is None:
            if name != match:
                problems.append(f"{obj} has no field {name!r}{info.suggest(name)}")
            continue
        if mode in ("upsert", "mirror", "insert") and not f.get("createable"):
            problems.append(f"{obj}.{f['name']} is not createable (read-only or calculated)")
        elif mode in ("upsert", "mirror", "update") and not f.get("updateable") and name != match:
            problems.append(f"{obj}.{f['name']} is not updateable")
    return problems


def required_missing(info: SObjectInfo, mapped: list[str]) -> list[str]:
    """Fields a create needs (not nillable, createable, no default) that the sync does not map."""
    have = {m.lower() for m in mapped}
    return [
        f["name"]
        for f in info.fields.values()
        if not f.get("nillable", True)
        and f.get("createable")
        and not f.get("defaultedOnCreate")
        and f.get("type") != "boolean"
        and f["name"].lower() not in have
    ]
