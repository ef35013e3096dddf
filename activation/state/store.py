"""StateStore: what each sync delivered, its runs, and the rows it could not deliver.

The store is the source of truth for "delivered": a row is written here only after the
destination acknowledged it, and each acknowledged batch is committed in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activation.errors import StateError
from activation.state import identities as ids
from activation.state.bulk import Same, delete_keys, insert_columns
from activation.state.identities import IdentityRules, Release
from activation.state.journal import CorruptJournal, Journaled, JournalEntry, read_entry, values_json
from activation.state.schema import LATEST, MIGRATIONS, create_table, has_table, tables


@dataclass(slots=True)  # one per delivered row on the hot path: no frozen-dataclass __init__
class Delivered:
    key: str
    row_hash: str
    values: dict[str, Any]
    dest_id: str | None
    values_json: str | None = None  # `values` already serialised (the journal did it), if so
    new: bool = False  # the diff found no delivered row for this key: nothing to replace
    # The identities the destination now holds the row under (its claims are replaced by
    # these); None: unchanged (a row whose hash changed but whose values did not).
    identities: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RowError:
    key: str | None
    stage: str
    reason: str


#: The error of a run whose process ended before it recorded its end (killed, crashed).
RUN_ENDED = "the process ended before the run finished"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class StateStore:
    def __init__(self, engine: Engine, schema: str | None, *, read_only: bool = False) -> None:
        self.engine = engine
        self.schema = schema
        self.read_only = read_only
        self.dialect = engine.dialect.name
        self._latest_seen = False
        self.metadata, self.t = tables(
            schema, indexes=self.dialect not in ("snowflake", "duckdb", "redshift", "bigquery"), row_keys=self.dialect != "duckdb"
        )

    # -- schema --------------------------------------------------------------------------

    def version(self, conn: Connection | None = None) -> int:
        """The applied schema version; 0 when the store was never initialised."""
        if self._latest_seen:
            # a store at the latest version stays there (nothing drops the state's tables),
            # and asking again is a job per question on BigQuery, where a run asked ~40 times
            return LATEST

        def read(c: Connection) -> int:
            if not has_table(c, "schema_version", self.schema):
                return 0
            version = int(c.execute(sa.select(sa.func.max(self.t["schema_version"].c.version))).scalar() or 0)
            self._latest_seen = version == LATEST
            return version

        if conn is not None:
            return read(conn)
        with self.engine.connect() as c:
            return read(c)

    @property
    def initialised(self) -> bool:
        return self.version() > 0

    def migrate(self) -> int:
        """Apply pending migrations; return the version reached."""
        if self.read_only:
            raise StateError("the state store is open read-only")
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                # pysqlite runs DDL outside any transaction: take the write lock first, so two
                # processes migrating a new store at once take turns (both created the tables
                # and the second failed on schema_version's key)
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if self.dialect == "postgresql":
                # Two processes migrating at once (daemons starting together) would race on
                # CREATE SCHEMA/TABLE; one waits for the other instead.
                key = int(hashlib.md5(f"activation state {self.schema}".encode()).hexdigest()[:15], 16)
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            if self.schema and self.dialect != "sqlite":
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {self._q(self.schema)}"))
            create_table(conn, self.t["schema_version"])
            current = self.version(conn)
            if current > LATEST:
                raise StateError(
                    f"the state store is at schema version {current}, newer than this activation ({LATEST}); upgrade activation"
                )
            for version, _, step in MIGRATIONS:
                if version > current:
                    step(conn, self.metadata)
                    conn.execute(self.t["schema_version"].insert().values(version=version, applied_at=utcnow()))
            return LATEST

    def _q(self, name: str) -> str:
        # quoted only where needed, as SQLAlchemy's own DDL names the tables: on Snowflake
        # "activation_state" (quoted) and activation_state (folded to upper) are two schemas
        return self.engine.dialect.identifier_preparer.quote(name)

    def relation(self, table: str) -> str:
        """SQL name of one of the store's tables (e.g. "delivered", for the in-warehouse diff)."""
        return f"{self._q(self.schema)}.{table}" if self.schema else table

    # -- reads ------------------------------------------------------------------------

    def delivered_count(self, sync: str) -> int:
        if not self.initialised:
            return 0
        d = self.t["delivered"]
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).where(d.c.sync_name == sync)).scalar() or 0)

    def stream_delivered(self, sync: str, batch: int = 5000) -> Generator[Sequence[sa.Row], None, None]:  # (callers close it early)
        """(row_key, row_hash, row_values, dest_id) ordered by key in code point order."""
        if not self.initialised:
            return
        d = self.t["delivered"]
        key = d.c.row_key.collate("C") if self.dialect == "postgresql" else d.c.row_key
        q = sa.select(d.c.row_key, d.c.row_hash, d.c.row_values, d.c.dest_id).where(d.c.sync_name == sync).order_by(key)
        with self.engine.connect() as c:
            result = c.execution_options(stream_results=True, yield_per=batch).execute(q)
            yield from result.partitions(batch)

    def delivered_rows(self, sync: str) -> dict[str, Delivered]:
        """Everything delivered for `sync` (for tests and small syncs; not for the hot path)."""
        out: dict[str, Delivered] = {}
        for chunk in self.stream_delivered(sync):
            for k, h, v, i in chunk:
                out[k] = Delivered(k, h, json.loads(v), i)
        return out

    def runs(self, sync: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        if not self.initialised:
            return []
        r = self.t["runs"]
        q = sa.select(r).order_by(r.c.started_at.desc(), r.c.run_id.desc()).limit(limit)
        if sync:
            q = q.where(r.c.sync_name == sync)
        with self.engine.connect() as c:
            return [_run(row) for row in c.execute(q)]

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """The latest run of every sync that ever ran."""
        if not self.initialised:
            return {}
        r = self.t["runs"]
        latest = sa.select(r.c.sync_name, sa.func.max(r.c.started_at).label("at")).group_by(r.c.sync_name).subquery()
        q = sa.select(r).join(latest, sa.and_(r.c.sync_name == latest.c.sync_name, r.c.started_at == latest.c.at))
        with self.engine.connect() as c:
            return {row.sync_name: _run(row) for row in c.execute(q)}

    def run(self, run_id: str) -> dict[str, Any] | None:
        r = self.t["runs"]
        with self.engine.connect() as c:
            row = c.execute(sa.select(r).where(r.c.run_id == run_id)).first()
            return _run(row) if row is not None else None

    def row_errors(self, run_id: str, limit: int | None = 50) -> list[dict[str, Any]]:
        """The rows `run_id` rejected, by key; the first `limit` (None: all)."""
        if not self.initialised:
            return []
        e = self.t["row_errors"]
        q = sa.select(e.c.row_key, e.c.stage, e.c.reason).where(e.c.run_id == run_id).order_by(e.c.row_key)
        with self.engine.connect() as c:
            return [dict(row._mapping) for row in c.execute(q if limit is None else q.limit(limit))]

    def row_error_count(self, run_id: str) -> int:
        """How many rows `run_id` rejected (what `row_errors` may have cut)."""
        if not self.initialised:
            return 0
        e = self.t["row_errors"]
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(e).where(e.c.run_id == run_id)).scalar_one())

    # -- writes -----------------------------------------------------------------------

    def start_run(self, sync: str, destination: str) -> str:
        run_id = uuid.uuid4().hex[:16]
        r = self.t["runs"]
        with self.engine.begin() as c:
            # A run still 'running' here belonged to a process that died (one run per sync
            # at a time): say so in its record instead of leaving it running forever.
            c.execute(
                r.update()
                .where(r.c.sync_name == sync, r.c.status == "running")
                .values(status="aborted", finished_at=utcnow(), error=RUN_ENDED)
            )
            c.execute(
                self.t["runs"]
                .insert()
                .values(
                    run_id=run_id,
                    sync_name=sync,
                    destination=destination,
                    started_at=utcnow(),
                    status="running",
                    added=0,
                    changed=0,
                    removed=0,
                    unchanged=0,
                    rejected=0,
                    sent=0,
                    failed=0,
                )
            )
        return run_id

    def finish_run(
        self, run_id: str, status: str, counts: dict[str, int], error: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        """Close a run record; `details` is the destination's report (kept as JSON)."""
        extra = {"details": json.dumps(details, sort_keys=True, default=str)} if details else {}
        with self.engine.begin() as c:
            c.execute(
                self.t["runs"]
                .update()
                .where(self.t["runs"].c.run_id == run_id)
                .values(status=status, finished_at=utcnow(), error=error, **counts, **extra)
            )

    def _journaled(self, c: Connection, sync: str) -> list[Journaled]:
        """Every row journaled for `sync`: entries of whole pushes, and the per-row entries
        that earlier releases wrote (the same table: a store they left mid-run recovers)."""
        f = self.t["in_flight"]
        out: list[Journaled] = []
        for key, text, run_id in c.execute(sa.select(f.c.row_key, f.c.row_values, f.c.run_id).where(f.c.sync_name == sync)):
            out += read_entry(key, text, run_id, sync)
        return out

    def recover_in_flight(self, sync: str, rules: IdentityRules) -> int:
        """Fold rows a dead run left in flight back in as *possibly* delivered (see
        `identities.recover`): resent while in the model, released by identity when they
        leave. Returns how many rows were recovered."""
        with self.engine.begin() as c:
            rows = self._journaled(c, sync)
            if rows:
                ids.recover(self, c, sync, rows, rules, utcnow())
                c.execute(self.t["in_flight"].delete().where(self.t["in_flight"].c.sync_name == sync))
            return len(rows)

    def in_flight_count(self, sync: str) -> int:
        """Rows journaled for `sync` and not settled (left by a run that died, or running)."""
        if self.version() < 2:
            return 0
        with self.engine.connect() as c:
            return len(self._journaled(c, sync))

    def commit_batch(
        self,
        sync: str,
        run_id: str,
        delivered: Sequence[Delivered] = (),
        removed: Sequence[str] = (),
        errors: Sequence[RowError] = (),
        counts: dict[str, int] | None = None,
        settled: Sequence[str] = (),
        journal: JournalEntry | None = None,
        releases: Sequence[Release] = (),
        released: Sequence[str] = (),
    ) -> None:
        """Record acknowledged work and journal what is sent next, in one transaction.

        Delivered rows (with the identities they now claim), rows that left the model
        (`removed`: their claims go too), rejections; identities rows stopped claiming
        (`releases`) and released identities the destination removed or that need no removal
        (`released`); the end of the journal entries of every push that is over (`settled`:
        the `ids` of their `JournalEntry`s); and `journal`, the rows about to be sent: the
        destination must not see them before this commits.
        """
        now = utcnow()
        d, f = self.t["delivered"], self.t["in_flight"]
        with self.engine.begin() as c:
            self._delete_keys(c, sync, [r.key for r in delivered if not r.new] + list(removed))
            reclaimed = [r for r in delivered if r.identities is not None]
            if reclaimed or removed:
                ids.replace_claims(
                    self,
                    c,
                    sync,
                    [r.key for r in reclaimed if not r.new] + list(removed),
                    [(r.key, i) for r in reclaimed for i in r.identities or ()],
                )
            ids.add_releases(self, c, sync, releases, now)
            ids.drop_releases(self, c, sync, released)
            self._delete_keys(c, sync, list(settled), table="in_flight")
            if delivered:
                self._insert(
                    c,
                    d,
                    {
                        "sync_name": Same(sync),
                        "row_key": [r.key for r in delivered],
                        "row_hash": [r.row_hash for r in delivered],
                        "row_values": [r.values_json if r.values_json is not None else values_json(r.values) for r in delivered],
                        "dest_id": [r.dest_id for r in delivered],
                        "delivered_at": Same(now),
                    },
                )
            if journal is not None and journal.parts:
                self._insert(
                    c,
                    f,
                    {
                        "sync_name": Same(sync),
                        "row_key": journal.ids,
                        "row_values": [t for _, t in journal.parts],
                        "run_id": Same(run_id),
                        "created_at": Same(now),
                    },
                )
            if errors:
                self._insert(
                    c,
                    self.t["row_errors"],
                    {
                        "run_id": [run_id] * len(errors),
                        "sync_name": [sync] * len(errors),
                        "row_key": [e.key for e in errors],
                        "stage": [e.stage for e in errors],
                        "reason": [e.reason[:2000] for e in errors],
                        "created_at": [now] * len(errors),
                    },
                )
            if counts:
                r = self.t["runs"]
                c.execute(r.update().where(r.c.run_id == run_id).values(**{k: getattr(r.c, k) + v for k, v in counts.items()}))

    def stored(self, sync: str) -> dict[str, int]:
        """How many rows of each table the store keeps for `sync`."""
        if not self.initialised:
            return {}
        with self.engine.connect() as c:
            counts = {
                name: int(c.execute(sa.select(sa.func.count()).where(self.t[name].c.sync_name == sync)).scalar() or 0)
                for name in ("delivered", "row_errors", "runs")
            }
            try:
                counts["in_flight"] = len(self._journaled(c, sync))  # rows, not journal entries
            except CorruptJournal:  # reset must still work: count the entries
                f = self.t["in_flight"]
                counts["in_flight"] = int(c.execute(sa.select(sa.func.count()).where(f.c.sync_name == sync)).scalar() or 0)
            return counts

    def reset(self, sync: str, *, history: bool = False) -> dict[str, int]:
        """Forget what `sync` delivered (the next run resends all rows), with every row-level
        trace of it: the in-flight journal and the rejected rows (keys and reasons, which may
        hold personal data). `history` also drops its run records (counts and timings only)."""
        tables = ["delivered", "in_flight", "row_errors"] + (["runs"] if history else [])
        with self.engine.begin() as c:
            gone = {name: int(c.execute(self.t[name].delete().where(self.t[name].c.sync_name == sync)).rowcount or 0) for name in tables}
            if self.version(c) >= 5:
                # what rows claimed goes with them; released identities not yet removed are
                # left at the destination from now on: say how many
                released = ids.pending_releases(self, sync)
                for name in ("claims", "releases", "identity_versions"):
                    c.execute(self.t[name].delete().where(self.t[name].c.sync_name == sync))
                if released:
                    gone["releases"] = released
            return gone

    def _delete_keys(self, c: Connection, sync: str, keys: list[str], table: str = "delivered") -> None:
        delete_keys(c, self.dialect, self.relation(table), self.t[table], sync, keys)

    def _insert(self, c: Connection, table: sa.Table, columns: dict[str, list[Any] | Same]) -> None:
        insert_columns(c, self.dialect, self.relation(table.name), table, columns)


def _run(row: sa.Row[Any]) -> dict[str, Any]:
    run = dict(row._mapping)
    run["details"] = json.loads(run["details"]) if run.get("details") else None
    return run


def open_state(
    url: str | None, schema: str, warehouse_engine: Engine, *, read_only: bool, lock_timeout: float = 0, statement_timeout: float = 0
) -> StateStore:
    """The state store: in the warehouse (url None) or at its own SQLAlchemy URL.

    On Postgres a statement of the store waits at most `lock_timeout` seconds for a lock
    another session holds, and runs at most `statement_timeout` seconds (0: no limit), then
    fails with a message naming the holder (`Unavailable`) instead of hanging the run. The
    store has its own connections for that even inside the warehouse's database: the
    warehouse's model queries may rightly run long, and keep the server's settings.
    """
    from activation.project.secrets import resolve_env
    from activation.unavailable import explain_errors
    from activation.warehouse.postgres import psycopg_url

    warehouse_url = warehouse_engine.url.render_as_string(hide_password=False)
    resolved = psycopg_url(resolve_env(url)) if url is not None else warehouse_url
    if resolved.startswith("sqlite"):
        engine = _sqlite_engine(resolved, read_only)
        return StateStore(engine, None, read_only=read_only)
    if resolved == warehouse_url and warehouse_engine.dialect.name != "postgresql":
        # The same database as the warehouse: share the engine, so the diff runs there (and a
        # DuckDB file is opened once).
        return StateStore(warehouse_engine, schema, read_only=read_only)
    engine = sa.create_engine(resolved, pool_pre_ping=True)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        _postgres_timeouts(engine, lock_timeout, statement_timeout)
    explain_errors(engine, "state store", timeouts=(lock_timeout, statement_timeout) if postgres else None)
    return StateStore(engine, schema, read_only=read_only)


def _postgres_timeouts(engine: Engine, lock_timeout: float, statement_timeout: float) -> None:
    @sa.event.listens_for(engine, "connect")
    def _limits(dbapi_conn: Any, _: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")
            cur.execute(f"SET statement_timeout = {int(statement_timeout * 1000)}")
        dbapi_conn.commit()  # or the pool's rollback on return would undo the settings


def _sqlite_engine(url: str, read_only: bool) -> Engine:
    from pathlib import Path

    path = url.split("///", 1)[1] if "///" in url else ""
    if path and not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if read_only and path and not Path(path).exists():
        # Nothing was ever delivered; a dry run must not create the file to find that out.
        engine = sa.create_engine("sqlite://")
    elif read_only and path:
        # mode=ro guarantees a dry run cannot change a byte of the file.
        engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _: Any) -> None:  # readers and one writer at once
            dbapi_conn.execute("PRAGMA journal_mode=WAL")

    return engine
