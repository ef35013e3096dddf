"""Warehouse values as JSON-safe values: one rule for every destination.

The field mapper normalises every row with it (so what is hashed, stored, compared and sent is
the same thing), and destinations that serialise rows themselves (webhook, file) use it for
anything that reaches them otherwise. Decimals never lose digits: a whole one is an integer,
one a double holds exactly is a number, any other goes as its exact text. NaN and infinities
are no JSON: they become null. Vendor-specific formats (HubSpot's and Salesforce's plain
numbers without exponents) are the vendors' own rules and live with them.
"""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

#: Types JSON carries as they are (checked first: this runs per field per row).
PLAIN_TYPES = frozenset({str, int, bool, type(None)})
_PLAIN = PLAIN_TYPES


def to_jsonable(value: Any) -> Any:
    """`value` as JSON can carry it (see the module)."""
    if type(value) in _PLAIN:  # the common case, checked first: this runs per field per row
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            return int(value)
        number = float(value)
        # A double holds most decimals exactly (1234.56); one with more digits than a double
        # keeps goes as its exact text rather than silently losing them.
        return number if Decimal(repr(number)) == value else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    return str(value)
