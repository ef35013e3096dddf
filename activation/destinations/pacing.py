"""Pacing and sizing the calls of a destination whose vendor limits calls per second and
bytes per call (Iterable, Customer.io): shared so each vendor states only its numbers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Pacer:
    """At most `rate` calls per second, across threads (no bursts over the vendor's limit)."""

    def __init__(self, rate: float, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.sleep, self.clock = 1.0 / rate, sleep, clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


def json_chunks(items: list[tuple[T, dict[str, Any]]], size: int, max_bytes: int) -> Iterator[list[tuple[T, dict[str, Any]]]]:
    """`items` (each with the JSON object a call carries for it) in calls of at most `size`
    items whose objects take at most `max_bytes` of JSON (a separator each counted)."""
    chunk: list[tuple[T, dict[str, Any]]] = []
    used = 0
    for item in items:
        n = len(json.dumps(item[1], default=str)) + 1
        if chunk and (len(chunk) >= size or used + n > max_bytes):
            yield chunk
            chunk, used = [], 0
        chunk.append(item)
        used += n
    if chunk:
        yield chunk
