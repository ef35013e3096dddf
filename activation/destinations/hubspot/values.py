"""HubSpot property values: each mapped value converted for its property's definition.

HubSpot stores every value as a string and reads it by the property's `type` (properties
API; the formats are HubSpot's documented ones):

- string, phone_number (and types we do not know): the value as text; booleans as
  `true`/`false`, lists joined with `;`, objects as JSON.
- number: a plain decimal (`12.5`, `100000000000000000000`; never an exponent).
- bool: `true` / `false`, read from booleans, 0/1 and yes/no/true/false/t/f/y/n text.
- date: `YYYY-MM-DD` (a date-time value gives its UTC calendar date; numbers are epoch ms).
- datetime: ISO 8601 in UTC with milliseconds, `2024-05-01T09:30:00.000Z` (naive = UTC;
  numbers are epoch ms).
- enumeration: the option value(s); a multiple-checkbox property (fieldType `checkbox`)
  takes a list, joined with `;`. Values are checked against the property's options when it
  lists any (pipeline stages and owners have external options, checked by HubSpot).

None clears the property (`""`). Non-string values lose surrounding whitespace (HubSpot
refuses it). A value that cannot be converted raises `ConversionError`, whose message names
the field and the value's type but not the value (it may be personal data; the row key
identifies the row).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

Converter = Callable[[Any], str]
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


class ConversionError(ValueError):
    """A value its property cannot take; the row is rejected with this message."""


@dataclass(frozen=True)
class PropertyInfo:
    """The parts of a property definition that decide how values are written."""

    name: str
    type: str  # string · number · bool · enumeration · date · datetime · phone_number · …
    field_type: str = ""
    options: frozenset[str] = frozenset()  # empty: not listed (free text, or external options)
    read_only: bool = False

    @classmethod
    def from_api(cls, p: dict[str, Any]) -> PropertyInfo:
        options = frozenset(str(o["value"]) for o in p.get("options") or [] if "value" in o)
        read_only = bool((p.get("modificationMetadata") or {}).get("readOnlyValue"))
        return cls(p["name"], p.get("type") or "string", p.get("fieldType") or "", options, read_only)

    @property
    def multiple(self) -> bool:
        return self.type == "enumeration" and self.field_type == "checkbox"


def plain_number(value: int | float | Decimal) -> str:
    """A number as a plain decimal: no exponent, no trailing `.0`."""
    if isinstance(value, int):
        return str(value)
    d = value if isinstance(value, Decimal) else Decimal(repr(value))
    text = format(d, "f")
    return text[:-2] if text.endswith(".0") else text


def as_text(value: Any) -> str:
    """A value for a string property (and for types not known here)."""
    t = type(value)
    if t is str:
        return value
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        return plain_number(value)
    if t is list or t is tuple:
        return ";".join(as_text(v) for v in value)
    if t is dict:
        return json.dumps(value, sort_keys=True)
    return str(value)


def _kind(value: Any) -> str:
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} value"


def _fail(field: str, value: Any, wanted: str) -> ConversionError:
    return ConversionError(f"field {field!r}: cannot convert {_kind(value)} to {wanted}")


def _number(field: str, value: Any) -> str:
    if value is None:
        return ""
    if type(value) is bool or isinstance(value, (list, dict)):
        raise _fail(field, value, "a HubSpot number")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(field, value, "a HubSpot number (it is not finite)")
        return plain_number(value)
    text = str(value).strip()
    if text == "":
        return ""
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise _fail(field, value, "a HubSpot number (it is not a number)") from None
    if not d.is_finite():
        raise _fail(field, value, "a HubSpot number (it is not finite)")
    return plain_number(d)


def _bool(field: str, value: Any) -> str:
    if value is None:
        return ""
    if type(value) is bool:
        return "true" if value else "false"
    if isinstance(value, (int, float)) and value in (0, 1):
        return "true" if value else "false"
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text == "":
        return ""
    if text in _TRUE or text in _FALSE:
        return "true" if text in _TRUE else "false"
    raise _fail(field, value, "a HubSpot bool (true/false, yes/no, 1/0)")


def _instant(field: str, value: Any, wanted: str) -> dt.datetime | None:
    """A value as an aware UTC datetime (None for empty); a bare date is midnight UTC."""
    if value is None:
        return None
    if type(value) is bool or isinstance(value, (list, dict)):
        raise _fail(field, value, wanted)
    if isinstance(value, (int, float)):  # epoch milliseconds, as HubSpot's APIs take them
        if not math.isfinite(value):
            raise _fail(field, value, wanted)
        try:
            return _EPOCH + dt.timedelta(milliseconds=value)
        except OverflowError:
            raise _fail(field, value, f"{wanted} (out of range)") from None
    text = str(value).strip()
    if text == "":
        return None
    if text.isdigit():
        return _instant(field, int(text), wanted)
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), _UTC)
        t = dt.datetime.fromisoformat(_OFFSET.sub(r"\1:\2", text.replace("Z", "+00:00")))
    except ValueError:
        raise _fail(field, value, f"{wanted} (ISO 8601 or epoch milliseconds expected)") from None
    return t.replace(tzinfo=_UTC) if t.tzinfo is None else t.astimezone(_UTC)


def _date(field: str, value: Any) -> str:
    t = _instant(field, value, "a HubSpot date")
    return "" if t is None else t.date().isoformat()


def _datetime(field: str, value: Any) -> str:
    t = _instant(field, value, "a HubSpot datetime")
    return "" if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _enumeration(prop: PropertyInfo, value: Any) -> str:
    field = prop.name
    if value is None:
        return ""
    if isinstance(value, dict):
        raise _fail(field, value, f"an option of {field!r}")
    if isinstance(value, (list, tuple)):
        chosen = [as_text(v).strip() for v in value if v is not None]
        if len(chosen) > 1 and not prop.multiple:
            raise ConversionError(f"field {field!r}: a list of {len(chosen)} values for a single-choice property")
    else:
        text = as_text(value).strip()
        chosen = text.split(";") if prop.multiple else [text]
        chosen = [c.strip() for c in chosen if c.strip()] if prop.multiple else chosen
    if prop.options and any(c not in prop.options for c in chosen if c != ""):
        shown = ", ".join(sorted(prop.options)[:12]) + (", …" if len(prop.options) > 12 else "")
        raise ConversionError(f"field {field!r}: {_kind(value)} that is not one of the property's options ({shown})")
    return ";".join(chosen)


def converter(prop: PropertyInfo | None, field: str) -> Converter:
    """How `field`'s values are written, given its property (None: not known, as text)."""
    kind = prop.type if prop is not None else "string"
    if kind == "number":
        return lambda v: _number(field, v)
    if kind == "bool":
        return lambda v: _bool(field, v)
    if kind == "date":
        return lambda v: _date(field, v)
    if kind == "datetime":
        return lambda v: _datetime(field, v)
    if kind == "enumeration" and prop is not None:
        return lambda v: _enumeration(prop, v)
    return as_text


__all__ = ["ConversionError", "Converter", "PropertyInfo", "as_text", "converter", "plain_number"]
