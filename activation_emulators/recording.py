"""What an emulator received: a log of requests, and optionally every raw byte (for checks
such as "no raw email or phone number left the process")."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

Entry = TypeVar("Entry")


class RequestRecorder(Generic[Entry]):
    def __init__(self, *, keep_raw: bool = True) -> None:
        self.keep_raw = keep_raw  # off for benchmarks: a 1M-row push is hundreds of MB
        self._lock = threading.Lock()
        self._raw: list[bytes] = []
        self._entries: list[Entry] = []

    def raw(self, data: bytes) -> None:
        if self.keep_raw:
            with self._lock:
                self._raw.append(data)

    def log(self, entry: Entry) -> None:
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._entries)

    def raw_bytes(self) -> bytes:
        """Every request as received (request line, headers, body), one after another."""
        with self._lock:
            return b"\n".join(self._raw)
