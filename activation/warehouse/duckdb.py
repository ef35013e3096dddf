"""DuckDB, embedded in the process (duckdb-engine): the default warehouse."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activation.warehouse.base import Warehouse, WarehouseError
from activation.warehouse.spec import DuckDBWarehouseSpec


class DuckDBWarehouse(Warehouse):
    spec: DuckDBWarehouseSpec
    dialect = "duckdb"
    temp_schema = "temp.main"

    def _create_engine(self) -> Engine:
        path = self.spec.path or ".activation/warehouse.duckdb"
        if path != ":memory:":
            file = Path(path) if Path(path).is_absolute() else self.root / path
            if self.read_only and not file.exists():
                raise WarehouseError(f"DuckDB file {file} does not exist")
            file.parent.mkdir(parents=True, exist_ok=True)
            path = str(file)
        args = {"read_only": True} if self.read_only else {}
        engine = sa.create_engine(f"duckdb:///{path}", connect_args=args)

        memory_limit = self.spec.memory_limit

        @sa.event.listens_for(engine, "connect")
        def _quiet(dbapi_conn: object, _: object) -> None:
            # DuckDB draws its own progress bar on long queries; ours is the only one we want.
            dbapi_conn.execute("SET enable_progress_bar = false")  # type: ignore[attr-defined]
            if memory_limit:
                dbapi_conn.execute(f"SET memory_limit = '{memory_limit.strip()}'")  # type: ignore[attr-defined]

        return engine

    def stream_detached(
        self, conn: Connection, sql: str, params: dict[str, object] | None = None, *, batch: int = 5000
    ) -> Iterator[Sequence[Any]]:
        """The rows spooled to a DuckDB file of their own (every type kept, HUGEINT included:
        Parquet would not), then read back through that file's own database.

        DuckDB does not checkpoint while any transaction is open: a diff streamed while the
        state is written kept every appended state row in memory (and in the WAL) until the
        run ended, the bulk of a first load's memory. The spool is written in one statement,
        the warehouse's transaction ends, and the state's writes are checkpointed as usual.
        The file lies on the warehouse's disk, next to its database (a tmpfs /tmp would be
        memory again), and goes at the end."""
        if self.spec.path == ":memory:" or self.read_only:  # read-only (a plan): nothing is written meanwhile
            yield from self.stream(conn, sql, params, batch=batch)
            return
        inline = sql
        for name, value in (params or {}).items():  # CREATE TABLE AS takes no bound parameters
            assert isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_\-]*", value), value
            inline = inline.replace(f":{name}", f"'{value}'")
        folder = self.spool_dir()
        if folder is not None:  # a killed run's spool: this process holds the database now, nobody else reads it
            for stale in Path(folder).glob(".activation-diff-*"):
                shutil.rmtree(stale, ignore_errors=True)
        spool = Path(tempfile.mkdtemp(prefix=".activation-diff-", dir=folder)) / "diff.duckdb"
        try:
            conn.commit()  # ATTACH runs outside a transaction
            self.execute(conn, f"ATTACH '{spool}' AS activation_spool")
            try:
                self.execute(conn, f"CREATE TABLE activation_spool.rows AS {inline}")
                conn.commit()
            except BaseException:
                conn.rollback()  # the statement's own error (out of memory, say) is the one to see
                self.execute(conn, "DETACH DATABASE IF EXISTS activation_spool")
                conn.commit()
                raise
            self.execute(conn, "DETACH activation_spool")
            conn.commit()
            # its own database (it holds nothing of the warehouse), read through the same
            # driver as the warehouse so values come back alike (JSON parsed, say)
            reader = sa.create_engine(f"duckdb:///{spool}", connect_args={"read_only": True}, poolclass=sa.pool.NullPool)
            try:
                with reader.connect() as rc:
                    yield from self.stream(rc, "SELECT * FROM rows", batch=batch)
            finally:
                reader.dispose()
        finally:
            shutil.rmtree(spool.parent, ignore_errors=True)

    def spool_dir(self) -> str | None:
        """Beside the database file (its disk has room for its data), else the system's."""
        path = self.spec.path or ".activation/warehouse.duckdb"
        file = Path(path) if Path(path).is_absolute() else self.root / path
        return str(file.parent) if file.parent.is_dir() else None

    def binary(self, expr: str) -> str:
        return f"({expr}) COLLATE C"

    def hash_expr(self, columns: Sequence[str], alias: str, salt: str) -> str:
        # to_json of a struct is NULL-safe and keeps types apart ("1" vs 1).
        struct = ", ".join(f"{self.quote(c)} := {alias}.{self.quote(c)}" for c in columns)
        return f"md5('{salt}' || to_json(struct_pack({struct}))::VARCHAR)"
