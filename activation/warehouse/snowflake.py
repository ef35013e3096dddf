"""Snowflake through snowflake-connector-python and snowflake-sqlalchemy.

What differs from the other engines, and why:
- Identifiers: Snowflake folds unquoted names to upper case, and SQLAlchemy's Snowflake
  dialect reports them back lower-cased. So a name is quoted only when it must be
  (`preparer.quote`): `user_id` stays unquoted and finds the column USER_ID, where
  `"user_id"` would look for a lower-case column that does not exist.
- Temporary relations are unqualified: Snowflake creates them in the session's current
  schema (the warehouse's `schema`, set on the connection).
- Row hashes: md5 of TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL(...)) — NULL-safe, keeps 1 and '1'
  apart. Not HASH(): it is not stable across engines and versions (and fakesnow's differs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from activation.project.secrets import resolve_env
from activation.warehouse.base import Warehouse, WarehouseError
from activation.warehouse.spec import SnowflakeWarehouseSpec


class SnowflakeWarehouse(Warehouse):
    """Opened through the registry, which first checks snowflake-sqlalchemy is installed."""

    spec: SnowflakeWarehouseSpec
    dialect = "snowflake"
    temp_schema = None  # Snowflake keeps temporary tables in the session's current schema

    def _create_engine(self) -> Engine:
        connect_args: dict[str, Any] = {
            # tag our queries in Snowflake's query history
            "session_parameters": {"QUERY_TAG": "activation"},
        }
        if self.spec.url:
            url: str | sa.URL = resolve_env(self.spec.url)
        else:
            from snowflake.sqlalchemy import URL

            s = self.spec
            parts = {
                "account": s.account,
                "user": s.user,
                "database": s.database,
                "schema": self.schema,
                "warehouse": s.warehouse,
                "role": s.role,
            }
            url = URL(**{k: resolve_env(v) for k, v in parts.items() if v})
            # secrets go straight to the connector, never into a URL that could be printed
            if s.password:
                connect_args["password"] = resolve_env(s.password)
            if s.private_key_file or s.private_key:
                connect_args["private_key"] = self._private_key()
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)

    def _private_key(self) -> bytes:
        """The key-pair auth key as the connector takes it: unencrypted PKCS#8 DER bytes."""
        from cryptography.hazmat.primitives import serialization

        s = self.spec
        if s.private_key_file:
            file = Path(resolve_env(s.private_key_file))
            file = file if file.is_absolute() else self.root / file
            where = f"private_key_file {file}"
            try:
                pem = file.read_bytes()
            except OSError as e:
                raise WarehouseError(f"cannot read {where}: {e.strerror}") from e
        else:
            where = "private_key"
            pem = resolve_env(s.private_key or "").replace("\\n", "\n").encode()
        passphrase = resolve_env(s.private_key_passphrase).encode() if s.private_key_passphrase else None
        try:
            key = serialization.load_pem_private_key(pem, password=passphrase)
        except (ValueError, TypeError) as e:
            # cryptography's words: "Bad decrypt. Incorrect password?", "Password was not given…"
            raise WarehouseError(f"cannot load the {where}: {e}") from e
        return key.private_bytes(
            encoding=serialization.Encoding.DER,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    def quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)

    def hash_expr(self, columns: Sequence[str], alias: str, salt: str) -> str:
        pairs = ", ".join(f"'{c}', {alias}.{self.quote(c)}" for c in columns)
        return f"md5('{salt}' || TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL({pairs})))"
