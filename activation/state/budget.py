"""One request budget per vendor account, shared through the state store.

A vendor's quota belongs to the account (a HubSpot private app in its portal), not to a sync:
two syncs, or two daemons, writing to one portal each spacing their calls under the whole
quota together send twice it, and spend their time in 429s. So every process that sends to an
account takes its request slots from one schedule kept in the state store (`budgets`: per
account, the earliest time the next request may go, on the database's clock), the way GCRA
meters a queue: a caller reserves the next slots, moving that time on by one interval per
slot, and sleeps until its first. Reservations interleave in the order they are made, so a
large sync cannot starve a small one: the small one's next call waits for the slots already
reserved, never for the large one's backlog.

A round trip per request would cost more than the request at high rates, so a process reserves
about 50 ms of slots at a time (at least one) and hands them to its own calls; at most that
much of the quota is left unused when a run ends. A 429 pushes the shared time on, so every
process waits out the vendor's window, not only the one that got it.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from activation.state.leases import NOW_MS, engine_lock
from activation.state.store import StateStore

#: Slots reserved per round trip to the state store, in seconds of the rate.
CHUNK_SECONDS = 0.05


class AccountBudget:
    """The request slots of one account for this process; thread-safe."""

    def __init__(self, state: StateStore, account: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.state, self.account, self.clock = state, account, clock
        self._rel = state.relation("budgets")
        self._now = NOW_MS.get(state.dialect, ":local_now")  # elsewhere: this host's clock
        self.engine_lock = engine_lock(state.engine)
        self._lock = threading.Lock()
        self._slots: collections.deque[float] = collections.deque()  # local monotonic times

    def _exec(self, c: sa.Connection, sql: str, params: dict[str, object]) -> sa.CursorResult[object]:
        return c.execute(sa.text(sql), {**params, "account": self.account, "local_now": int(time.time() * 1000)})

    def reserve(self, n: int, interval: float) -> tuple[int, int]:
        """Reserve `n` slots `interval` seconds apart: (the first slot, the database's now), in
        epoch milliseconds of the database's clock."""
        cost = max(1, round(n * interval * 1000))
        now = self._now
        with self.engine_lock, self.state.engine.begin() as c:
            moved = f"UPDATE {self._rel} SET next_ms = (CASE WHEN next_ms > {now} THEN next_ms ELSE {now} END) + :cost " \
                    "WHERE account = :account"
            if not self._exec(c, moved, {"cost": cost}).rowcount:
                insert = (
                    f"MERGE INTO {self._rel} AS t USING (SELECT :account AS account) AS n ON t.account = n.account "
                    f"WHEN NOT MATCHED THEN INSERT (account, next_ms) VALUES (:account, {now})"
                    if self.state.dialect == "snowflake"
                    else f"INSERT INTO {self._rel} (account, next_ms) VALUES (:account, {now}) ON CONFLICT (account) DO NOTHING"
                )
                self._exec(c, insert, {})
                self._exec(c, moved, {"cost": cost})  # the row is there now (ours or another's): move it on
            row = self._exec(c, f"SELECT next_ms, {now} AS now FROM {self._rel} WHERE account = :account", {}).one()
        return int(row.next_ms) - cost, int(row.now)

    def take(self, interval: float) -> float:
        """Seconds to wait before this call may go: its slot in the account's schedule."""
        with self._lock:
            if not self._slots:
                n = max(1, int(CHUNK_SECONDS / interval))
                first, now = self.reserve(n, interval)
                start = self.clock() + max(0, first - now) / 1000
                self._slots.extend(start + i * interval for i in range(n))
            slot = self._slots.popleft()
        return max(0.0, slot - self.clock())

    def pause(self, seconds: float) -> None:
        """No call to the account before `seconds` from now, from any process (a 429)."""
        until = f"{self._now} + :wait"
        with self._lock:
            self._slots.clear()  # reserved before the 429: not valid any more
            with self.engine_lock, self.state.engine.begin() as c:
                self._exec(c, f"UPDATE {self._rel} SET next_ms = (CASE WHEN next_ms > {until} THEN next_ms ELSE {until} END) "
                           "WHERE account = :account", {"wait": int(seconds * 1000)})
