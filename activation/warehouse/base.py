"""The warehouse adapter: one small interface per engine, SQLAlchemy underneath.

The adapter owns everything dialect-specific that generated SQL needs: quoting, where
temporary relations live, how a key becomes a comparable string, how a row is hashed.
Each engine is a module of its own (duckdb, postgres, snowflake), found through
`activation.warehouse.registry`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from activation.project.secrets import redact, resolve_env
from activation.unavailable import Unavailable, explain_errors
from activation.warehouse.spec import AnyWarehouseSpec

KEY_SEPARATOR = "\x1f"  # joins the parts of a composite key; never appears in real keys


class WarehouseError(Exception):
    """The warehouse refused a statement; the message carries its own words."""


class WarehouseCost(BaseModel):
    """What this process's statements cost, on engines that bill by the bytes read."""

    jobs: int
    bytes_processed: int

    def line(self) -> str:
        return f"{self.jobs} jobs processed {_size(self.bytes_processed)}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError


class Warehouse:
    dialect: str = "generic"

    def __init__(self, spec: AnyWarehouseSpec, root: Path, *, read_only: bool = False) -> None:
        self.spec = spec
        self.root = root
        self.read_only = read_only
        self.schema = spec.schema_
        self.engine: Engine = self._create_engine()
        explain_errors(self.engine, "warehouse")  # a locked file or table says who holds it

    # -- connection -----------------------------------------------------------------

    def _create_engine(self) -> Engine:
        url = getattr(self.spec, "url", None)
        if not url:
            raise WarehouseError(f"warehouse type {self.spec.type!r} needs `url`")
        return sa.create_engine(resolve_env(url), pool_pre_ping=True)

    @contextmanager
    def session(self) -> Iterator[Connection]:
        """One connection for a whole plan/run: temporary relations live on it."""
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    def cost(self) -> WarehouseCost | None:
        """What the statements of this process cost so far (None: the engine does not say)."""
        return None

    def describe(self) -> str:
        return redact(f"{self.dialect} {self.engine.url.render_as_string(hide_password=True)}")

    # -- naming ---------------------------------------------------------------------

    def quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote_identifier(name)

    #: Where this engine keeps a session's temporary relations (None: unqualified names).
    temp_schema: str | None = None

    def relation(self, name: str, *, temp: bool) -> str:
        """Where a materialised model named `name` lives (in our schema, or temporary)."""
        if temp:
            # prefixed: a temporary model must not shadow a user's table of the same name
            relation = self.quote(f"activation__{name}")
            return f"{self.temp_schema}.{relation}" if self.temp_schema else relation
        return f"{self.quote(self.schema)}.{self.quote(name)}"

    def qualified(self, schema: str, name: str) -> str:
        return f"{self.quote(schema)}.{self.quote(name)}"

    # -- SQL building blocks ---------------------------------------------------------

    #: The engine's string type for a cast that must not cut (Redshift's bare VARCHAR is 256)
    text_type: str = "VARCHAR"
    #: … and an integer's
    integer_type: str = "INTEGER"

    def as_text(self, expr: str) -> str:
        return f"CAST({expr} AS {self.text_type})"

    @property
    def null_text(self) -> str:
        return f"CAST(NULL AS {self.text_type})"

    @property
    def null_integer(self) -> str:
        return f"CAST(NULL AS {self.integer_type})"

    def key_expr(self, columns: Sequence[str], alias: str) -> str:
        """The key as one string; NULL if any part is NULL (then the row is rejected)."""
        parts = [self.as_text(f"{alias}.{self.quote(c)}") for c in columns]
        if len(parts) == 1:
            return self.binary(parts[0])
        sep = f"'{KEY_SEPARATOR}'"
        null_check = " OR ".join(f"{alias}.{self.quote(c)} IS NULL" for c in columns)
        return self.binary(f"CASE WHEN {null_check} THEN NULL ELSE {(' || ' + sep + ' || ').join(parts)} END")

    def binary(self, expr: str) -> str:
        """`expr` compared and sorted by code point, whatever the key column's collation
        (a case-insensitive column would otherwise make 'abc' and 'ABC' one key)."""
        return expr

    def hash_expr(self, columns: Sequence[str], alias: str, salt: str) -> str:
        """A stable hash of `columns`, NULL-safe and type-aware (md5 is stable across versions)."""
        raise NotImplementedError

    def order_key(self, expr: str) -> str:
        """ORDER BY expression that sorts like Python sorts str (code point order)."""
        return expr

    # -- statements -------------------------------------------------------------------

    def ensure_schema(self, conn: Connection, schema: str) -> None:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}"))

    def materialise(self, conn: Connection, relation: str, sql: str, *, temp: bool, view: bool) -> None:
        kind = "VIEW" if view else "TABLE"
        prefix = "TEMP " if temp else ""
        self.execute(conn, f"CREATE OR REPLACE {prefix}{kind} {relation} AS\n{sql}")

    def execute(self, conn: Connection, sql: str, params: Mapping[str, object] | None = None) -> sa.CursorResult:
        try:
            return conn.execute(sa.text(sql), params or {})
        except Unavailable:
            raise  # not the statement's fault: transient, said as such
        except sa.exc.DBAPIError as e:
            raise WarehouseError(_db_message(e)) from e

    def columns(self, conn: Connection, sql: str) -> list[str]:
        """The column names `sql` returns, without computing it."""
        result = self.execute(conn, f"SELECT * FROM ({sql}) AS q WHERE 1 = 0")
        cols = list(result.keys())
        result.close()
        return cols

    def stream(
        self, conn: Connection, sql: str, params: dict[str, object] | None = None, *, batch: int = 5000
    ) -> Iterator[Sequence[sa.Row]]:
        """Yield rows in chunks with a server-side cursor: memory bounded by `batch`."""
        try:
            # Per statement: Connection.execution_options() would make every later statement
            # on this (long-lived) connection a server-side cursor, DDL included.
            result = conn.execute(sa.text(sql), params or {}, execution_options={"stream_results": True, "yield_per": batch})
            yield from result.partitions(batch)
        except Unavailable:
            raise
        except sa.exc.DBAPIError as e:
            raise WarehouseError(_db_message(e)) from e

    def stream_detached(
        self, conn: Connection, sql: str, params: dict[str, object] | None = None, *, batch: int = 5000
    ) -> Iterator[Sequence[Any]]:
        """Like `stream`, for a read that lasts while the process writes to the same database
        (the diff, read while the state is written): engines where a long read holds back
        the writers' housekeeping override it."""
        yield from self.stream(conn, sql, params, batch=batch)


def _db_message(e: sa.exc.DBAPIError) -> str:
    """The database's own words, without SQLAlchemy's statement dump and links."""
    text = str(e.orig) if e.orig is not None else str(e)
    return redact(text.strip())
