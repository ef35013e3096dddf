"""How the ad-platform emulators hold an audience: people, each known by identifiers.

An ad platform matches an uploaded row to a person on any of its *strong* identifiers (an
email, a phone, a mobile or CRM id); weaker ones (a first name, a country) only help match
together, so a row without a strong identifier is matched on all of its identifiers at once:

- adding a row that shares a strong identifier with people already in the audience replaces
  them with the row (the same person, known by the newest identifiers); a resent row changes
  nothing;
- removing a row removes every person it matches.

Identifiers are ``(key, value)`` pairs (``("EMAIL", "<sha256>")``); empty values are unknown.
Thread safety is the caller's (the emulators hold their lock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class AudienceMembers:
    def __init__(self, strong: frozenset[str]) -> None:
        self.strong = strong  # keys that identify a person on their own
        self._people: dict[int, frozenset[tuple[str, str]]] = {}
        self._index: dict[object, int] = {}  # a strong (key, value), or a weak row's whole identifier set
        self._next = 1

    @staticmethod
    def identifiers(row: Mapping[str, str] | Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
        pairs = row.items() if isinstance(row, Mapping) else row
        return frozenset((k, v) for k, v in pairs if v not in (None, ""))

    def _keys(self, ids: frozenset[tuple[str, str]]) -> list[object]:
        strong: list[object] = [i for i in ids if i[0] in self.strong]
        return strong or [ids]

    def _matching(self, ids: frozenset[tuple[str, str]]) -> set[int]:
        return {p for k in self._keys(ids) if (p := self._index.get(k)) is not None}

    def _drop(self, person: int) -> None:
        for k in self._keys(self._people.pop(person)):
            if self._index.get(k) == person:
                del self._index[k]

    def add(self, row: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        ids = self.identifiers(row)
        if not ids:
            return
        for person in self._matching(ids):
            self._drop(person)
        person, self._next = self._next, self._next + 1
        self._people[person] = ids
        for k in self._keys(ids):
            self._index[k] = person

    def remove(self, row: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
        """Remove every person matched by the row; returns how many."""
        matched = self._matching(self.identifiers(row))
        for person in matched:
            self._drop(person)
        return len(matched)

    def clear(self) -> None:
        self._people.clear()
        self._index.clear()

    def __len__(self) -> int:
        return len(self._people)

    def people(self) -> list[dict[str, str]]:
        """Every person's identifiers, key -> value."""
        return [dict(ids) for ids in self._people.values()]

    def snapshot(self) -> set[frozenset[tuple[str, str]]]:
        """The audience as a set of identifier sets (order-free, for comparisons)."""
        return set(self._people.values())
