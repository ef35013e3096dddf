"""Amazon Redshift through sqlalchemy-redshift over Amazon's redshift_connector (or psycopg2).

Redshift speaks Postgres's protocol but not all of its SQL. What differs from the Postgres
engine, and why:
- No arrays, no JSON functions of Postgres, no `COLLATE "C"`, no `to_regclass`, no
  `ON CONFLICT`, no advisory locks, no indexes: the SQL here (and in the state store, for
  the dialect `redshift`) keeps to what Redshift documents.
- Row hashes: md5 of JSON_SERIALIZE(OBJECT(...)), Redshift's SUPER functions: NULL-safe, and
  1 and '1' stay apart. A cast to VARCHAR would not do: Redshift refuses to cast BOOLEAN to
  a string.
- `VARCHAR` without a length is VARCHAR(256) on Redshift (and TEXT too): keys are cast to
  VARCHAR(65535), the longest there is, so a long key is not cut.
- Order: Redshift compares strings by their UTF-8 bytes (a case-sensitive database, the
  default), which is code point order: no collation needed.
- Temporary tables: unqualified names (Redshift keeps them in a session schema of its own).
  Redshift has no temporary views: where a dry run would make one, it makes a temporary table.
- Reflection: sqlalchemy-redshift's reads Redshift's own catalog views (svv_*, pg_table_def);
  what activation needs (does a relation exist, what kind is it) is read from pg_class and
  pg_namespace, which Redshift has too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activation.project.secrets import resolve_env
from activation.warehouse.base import Warehouse, WarehouseError
from activation.warehouse.spec import AnyWarehouseSpec, RedshiftWarehouseSpec


def redshift_url(url: str) -> str:
    """redshift:// means sqlalchemy-redshift over Amazon's redshift_connector."""
    if url.startswith("redshift://"):
        return "redshift+redshift_connector://" + url[len("redshift://") :]
    return url


class RedshiftWarehouse(Warehouse):
    """Opened through the registry, which first checks sqlalchemy-redshift is installed."""

    spec: RedshiftWarehouseSpec
    dialect = "redshift"
    temp_schema = None  # a session's temporary tables live in a schema Redshift picks
    text_type = "VARCHAR(65535)"  # the longest there is; a bare VARCHAR would be 256

    def __init__(self, spec: AnyWarehouseSpec, root: Path, *, read_only: bool = False) -> None:
        super().__init__(spec, root, read_only=read_only)
        self._temporary: set[tuple[Connection, str]] = set()  # (session, relation) made TEMP here

    def _create_engine(self) -> Engine:
        if not self.spec.url:
            raise WarehouseError(
                "a redshift warehouse needs `url`, e.g. redshift://user:${REDSHIFT_PASSWORD}@cluster.abc.eu-west-1.redshift.amazonaws.com:5439/dev"
            )
        url = redshift_url(resolve_env(self.spec.url))
        return sa.create_engine(url, pool_pre_ping=True, connect_args=self._connect_args(url))

    def _connect_args(self, url: str) -> dict[str, Any]:
        """TLS and IAM, in each driver's words (secrets resolved here, never put in a URL)."""
        s = self.spec
        if not url.startswith("redshift+redshift_connector"):
            return {"sslmode": s.sslmode}  # psycopg2 (libpq)
        args: dict[str, Any] = {"ssl": s.sslmode != "disable"}
        if s.sslmode != "disable":
            args["sslmode"] = s.sslmode
        if s.iam:
            args["iam"] = True
            keys = ("cluster_identifier", "serverless_work_group", "region", "db_user", "profile", "access_key_id", "secret_access_key")
            args |= {k: resolve_env(getattr(s, k)) for k in keys if getattr(s, k)}
        return args

    def hash_expr(self, columns: Sequence[str], alias: str, salt: str) -> str:
        pairs = ", ".join(f"'{c}', {alias}.{self.quote(c)}" for c in columns)
        return f"md5('{salt}' || JSON_SERIALIZE(OBJECT({pairs})))"

    def materialise(self, conn: Connection, relation: str, sql: str, *, temp: bool, view: bool) -> None:
        # Neither CREATE OR REPLACE TABLE nor a view changing its columns: drop what is there,
        # as what it is, then create (Redshift's DDL is transactional too).
        if not temp:
            kind = self._kind(conn, relation)
            if kind is not None:
                self.execute(conn, f"DROP {'VIEW' if kind == 'v' else 'TABLE'} {relation} CASCADE")
            self.execute(conn, f"CREATE {'VIEW' if view else 'TABLE'} {relation} AS\n{sql}")
            return
        # Redshift has no temporary views: a dry run's models are temporary tables, gone with
        # the session like the rest of it. Dropped only when this session made it: the name is
        # unqualified, and would otherwise find a table of the same name in the search path.
        if (conn, relation) in self._temporary:
            self.execute(conn, f"DROP TABLE {relation}")
        self.execute(conn, f"CREATE TEMP TABLE {relation} AS\n{sql}")
        self._temporary.add((conn, relation))

    def _kind(self, conn: Connection, relation: str) -> str | None:
        """'r' (table), 'v' (view) or None for `relation` ("schema"."name") in our schema."""
        name = relation.rsplit(".", 1)[-1].strip('"').replace('""', '"')
        return self.execute(
            conn,
            "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = :name",
            {"schema": self.schema, "name": name},
        ).scalar()
