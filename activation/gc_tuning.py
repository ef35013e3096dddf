"""Fewer passes of Python's cyclic garbage collector while a sync pushes rows.

A push allocates millions of short-lived, acyclic objects (rows, dicts, strings, results).
With the default thresholds the collector runs every 700 allocations and, every so often,
walks the whole heap (the SDKs, SQLAlchemy, the modules): measured on a first sync to the
HubSpot emulator, ~20% of the process's CPU. While a sync runs, the objects that already
exist are frozen (never walked) and young objects are collected every 20,000 allocations;
both are restored when the last running sync ends (syncs may run in threads).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_YOUNG_THRESHOLD = 20_000
_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(_saved[0], _YOUNG_THRESHOLD), _saved[1], _saved[2])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_saved)
                gc.unfreeze()
