"""DuckDB, embedded in the process (duckdb-engine): the default warehouse."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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

    def binary(self, expr: str) -> str:
        return f"({expr}) COLLATE C"

    def hash_expr(self, columns: Sequence[str], alias: str, salt: str) -> str:
        # to_json of a struct is NULL-safe and keeps types apart ("1" vs 1).
        struct = ", ".join(f"{self.quote(c)} := {alias}.{self.quote(c)}" for c in columns)
        return f"md5('{salt}' || to_json(struct_pack({struct}))::VARCHAR)"
