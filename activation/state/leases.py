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

import logging
import os
import re
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activation.project.secrets import redact
from activation.state.store import RUN_ENDED, StateStore

log = logging.getLogger("activation.leases")

#: The database's clock in epoch milliseconds, per dialect: leases and budgets shared across
#: machines go by one clock.
NOW_MS = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    "duckdb": "epoch_ms(get_current_timestamp())",
    "snowflake": "CAST(DATE_PART(EPOCH_MILLISECOND, CURRENT_TIMESTAMP()) AS BIGINT)",
    "bigquery": "UNIX_MILLIS(CURRENT_TIMESTAMP())",
}


def integer_nulls(sql: str, params: Mapping[str, Any]) -> sa.TextClause:
    """`sql` with its parameters that are None bound as integers: the nullable parameters of
    leases and budgets are epoch milliseconds and counts, and BigQuery's DB-API refuses a
    NULL of no type ("parameter slot with value None of unexpected type")."""
    named = set(re.findall(r"(?<!:):(\w+)", sql))
    return sa.text(sql).bindparams(*(sa.bindparam(k, type_=sa.BigInteger) for k, v in params.items() if v is None and k in named))


def insert_if_absent(dialect: str, relation: str, key: str, columns: str, values: str) -> str:
    """INSERT `columns` VALUES `values` into `relation` unless a row with the `:key` parameter's
    value is there already (another process made it first): a no-op then, not an error.
    Snowflake has no ON CONFLICT (fakesnow, on DuckDB, would accept it) and does not enforce
    primary keys; MERGEs on one table run one at a time there."""
    if dialect in ("snowflake", "bigquery"):  # (BigQuery: no ON CONFLICT, keys not enforced)
        return (
            f"MERGE INTO {relation} AS t USING (SELECT :{key} AS {key}) AS n ON t.{key} = n.{key} "
            f"WHEN NOT MATCHED THEN INSERT {columns} VALUES {values}"
        )
    if dialect == "redshift":
        # no ON CONFLICT, and primary keys are not enforced: inserted only if absent, in one
        # statement (two at once: Redshift's serializable isolation fails one of them)
        return (
            f"INSERT INTO {relation} {columns} SELECT {values.strip()[1:-1]} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {relation} WHERE {key} = :{key})"
        )
    return f"INSERT INTO {relation} {columns} VALUES {values} ON CONFLICT ({key}) DO NOTHING"


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
    """Leases in `state`, taken as `owner` for `ttl` seconds. Thread-safe.

    `take_over_ended`: also take a lease at once when its holder was a process of this
    machine that has ended (`activation run` after a crash), instead of after its expiry
    (what daemons do: the one rule that holds across machines).
    """

    def __init__(self, state: StateStore, owner: str, ttl: float, *, take_over_ended: bool = False) -> None:
        self.state = state
        self.owner = owner
        self.take_over_ended = take_over_ended
        self.ttl_ms = int(ttl * 1000)
        self._lock = engine_lock(state.engine)
        self._rel = state.relation("leases")
        self._now = NOW_MS.get(state.dialect, ":local_now")  # elsewhere: this host's clock

    def _exec(self, c: Connection, sql: str, params: dict[str, Any]) -> sa.CursorResult[Any]:
        return c.execute(integer_nulls(sql, params), {**params, "local_now": int(time.time() * 1000)})

    def now_ms(self) -> int:
        """The database's clock."""
        with self._lock, self.state.engine.connect() as c:
            return int(self._exec(c, f"SELECT {self._now}", {}).scalar_one())

    def acquire(self, name: str, *, slot_ms: int | None = None, respect_backoff: bool = True) -> Lease | Refusal:
        """Take `name` if nobody holds it; with `slot_ms`, only if no run took that schedule
        slot (or a later one) yet; with `respect_backoff`, only once its backoff is over."""
        got, row = self._take(name, f"expires_ms <= {self._now}", slot_ms, respect_backoff, None)
        if got is None and self.take_over_ended and row.expires_ms > row.now and _ended_here(row.process):
            # Its holder was a process of this machine that is gone (killed, crashed): no
            # need to wait for the expiry. Conditional on its token: atomic like the rest.
            got, row = self._take(name, "token = :dead", slot_ms, respect_backoff, row.token)
            if got is not None:
                log.info("took over the lease of %s from %s, which ended", name, row.owner)
        if got is not None:
            return got
        if row.expires_ms > row.now:
            return Refusal(name, "held", row.owner, int(row.expires_ms))
        if slot_ms is not None and row.done_ms is not None and row.done_ms >= slot_ms:
            return Refusal(name, "served", row.owner)
        return Refusal(name, "backoff", row.owner, int(row.retry_ms or 0))

    def _take(self, name: str, free: str, slot_ms: int | None, respect_backoff: bool, dead: str | None) -> tuple[Lease | None, Any]:
        token = uuid.uuid4().hex
        now = self._now
        where = [free]
        if slot_ms is not None:
            where.append("(done_ms IS NULL OR done_ms < :slot)")
        if respect_backoff:
            where.append(f"(retry_ms IS NULL OR retry_ms <= {now})")
        params = {
            "name": name,
            "owner": self.owner,
            "token": token,
            "ttl": self.ttl_ms,
            "slot": slot_ms,
            "process": _process(),
            "dead": dead,
        }
        with self._lock, self.state.engine.begin() as c:
            taken = self._exec(
                c,
                (
                    f"UPDATE {self._rel} SET owner = :owner, token = :token, process = :process, acquired_ms = {now}, "
                    f"expires_ms = {now} + :ttl, done_ms = COALESCE(:slot, done_ms) WHERE name = :name AND " + " AND ".join(where)
                ),
                params,
            ).rowcount
            if not taken and dead is None:
                columns = "(name, owner, token, process, acquired_ms, expires_ms, done_ms, failures)"
                values = f"(:name, :owner, :token, :process, {now}, {now} + :ttl, :slot, 0)"
                insert = insert_if_absent(self.state.dialect, self._rel, "name", columns, values)
                taken = self._exec(c, insert, params).rowcount
            row = self._exec(
                c,
                f"SELECT owner, token, process, acquired_ms, expires_ms, done_ms, failures, retry_ms, "
                f"{now} AS now FROM {self._rel} WHERE name = :name",
                params,
            ).one()
        if taken and row.token == token:
            return Lease(name, token, int(row.acquired_ms), int(row.failures or 0)), row
        return None, row

    def renew(self, lease: Lease) -> bool:
        """Push the expiry out by the TTL; False when the lease is no longer ours."""
        with self._lock, self.state.engine.begin() as c:
            return (
                self._exec(
                    c,
                    f"UPDATE {self._rel} SET expires_ms = {self._now} + :ttl WHERE name = :name AND token = :token",
                    {"name": lease.name, "token": lease.token, "ttl": self.ttl_ms},
                ).rowcount
                == 1
            )

    def release(
        self,
        lease: Lease,
        *,
        failed: bool | None = None,
        backoff: float = 0.0,
        max_backoff: float = 0.0,
        not_before: float | None = None,
        refreshed: bool = False,
    ) -> bool:
        """Give the lease up. `failed`: the run failed (count it and back off: `backoff`
        seconds doubling per consecutive failure, at most `max_backoff`, and at least
        `not_before` when the destination said when trying again can help) or succeeded
        (reset); None leaves the count. `refreshed`: a model's refresh completed. False when
        it was no longer ours."""
        sets = ["expires_ms = 0"]
        params: dict[str, Any] = {"name": lease.name, "token": lease.token}
        if failed is True:
            failures = lease.failures + 1
            wait = max(min(max_backoff, backoff * 2 ** min(failures - 1, 30)), not_before or 0.0)
            sets += ["failures = :failures", f"retry_ms = {self._now} + :wait"]
            params |= {"failures": failures, "wait": int(wait * 1000)}
        elif failed is False:
            sets += ["failures = 0", "retry_ms = NULL"]
        if refreshed:
            sets.append("done_ms = acquired_ms")
        with self._lock, self.state.engine.begin() as c:
            return self._exec(c, f"UPDATE {self._rel} SET {', '.join(sets)} WHERE name = :name AND token = :token", params).rowcount == 1

    def refreshed_since(self, name: str, since_ms: int) -> bool:
        """Whether the last completed refresh of `name` began at or after `since_ms`."""
        with self._lock, self.state.engine.connect() as c:
            done = self._exec(c, f"SELECT done_ms FROM {self._rel} WHERE name = :name", {"name": name}).scalar()
        return done is not None and int(done) >= since_ms

    def holders(self) -> dict[str, tuple[str, bool]]:
        """name → (owner, whether that process still runs) of every lease not released: on
        this machine judged by the holder's pid and start time, elsewhere by the expiry."""
        with self._lock, self.state.engine.connect() as c:
            rows = self._exec(c, f"SELECT name, owner, process, expires_ms, {self._now} AS now FROM {self._rel} WHERE expires_ms > 0", {})
            return {r.name: (r.owner, r.expires_ms > r.now and not _ended_here(r.process)) for r in rows}

    def held(self) -> list[dict[str, Any]]:
        """Every lease held right now (by anyone): name, owner, acquired_ms, expires_ms."""
        with self._lock, self.state.engine.connect() as c:
            rows = self._exec(
                c, f"SELECT name, owner, acquired_ms, expires_ms FROM {self._rel} WHERE expires_ms > {self._now} ORDER BY name", {}
            )
            return [dict(r._mapping) for r in rows]


