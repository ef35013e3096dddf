"""Leases: one run of a sync at a time, across every process sharing a state store.

A lease is a row of the `leases` table keyed by the sync's name (or `model:<id>` while a
model is refreshed): owner, token and an expiry on the **database's** clock, so daemons on
hosts with skewed clocks agree on when a lease lapsed. Taking one is a conditional UPDATE
("the row exists and its lease expired"), else an INSERT … ON CONFLICT DO NOTHING, judged by
row counts inside one transaction: atomic on Postgres (row locks; the loser's WHERE is
re-checked against the winner's row) and SQLite (one writer); DuckDB is one process, where
lease statements take turns. A live run renews its lease; a crashed process's lease expires and the next
taker gets it. Renewing and releasing match the acquisition's token, so a process that lost
its lease can never extend or drop someone else's.

The same row keeps the fleet's schedule bookkeeping: the slot a sync's last run served (so a
slot runs once, not once per daemon) and consecutive failures with the backoff they imply.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activation.state.store import StateStore

#: Milliseconds since the epoch on the database's clock.
_NOW_MS = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    "duckdb": "epoch_ms(get_current_timestamp())",
}
MODEL_PREFIX = "model:"


@dataclass(frozen=True)
class Lease:
    name: str
    token: str
    acquired_ms: int  # database clock
    failures: int  # consecutive failed runs before this one


@dataclass(frozen=True)
class Refusal:
    """Why a lease was not granted."""

    name: str
    reason: Literal["held", "served", "backoff"]
    owner: str | None = None
    until_ms: int | None = None  # held: the expiry; backoff: the earliest retry

    def __str__(self) -> str:
        if self.reason == "held":
            return f"{self.name} is running in {self.owner} (lease until {_iso(self.until_ms)})"
        if self.reason == "served":
            return f"{self.name}: this schedule slot was already run (by {self.owner})"
        return f"{self.name} is backing off after failures until {_iso(self.until_ms)}"


class LeaseStore:
    """Leases in `state`, taken as `owner` for `ttl` seconds. Thread-safe."""

    def __init__(self, state: StateStore, owner: str, ttl: float) -> None:
        self.state = state
        self.owner = owner
        self.ttl_ms = int(ttl * 1000)
        self._lock = _engine_lock(state.engine)
        q = state.engine.dialect.identifier_preparer.quote
        self._rel = f"{q(state.schema)}.leases" if state.schema else "leases"
        self._now = _NOW_MS.get(state.dialect, ":local_now")  # elsewhere: this host's clock

    def _exec(self, c: Connection, sql: str, params: dict[str, Any]) -> sa.CursorResult[Any]:
        return c.execute(sa.text(sql), {**params, "local_now": int(time.time() * 1000)})

    def now_ms(self) -> int:
        """The database's clock."""
        with self._lock, self.state.engine.connect() as c:
            return int(self._exec(c, f"SELECT {self._now}", {}).scalar_one())

    def acquire(self, name: str, *, slot_ms: int | None = None, respect_backoff: bool = True) -> Lease | Refusal:
        """Take `name` if nobody holds it; with `slot_ms`, only if no run took that schedule
        slot (or a later one) yet; with `respect_backoff`, only once its backoff is over."""
        token = uuid.uuid4().hex
        now = self._now
        where = [f"expires_ms <= {now}"]
        if slot_ms is not None:
            where.append("(done_ms IS NULL OR done_ms < :slot)")
        if respect_backoff:
            where.append(f"(retry_ms IS NULL OR retry_ms <= {now})")
        params = {"name": name, "owner": self.owner, "token": token, "ttl": self.ttl_ms, "slot": slot_ms}
        with self._lock, self.state.engine.begin() as c:
            taken = self._exec(c, (
                f"UPDATE {self._rel} SET owner = :owner, token = :token, acquired_ms = {now}, "
                f"expires_ms = {now} + :ttl, done_ms = COALESCE(:slot, done_ms) WHERE name = :name AND "
                + " AND ".join(where)), params).rowcount
            if not taken:
                taken = self._exec(c, (
                    f"INSERT INTO {self._rel} (name, owner, token, acquired_ms, expires_ms, done_ms, failures) "
                    f"VALUES (:name, :owner, :token, {now}, {now} + :ttl, :slot, 0) ON CONFLICT (name) DO NOTHING"
                ), params).rowcount
            row = self._exec(c, f"SELECT owner, token, acquired_ms, expires_ms, done_ms, failures, retry_ms, {now} AS now "
                             f"FROM {self._rel} WHERE name = :name", params).one()
        if taken and row.token == token:
            return Lease(name, token, int(row.acquired_ms), int(row.failures or 0))
        if row.expires_ms > row.now:
            return Refusal(name, "held", row.owner, int(row.expires_ms))
        if slot_ms is not None and row.done_ms is not None and row.done_ms >= slot_ms:
            return Refusal(name, "served", row.owner)
        return Refusal(name, "backoff", row.owner, int(row.retry_ms or 0))

    def renew(self, lease: Lease) -> bool:
        """Push the expiry out by the TTL; False when the lease is no longer ours."""
        with self._lock, self.state.engine.begin() as c:
            return self._exec(c, f"UPDATE {self._rel} SET expires_ms = {self._now} + :ttl WHERE name = :name AND token = :token",
                              {"name": lease.name, "token": lease.token, "ttl": self.ttl_ms}).rowcount == 1

    def release(self, lease: Lease, *, failed: bool | None = None, backoff: float = 0.0, max_backoff: float = 0.0,
                refreshed: bool = False) -> bool:
        """Give the lease up. `failed`: the run failed (count it and back off: `backoff`
        seconds doubling per consecutive failure, at most `max_backoff`) or succeeded (reset);
        None leaves the count. `refreshed`: a model's refresh completed. False when it was
        no longer ours."""
        sets = ["expires_ms = 0"]
        params: dict[str, Any] = {"name": lease.name, "token": lease.token}
        if failed is True:
            failures = lease.failures + 1
            wait = min(max_backoff, backoff * 2 ** min(failures - 1, 30))
            sets += ["failures = :failures", f"retry_ms = {self._now} + :wait"]
            params |= {"failures": failures, "wait": int(wait * 1000)}
        elif failed is False:
            sets += ["failures = 0", "retry_ms = NULL"]
        if refreshed:
            sets.append("done_ms = acquired_ms")
        with self._lock, self.state.engine.begin() as c:
            return self._exec(c, f"UPDATE {self._rel} SET {', '.join(sets)} WHERE name = :name AND token = :token",
                              params).rowcount == 1

    def refreshed_since(self, name: str, since_ms: int) -> bool:
        """Whether the last completed refresh of `name` began at or after `since_ms`."""
        with self._lock, self.state.engine.connect() as c:
            done = self._exec(c, f"SELECT done_ms FROM {self._rel} WHERE name = :name", {"name": name}).scalar()
        return done is not None and int(done) >= since_ms

    def held(self) -> list[dict[str, Any]]:
        """Every lease held right now (by anyone): name, owner, acquired_ms, expires_ms."""
        with self._lock, self.state.engine.connect() as c:
            rows = self._exec(c, f"SELECT name, owner, acquired_ms, expires_ms FROM {self._rel} "
                              f"WHERE expires_ms > {self._now} ORDER BY name", {})
            return [dict(r._mapping) for r in rows]


_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _engine_lock(engine: Engine) -> threading.Lock:
    """One lease statement at a time per engine in this process: DuckDB's optimistic
    concurrency would fail the second of two concurrent writers instead of making it wait
    (and DuckDB is one process, so this makes it atomic); elsewhere it only saves round trips."""
    with _locks_guard:
        return _locks.setdefault(engine, threading.Lock())


def _iso(ms: int | None) -> str:
    if ms is None:
        return "?"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
