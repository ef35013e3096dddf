"""How the ad-platform emulators hold an audience: people, each known by identifiers.

An ad platform matches an uploaded row to a person on any of its *strong* identifiers (an
email, a phone, a mobile or CRM id); weaker ones (a first name, a country) only help match
together, so a row without a strong identifier is matched on all of its identifiers at once:

- adding a row makes it a person of the audience; a resent row (the same identifiers) changes
  nothing. Two rows sharing a strong identifier (two people with one office phone) are two
  people: the platform cannot tell them apart, so neither replaces the other (the soak found
  that a replacing audience lost the first person's email the moment the second was added);
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
        self._by_ids: dict[frozenset[tuple[str, str]], int] = {}
        self._index: dict[object, set[int]] = {}  # a strong (key, value), or a weak row's whole identifier set
        self._next = 1

    @staticmethod
    def identifiers(row: Mapping[str, str] | Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
        pairs = row.items() if isinstance(row, Mapping) else row
        return frozenset((k, v) for k, v in pairs if v not in (None, ""))

    def _keys(self, ids: frozenset[tuple[str, str]]) -> list[object]:
        strong: list[object] = [i for i in ids if i[0] in self.strong]
        return strong or [ids]

    def _matching(self, ids: frozenset[tuple[str, str]]) -> set[int]:
        return {p for k in self._keys(ids) for p in self._index.get(k, ())}

    def _drop(self, person: int) -> None:
        ids = self._people.pop(person)
        del self._by_ids[ids]
        for k in self._keys(ids):
            holders = self._index.get(k)
            if holders is not None:
                holders.discard(person)
                if not holders:
                    del self._index[k]

    def add(self, row: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        ids = self.identifiers(row)
        if not ids or ids in self._by_ids:
            return
        person, self._next = self._next, self._next + 1
        self._people[person] = ids
        self._by_ids[ids] = person
        for k in self._keys(ids):
            self._index.setdefault(k, set()).add(person)

    def remove(self, row: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
        """Remove every person matched by the row; returns how many."""
        matched = self._matching(self.identifiers(row))
        for person in matched:
            self._drop(person)
        return len(matched)

    def clear(self) -> None:
        self._people.clear()
        self._by_ids.clear()
        self._index.clear()

    def __len__(self) -> int:
        return len(self._people)

    def people(self) -> list[dict[str, str]]:
        """Every person's identifiers, key -> value."""
        return [dict(ids) for ids in self._people.values()]

    def snapshot(self) -> set[frozenset[tuple[str, str]]]:
        """The audience as a set of identifier sets (order-free, for comparisons)."""
        return set(self._people.values())
