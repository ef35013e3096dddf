"""What every emulated HubSpot handler returns, and HubSpot's error body."""

from __future__ import annotations

import uuid
from typing import Any

Reply = tuple[int, Any, dict[str, str]]


def error(status: int, message: str, category: str, **extra: Any) -> Reply:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update(extra)
    return status, body, {}


def scalar_str(value: Any) -> str:
    # Jackson coerces JSON scalars to strings; only reachable with validation off.
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def cursor(value: str) -> int | None:
    """Paging cursors here are record ids or offsets (opaque to clients)."""
    return int(value) if value.isdigit() else None
