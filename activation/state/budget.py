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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from activation.state.leases import NOW_MS, engine_lock, insert_if_absent, integer_nulls
from activation.state.store import StateStore

#: Slots reserved per round trip to the state store, in seconds of the rate.
CHUNK_SECONDS = 0.05
#: The vendor's word on the daily quota is written at most this often (it comes with every answer).
DAILY_WRITE_SECONDS = 1.0


@dataclass(frozen=True)
class DailyQuota:
    """An account's daily quota as the vendor last told it."""

    remaining: int
    limit: int
    seen_ms: int  # epoch ms, the database's clock


def daily_quota(state: StateStore, account: str) -> DailyQuota | None:
    """What the vendor last said of `account`'s daily quota, if it ever did (read-only)."""
    if not state.initialised:
        return None
    with state.engine.connect() as c:
        try:
            row = c.execute(
                sa.text(f"SELECT daily_remaining, daily_limit, daily_seen_ms FROM {state.relation('budgets')} WHERE account = :account"),
                {"account": account},
            ).one_or_none()
        except sa.exc.DBAPIError:  # a store older than the budgets table: nothing was ever said
            return None
    if row is None or row.daily_remaining is None:
        return None
    return DailyQuota(int(row.daily_remaining), int(row.daily_limit or 0), int(row.daily_seen_ms or 0))


class AccountBudget:
    """The request slots of one account for this process; thread-safe."""

    def __init__(self, state: StateStore, account: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.state, self.account, self.clock = state, account, clock
        self._rel = state.relation("budgets")
        self._now = NOW_MS.get(state.dialect, ":local_now")  # elsewhere: this host's clock
        self._engine_lock = engine_lock(state.engine)
        self._lock = threading.Lock()
        self._slots: collections.deque[float] = collections.deque()  # local monotonic times
        self._daily_written = -DAILY_WRITE_SECONDS
        self._daily: tuple[int, int] | None = None  # said and not written yet

    def _exec(self, c: sa.Connection, sql: str, params: Mapping[str, object]) -> sa.CursorResult[object]:
        return c.execute(integer_nulls(sql, params), {**params, "account": self.account, "local_now": int(time.time() * 1000)})

    def reserve(self, n: int, interval: float) -> tuple[int, int]:
        """Reserve `n` slots `interval` seconds apart: (the first slot, the database's now), in
        epoch milliseconds of the database's clock."""
        cost = max(1, round(n * interval * 1000))
        now = self._now
        with self._engine_lock, self.state.engine.begin() as c:
            moved = (
                f"UPDATE {self._rel} SET next_ms = (CASE WHEN next_ms > {now} THEN next_ms ELSE {now} END) + :cost WHERE account = :account"
            )
            self._update(c, moved, {"cost": cost})
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
            with self._engine_lock, self.state.engine.begin() as c:
                self._exec(
                    c,
                    f"UPDATE {self._rel} SET next_ms = (CASE WHEN next_ms > {until} THEN next_ms ELSE {until} END) "
                    "WHERE account = :account",
                    {"wait": int(seconds * 1000)},
                )

    def observe_daily(self, remaining: int, limit: int) -> None:
        """The vendor's word on the account's daily quota: kept (at most once a second) for
        `plan` to say whether a run fits in what remains today."""
        with self._lock:
            self._daily = (remaining, limit)
            if self.clock() - self._daily_written < DAILY_WRITE_SECONDS:
                return
        self.flush()

    def flush(self) -> None:
        """Write what the vendor last said of the daily quota (at the end of a run)."""
        with self._lock:
            if self._daily is None:
                return
            (remaining, limit), self._daily = self._daily, None
            self._daily_written = self.clock()
        params = {"remaining": remaining, "limit": limit}
        update = (
            f"UPDATE {self._rel} SET daily_remaining = :remaining, daily_limit = :limit, daily_seen_ms = {self._now} "
            "WHERE account = :account"
        )
        with self._engine_lock, self.state.engine.begin() as c:
            self._update(c, update, params)

    def _update(self, c: sa.Connection, update: str, params: Mapping[str, object]) -> None:
        """`update` the account's row, made first when the account has none yet (the row is
        there after the insert, ours or another process's)."""
        if not self._exec(c, update, params).rowcount:
            self._exec(c, insert_if_absent(self.state.dialect, self._rel, "account", "(account, next_ms)", f"(:account, {self._now})"), {})
            self._exec(c, update, params)
