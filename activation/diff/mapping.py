"""Field mappings: a model row → the destination's fields, as JSON-safe values.

Values are normalised once here (Decimal, dates, UUIDs, NaN) so that what we hash, store,
compare and send is the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from activation.project.spec import SyncSpec
from activation.project.templating import compile_field
from activation.values import PLAIN_TYPES as _PLAIN
from activation.values import to_jsonable

__all__ = ["FieldMapper", "MappingError", "to_jsonable"]


class MappingError(Exception):
    """A row could not be mapped; the row is rejected with this reason."""


class FieldMapper:
    """Compiled `match` + `fields` of one sync."""

    def __init__(self, sync: SyncSpec) -> None:
        self.transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.transform_version = ""
        self.match = dict(sync.match)
        self.fields = {k: v for k, v in sync.fields.items() if k not in self.match}
        self.all: dict[str, str] = {**self.match, **self.fields}
        self._compiled: dict[str, Callable[[dict[str, Any]], Any]] = {dest: compile_field(expr) for dest, expr in self.all.items()}

    def fingerprint(self) -> str:
        """Salts the row hashes: a changed mapping re-diffs every row (field by field)."""
        # the stored hashes' salt: keep stable ("extra" is empty unless the destination rewrites rows)
        text = json.dumps({"map": self.all, "extra": self.transform_version}, sort_keys=True)
        return hashlib.md5(text.encode()).hexdigest()[:12]

    def map(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        plain = _PLAIN
        for dest, fn in self._compiled.items():
            try:
                v = fn(row)
            except Exception as e:  # a template can fail in many ways; the row is rejected
                raise MappingError(f"field {dest!r}: {type(e).__name__}: {e}") from e
            out[dest] = v if type(v) in plain else to_jsonable(v)
        for dest in self.match:
            if out.get(dest) in (None, ""):
                raise MappingError(f"match field {dest!r} is empty")
        if self.transform is not None:
            try:
                return self.transform(out)
            except ValueError as e:
                raise MappingError(str(e)) from None
        return out

    def set_transform(self, version: str, apply: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Rewrite every mapped row with `apply` (a destination's normalisation and hashing);
        `version` salts the row hashes."""
        self.transform, self.transform_version = apply, version


__all__ = ["FieldMapper", "MappingError", "to_jsonable"]