def settle_ended_runs(state: StateStore, runs: list[dict[str, Any]]) -> None:
    """Show runs recorded as `running` whose process has ended (killed, crashed) as what they
    are: `aborted` (the sync's next run records it so). A run holds its sync's lease from
    before its record is written until after its end is: no live holder, no live run."""
    running = [r for r in runs if r["status"] == "running"]
    if not running or state.version() < 4:  # no leases table: nothing to judge by
        return
    holders = LeaseStore(state, "status", 0).holders()
    for r in running:
        owner, alive = holders.get(r["sync_name"], (None, False))
        if alive:
            continue
        fresh = state.run(r["run_id"])  # it may have ended (and released its lease) since it was read
        if fresh is not None and fresh["status"] != "running":
            r.update(fresh)
            continue
        r.update(status="aborted", error=RUN_ENDED + (f" ({owner})" if owner else ""))


class Renewer:
    """Renews the cycle's leases every third of their TTL, on its own thread (a batch may
    take longer than a lease); cancels a run whose lease is lost or cannot be renewed in time."""

    def __init__(self, leases: LeaseStore, ttl: float) -> None:
        self.leases = leases
        self.ttl = ttl
        self._held: dict[str, tuple[Lease, threading.Event | None, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-renewer", daemon=True)

    def hold(self, lease: Lease, cancel: threading.Event | None) -> None:
        with self._lock:
            self._held[lease.token] = (lease, cancel, time.monotonic())

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop(lease.token, None)

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._lock:
                held = list(self._held.values())
            for lease, cancel, renewed in held:
                try:
                    ok = self.leases.renew(lease)
                except Exception as e:  # the state store is unreachable: retry, then give up in time
                    log.warning("could not renew the lease of %s: %s", lease.name, redact(str(e))[:300])
                    if time.monotonic() - renewed > self.ttl * 2 / 3 and cancel is not None:
                        cancel.set()  # it may lapse before we can prove it is ours: stop sending
                    continue
                if ok:
                    with self._lock:
                        if lease.token in self._held:
                            self._held[lease.token] = (lease, cancel, time.monotonic())
                else:
                    log.error("lost the lease of %s (another process took it over); stopping its run", lease.name)
                    if cancel is not None:
                        cancel.set()

    def __enter__(self) -> Renewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _process() -> str:
    """This process, as `host|pid namespace|pid|start time`: enough for another process on
    the same machine (and in the same PID namespace, so not across containers) to tell
    whether it still runs, even after its pid was reused."""
    pid = os.getpid()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}|{namespace}|{pid}|{_started(pid) or ''}"


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), if it runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _ended_here(process: str | None) -> bool:
    """Whether `process` (see `_process`) was on this machine and has ended. Unknown: False."""
    parts = (process or "").split("|")
    if len(parts) != 4 or not parts[1] or not parts[3]:
        return False  # no /proc here: wait for the expiry
    host, namespace, pid, started = parts
    mine = _process().split("|")
    if (host, namespace) != (mine[0], mine[1]) or not pid.isdigit():
        return False
    return _started(int(pid)) != started  # gone, or its pid now belongs to another process


_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def engine_lock(engine: Engine) -> threading.Lock:
    """One lease statement at a time per engine in this process: DuckDB's optimistic
    concurrency would fail the second of two concurrent writers instead of making it wait
    (and DuckDB is one process, so this makes it atomic); elsewhere it only saves round trips."""
    with _locks_guard:
        return _locks.setdefault(engine, threading.Lock())


def _iso(ms: int | None) -> str:
    if ms is None:
        return "?"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
