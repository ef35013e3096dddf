"""The in-flight journal: rows handed to a destination whose acknowledgement is not yet
recorded, written before the destination sees them, so a run that dies leaves a record of
what the destination may hold (see `StateStore.recover_in_flight`).

Each row is journaled with the identities it was sent under (what the destination keys the
record by), so a recovery knows every record the destination may now hold without guessing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from activation.errors import StateError

# A journal entry holding a whole push has this key prefix (a control character no real key
# starts with): one row to write and one to delete per push, however many rows it carries.
JOURNAL_PREFIX = "\x1djournal:"
_VALUES_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # built once, not per row
_KEY_JSON = json.JSONEncoder()


_JOURNAL_PART_CHARS = 200_000  # a part's text stays well under any engine's limits on a value


@dataclass(frozen=True)
class JournalEntry:
    """The rows of one push, journaled as a few in-flight entries (parts of ~200 kB), each
    {"keys": [...], "values": [...], "identities": [[...], ...]} as JSON under a row_key
    JOURNAL_PREFIX + a random id."""

    parts: tuple[tuple[str, str], ...]  # (row_key, text)

    @property
    def ids(self) -> list[str]:
        return [key for key, _ in self.parts]


def journal_entry(rows: Sequence[tuple[str, str, tuple[str, ...]]]) -> JournalEntry:
    """The journal entry of `rows` (key, `values_json` text, identities); the texts are
    spliced in, not re-encoded."""
    parts: list[tuple[str, str]] = []
    start = size = 0
    for i, (_, text, _) in enumerate(rows):
        size += len(text)
        if size >= _JOURNAL_PART_CHARS or i == len(rows) - 1:
            chunk = rows[start : i + 1]
            keys = _KEY_JSON.encode([k for k, _, _ in chunk])  # one call for all keys
            identities = _KEY_JSON.encode([list(ids) for _, _, ids in chunk])
            parts.append(
                (
                    JOURNAL_PREFIX + uuid.uuid4().hex,
                    '{"keys":' + keys + ',"identities":' + identities + ',"values":[' + ",".join(v for _, v, _ in chunk) + "]}",
                )
            )
            start, size = i + 1, 0
    return JournalEntry(tuple(parts))


def values_json(values: dict[str, Any]) -> str:
    """How mapped values are stored: compact, key-sorted JSON."""
    return _VALUES_JSON.encode(values)


@dataclass(frozen=True)
class Journaled:
    row_key: str
    row_values: str
    run_id: str
    identities: tuple[str, ...] | None  # None: journaled by a release that did not record them


class CorruptJournal(StateError):
    """An in-flight journal entry cannot be read: the message says which and how to clear it."""


def read_entry(key: str, text: str, run_id: str, sync: str) -> list[Journaled]:
    """The rows of one journal row: a whole push's entry, or a per-row entry of old releases."""
    if not key.startswith(JOURNAL_PREFIX):
        return [Journaled(key, text, run_id, None)]
    try:
        entry = json.loads(text)
        keys, values = entry["keys"], entry["values"]
        identities = entry.get("identities") or [None] * len(keys)
        if not (len(keys) == len(values) == len(identities)):
            raise ValueError("its keys, values and identities differ in number")
        return [
            Journaled(k, values_json(v), run_id, tuple(i) if i is not None else None)
            for k, v, i in zip(keys, values, identities, strict=True)
        ]
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptJournal(
            f"sync {sync}: the in-flight journal entry {key[len(JOURNAL_PREFIX) :]} (run {run_id}) cannot be read "
            f"({type(e).__name__}: {e}). It lists rows a run that died may have sent. To go on, clear it with "
            f"`activation reset {sync}` (the next run then sends every row again, which is safe: sends are "
            "idempotent), or restore the state store from a backup"
        ) from None
