"""The in-flight journal: rows handed to a destination whose acknowledgement is not yet
recorded, written before the destination sees them, so a run that dies leaves a record of
what the destination may hold (see `StateStore.recover_in_flight`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GHOST = "\x1e"  # joins a key and a run id: the identity a row had before an interrupted run
# A journal entry holding a whole push has this key prefix (a control character no real key
# starts with): one row to write and one to delete per push, however many rows it carries.
JOURNAL_PREFIX = "\x1djournal:"
_VALUES_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # built once, not per row
_KEY_JSON = json.JSONEncoder()


_JOURNAL_PART_CHARS = 200_000  # a part's text stays well under any engine's limits on a value


@dataclass(frozen=True)
class JournalEntry:
    """The rows of one push, journaled as a few in-flight entries (parts of ~200 kB), each
    {"keys": [...], "values": [...]} as JSON under a row_key JOURNAL_PREFIX + a random id."""

    parts: tuple[tuple[str, str], ...]  # (row_key, text)

    @property
    def ids(self) -> list[str]:
        return [key for key, _ in self.parts]


def journal_entry(rows: Sequence[tuple[str, str]]) -> JournalEntry:
    """The journal entry of `rows` (key, `values_json` text); the texts are spliced in, not re-encoded."""
    parts: list[tuple[str, str]] = []
    start = size = 0
    for i, (_, text) in enumerate(rows):
        size += len(text)
        if size >= _JOURNAL_PART_CHARS or i == len(rows) - 1:
            chunk = rows[start : i + 1]
            keys = _KEY_JSON.encode([k for k, _ in chunk])  # one call for all keys
            parts.append((JOURNAL_PREFIX + uuid.uuid4().hex,
                          '{"keys":' + keys + ',"values":[' + ",".join(v for _, v in chunk) + "]}"))
            start, size = i + 1, 0
    return JournalEntry(tuple(parts))


def identity(values_text: str, match: Sequence[str]) -> tuple[str, ...]:
    """A row's identity at the destination, compared loosely (case, spaces) so a ghost is
    only made where the destination, too, sees two different records."""
    values = json.loads(values_text)
    return tuple(str(values.get(f, "")).strip().lower() for f in match)


def values_json(values: dict[str, Any]) -> str:
    """How mapped values are stored: compact, key-sorted JSON."""
    return _VALUES_JSON.encode(values)


@dataclass(frozen=True)
class Journaled:
    row_key: str
    row_values: str
    run_id: str
