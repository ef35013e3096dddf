"""PostgreSQL through psycopg 3 (SQLAlchemy `postgresql+psycopg`)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activation.project.secrets import resolve_env
from activation.warehouse.base import Warehouse, WarehouseError
from activation.warehouse.spec import PostgresWarehouseSpec


def psycopg_url(url: str) -> str:
    """postgres:// and postgresql:// mean psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class PostgresWarehouse(Warehouse):
    spec: PostgresWarehouseSpec
    dialect = "postgres"
    temp_schema = "pg_temp"  # this session's own schema: invisible to others, dropped at the end

    def _create_engine(self) -> Engine:
        if not self.spec.url:
            raise WarehouseError("a postgres warehouse needs `url`, e.g. postgresql://user@host:5432/db")
        return sa.create_engine(psycopg_url(resolve_env(self.spec.url)), pool_pre_ping=True)

    def hash_expr(self, columns: Sequence[str], alias: str, salt: str) -> str:
        # json_build_array is NULL-safe and keeps 1 and '1' apart; md5 is stable.
        values = ", ".join(f"{alias}.{self.quote(c)}" for c in columns)
        return f"md5('{salt}' || json_build_array({values})::text)"

    def binary(self, expr: str) -> str:
        return f'({expr}) COLLATE "C"'

    def order_key(self, expr: str) -> str:
        return f'{expr} COLLATE "C"'  # code-point order, whatever the database's locale

    def materialise(self, conn: Connection, relation: str, sql: str, *, temp: bool, view: bool) -> None:
        # No CREATE OR REPLACE TABLE here, and a view cannot change its columns: drop what is
        # there (as what it is), then create; Postgres DDL is transactional, so readers of the
        # old relation never see a gap once this commits.
        kind = self.execute(conn, "SELECT relkind FROM pg_class WHERE oid = to_regclass(:rel)", {"rel": relation}).scalar()
        if kind is not None:
            what = "VIEW" if kind == "v" else "MATERIALIZED VIEW" if kind == "m" else "TABLE"
            self.execute(conn, f"DROP {what} {relation} CASCADE")
        self.execute(conn, f"CREATE {'VIEW' if view else 'TABLE'} {relation} AS\n{sql}")
