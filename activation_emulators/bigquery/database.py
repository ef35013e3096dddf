"""The DuckDB side: one database (in memory or a file), its catalog seen as BigQuery's
datasets and tables, sessions, size estimates, and DuckDB's errors in BigQuery's words.

A dataset is a DuckDB schema. Every request works on its own cursor (a DuckDB connection to
the same database, safe to use from its own thread); a session keeps one cursor, so its TEMP
tables and its open transaction live there, and its requests take turns on a lock.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from .errors import BigQueryError, dataset_not_found, duplicate, invalid_query, table_not_found
from .translate import Statement, fragment
from .typemap import field_for, quote_ident, quote_str, size_sql, sql_type_name

_HIDDEN_SCHEMAS = {"main", "information_schema", "pg_catalog"}
_MISSING_TABLE = re.compile(r'(?:Table|View) with name "?([^"!\s]+)"? does not exist')
_MISSING_SCHEMA = re.compile(r'[Ss]chema(?: with name)? "?([^"!\s]+)"? does not exist')
Cursor = duckdb.DuckDBPyConnection


@dataclass
class Session:
    """A BigQuery session: its own DuckDB connection (TEMP tables, an open transaction)."""

    id: str
    cursor: Cursor
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_transaction: bool = False
    #: tables the open transaction changed ((dataset, table) as named)
    written: set[tuple[str | None, str | None]] = field(default_factory=set)
    #: why the open transaction was aborted by another's write (said at its next statement)
    aborted: str | None = None


def relation(dataset: str | None, table: str) -> str:
    return f"{quote_ident(dataset)}.{quote_ident(table)}" if dataset else quote_ident(table)


class Database:
    """The emulator's storage: ``path=None`` is in memory, else a DuckDB file (a later
    emulator on the same file sees the same datasets and tables)."""

    def __init__(self, project: str, path: str | None = None) -> None:
        self.project = project
        # no extension downloads: a function DuckDB lacks (NET.HOST) would fetch one from the internet
        self._con = duckdb.connect(path or ":memory:", config={"autoinstall_known_extensions": False})
        self._con.execute("SET GLOBAL TimeZone = 'UTC'")  # TIMESTAMPs come back in UTC
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._created: dict[tuple[str, str | None], int] = {}  # (dataset, table) → creation ms
        self._insert_ids: dict[tuple[str, str], deque[str]] = {}
        #: what tables.insert / datasets.insert were given beyond names (echoed by get)
        self.view_queries: dict[tuple[str, str], str] = {}
        self.dataset_extras: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.cursor.close()
        self._con.close()

    def cursor(self) -> Cursor:
        with self._lock:
            cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    @contextmanager
    def connection(self, session: Session | None = None) -> Iterator[Cursor]:
        """A cursor for one request: the session's (holding its lock) or a fresh one."""
        if session is not None:
            with session.lock:
                yield session.cursor
            return
        cur = self.cursor()
        try:
            yield cur
        finally:
            cur.close()

    # ------------------------------------------------------------ sessions

    def abort_idle_writers(self, table: tuple[str | None, str | None], writer: Session) -> None:
        """Roll back the open transactions of other sessions that changed `table` and are
        idle (no request running on them): BigQuery's concurrency is optimistic, the first
        transaction to commit wins and the other is aborted, so a writer is never blocked
        by a transaction that its client left open (a killed process's, say). DuckDB would
        refuse the write at once instead. The aborted session is told at its next statement."""
        with self._lock:
            others = [s for s in self._sessions.values() if s is not writer and s.in_transaction and table in s.written]
        for other in others:
            if not other.lock.acquire(blocking=False):
                continue  # running now: DuckDB's own conflict answers, as BigQuery would abort one
            try:
                with contextlib.suppress(duckdb.Error):
                    other.cursor.execute("ROLLBACK")
                other.in_transaction = False
                other.written.clear()
                name = ".".join(p for p in table if p)
                other.aborted = f"Transaction is aborted due to concurrent update against table {self.project}.{name}."
            finally:
                other.lock.release()

    def create_session(self) -> Session:
        session = Session(secrets.token_urlsafe(24), self.cursor())
        with self._lock:
            self._sessions[session.id] = session
        return session

    def session(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise invalid_query(f"Session {session_id} was not found or has been terminated (BigQuery emulator)")
        return session

    def abort_session(self, session_id: str) -> None:
        """Ends a session (its lock is held by the caller when it aborts itself)."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            if session.in_transaction:
                session.cursor.execute("ROLLBACK")
            session.cursor.close()

    # ------------------------------------------------------------ catalog

    def datasets(self) -> list[str]:
        with self.connection() as cur:
            rows = cur.execute(
                "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() AND NOT internal ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows if r[0] not in _HIDDEN_SCHEMAS]

    def has_dataset(self, dataset: str) -> bool:
        return dataset in self.datasets()

    def create_dataset(self, dataset: str) -> None:
        with self.connection() as cur:
            cur.execute(f"CREATE SCHEMA {quote_ident(dataset)}")
        self._created[(dataset, None)] = now_ms()

    def drop_dataset(self, dataset: str, delete_contents: bool) -> None:
        if not self.has_dataset(dataset):
            raise dataset_not_found(self.project, dataset)
        if self.tables(dataset) and not delete_contents:
            raise BigQueryError(400, "resourceInUse", f"Dataset {self.project}:{dataset} is still in use")
        with self.connection() as cur:
            cur.execute(f"DROP SCHEMA {quote_ident(dataset)} CASCADE")

    def tables(self, dataset: str | None = None) -> list[tuple[str, str, str]]:
        """(dataset, name, "TABLE" or "VIEW") of every relation, or of one dataset's."""
        with self.connection() as cur:
            rows = cur.execute(
                "SELECT schema_name, table_name, 'TABLE' FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary "
                "UNION ALL SELECT schema_name, view_name, 'VIEW' FROM duckdb_views() "
                "WHERE database_name = current_database() AND NOT internal AND NOT temporary ORDER BY 1, 2"
            ).fetchall()
        return [r for r in rows if (dataset is None and r[0] not in _HIDDEN_SCHEMAS) or r[0] == dataset]

    def table_kind(self, dataset: str, table: str) -> str | None:
        return next((kind for d, t, kind in self.tables(dataset) if t == table), None)

    def created_ms(self, dataset: str, table: str | None = None) -> int:
        return self._created.setdefault((dataset, table), now_ms())

    def forget(self, dataset: str, table: str | None = None) -> None:
        self._created.pop((dataset, table), None)

    def schema(self, cur: Cursor, dataset: str | None, table: str) -> list[dict[str, Any]]:
        """The REST schema fields of a table or view (NOT NULL columns are REQUIRED)."""
        description = cur.execute(f"SELECT * FROM {relation(dataset, table)} LIMIT 0").description or []
        required: set[str] = set()
        if dataset:
            required = {
                r[0]
                for r in cur.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                    "AND schema_name = ? AND table_name = ? AND NOT is_nullable",
                    [dataset, table],
                ).fetchall()
            }
        return [field_for(name, t, "REQUIRED" if name in required else "NULLABLE") for name, t, *_ in description]

    def view_sql(self, dataset: str, view: str) -> str:
        with self.connection() as cur:
            row = cur.execute(
                "SELECT sql FROM duckdb_views() WHERE database_name = current_database() AND schema_name = ? AND view_name = ?",
                [dataset, view],
            ).fetchone()
        return str(row[0]) if row else ""

    # ------------------------------------------------------------ INFORMATION_SCHEMA

    def info_schema_sql(self, dataset: str, view: str) -> str:
        """``dataset.INFORMATION_SCHEMA.TABLES|COLUMNS`` as a DuckDB subquery with BigQuery's
        column names, built from the catalog at translation time."""
        if not self.has_dataset(dataset):
            raise dataset_not_found(self.project, dataset)
        relations = self.tables(dataset)
        if view == "TABLES":
            columns = [("table_catalog", "VARCHAR"), ("table_schema", "VARCHAR"), ("table_name", "VARCHAR"), ("table_type", "VARCHAR")]
            columns += [("is_insertable_into", "VARCHAR"), ("is_typed", "VARCHAR"), ("creation_time", "TIMESTAMPTZ"), ("ddl", "VARCHAR")]
            rows: list[tuple[Any, ...]] = [
                (
                    self.project,
                    dataset,
                    name,
                    "BASE TABLE" if kind == "TABLE" else "VIEW",
                    "YES" if kind == "TABLE" else "NO",
                    "NO",
                    ms_iso(self.created_ms(dataset, name)),
                    "",
                )  # fmt: skip
                for _, name, kind in relations
            ]
        elif view == "COLUMNS":
            columns = [("table_catalog", "VARCHAR"), ("table_schema", "VARCHAR"), ("table_name", "VARCHAR"), ("column_name", "VARCHAR")]
            columns += [("ordinal_position", "BIGINT"), ("is_nullable", "VARCHAR"), ("data_type", "VARCHAR"), ("is_generated", "VARCHAR")]
            columns += [("is_hidden", "VARCHAR"), ("is_system_defined", "VARCHAR"), ("is_partitioning_column", "VARCHAR")]
            columns += [("clustering_ordinal_position", "BIGINT"), ("collation_name", "VARCHAR"), ("column_default", "VARCHAR")]
            rows = []  # declared above
            with self.connection() as cur:
                for _, name, _kind in relations:
                    for i, f in enumerate(self.schema(cur, dataset, name), 1):
                        nullable = "NO" if f["mode"] == "REQUIRED" else "YES"
                        rows.append(
                            (
                                self.project,
                                dataset,
                                name,
                                f["name"],
                                i,
                                nullable,
                                sql_type_name(f),
                                "NEVER",
                                "NO",
                                "NO",
                                "NO",
                                None,
                                "NULL",
                                "NULL",
                            )
                        )
        else:
            raise invalid_query(f"INFORMATION_SCHEMA.{view} is not served by the BigQuery emulator (TABLES and COLUMNS are)")
        return _values_sql(columns, rows)

    # ------------------------------------------------------------ estimates

    def bytes_read(self, cur: Cursor, reads: list[tuple[str | None, str]], columns: set[str] | None) -> int:
        """BigQuery's bytes processed for reading these tables' mentioned columns (an estimate:
        a column is counted when its name appears anywhere in the statement)."""
        total = 0
        for dataset, table in dict.fromkeys(reads):
            description = cur.execute(f"SELECT * FROM {relation(dataset, table)} LIMIT 0").description or []
            sizes = [size_sql(quote_ident(n), t) for n, t, *_ in description if columns is None or n.lower() in columns]
            if sizes:
                row = cur.execute(f"SELECT {' + '.join(sizes)} FROM {relation(dataset, table)}").fetchone()
                total += int(row[0] or 0) if row else 0
        return total

    # ------------------------------------------------------------ rows

    def read_rows(
        self, dataset: str, table: str, start: int, count: int, selected: list[str] | None
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], int]:
        """tabledata.list: (fields, rows start..start+count in storage order, total rows)."""
        with self.connection() as cur:
            fields = self.schema(cur, dataset, table)
            if selected:
                fields = [f for f in fields if f["name"] in selected]
            cols = ", ".join(quote_ident(f["name"]) for f in fields) or "NULL"
            name = relation(dataset, table)
            total = int(cur.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])  # type: ignore[index]
            rows = cur.execute(f"SELECT {cols} FROM {name} ORDER BY rowid LIMIT ? OFFSET ?", [count, start]).fetchall()
        return fields, rows, total

    def seen_insert_id(self, dataset: str, table: str, insert_id: str) -> bool:
        """Best-effort de-duplication of tabledata.insertAll rows by insertId, as BigQuery's
        (which keeps them about a minute; this keeps the last 100,000 per table)."""
        with self._lock:
            seen = self._insert_ids.setdefault((dataset, table), deque(maxlen=100_000))
            if insert_id in seen:
                return True
            seen.append(insert_id)
            return False

    # ------------------------------------------------------------ errors

    def error(self, e: duckdb.Error, st: Statement, default_dataset: str | None) -> BigQueryError:
        """DuckDB's refusal in BigQuery's words: a missing table or dataset is notFound, any
        other error is invalidQuery naming the emulator and the statement."""
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, duckdb.CatalogException) and "already exists" in message and st.target:
            dataset, table_name = st.target
            what = f"Table {self.project}:{dataset or default_dataset}.{table_name}" if table_name else f"Dataset {self.project}:{dataset}"
            return duplicate(what)
        if isinstance(e, duckdb.CatalogException):
            table = _MISSING_TABLE.search(message)
            schema = _MISSING_SCHEMA.search(message)
            if schema and schema.group(1) not in ("main", "temp"):
                return dataset_not_found(self.project, schema.group(1))
            if table:
                name = table.group(1).rpartition(".")[2]
                # DuckDB names the table only: the statement says which dataset it was in
                named = [ds for ds, t in [*st.reads, *([st.target] if st.target else [])] if t and t.lower() == name.lower()]
                dataset = next((ds for ds in named if ds), None) or default_dataset
                if not dataset:
                    return invalid_query(f'Table name "{name}" missing dataset while no default dataset is set in the request.')
                if not self.has_dataset(dataset):
                    return dataset_not_found(self.project, dataset)
                return table_not_found(self.project, dataset, name)
        if isinstance(e, duckdb.TransactionException) and "conflict" in message.lower():
            return invalid_query(f"Could not serialize access to a table due to concurrent update (BigQuery emulator: {message})")
        return invalid_query(f"{message} [BigQuery emulator: DuckDB refused the translation of: {fragment(st.text)} → {fragment(st.sql)}]")


def _values_sql(columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> str:
    names = ", ".join(quote_ident(n) for n, _ in columns)
    casts = ", ".join(f"CAST({quote_ident(n)} AS {t}) AS {quote_ident(n)}" for n, t in columns)
    if not rows:
        nulls = ", ".join(f"CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in columns)
        return f"SELECT {nulls} WHERE FALSE"
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    return f"SELECT {casts} FROM (VALUES {values}) AS v({names})"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return quote_str(str(value))


def now_ms() -> int:
    return int(time.time() * 1000)


def ms_iso(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}+00:00"
