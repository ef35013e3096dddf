"""Bulk writes of the state store: one statement per batch, in each engine's own way.

A first load records millions of delivered rows, so rows are never inserted one statement
at a time: DuckDB and Postgres bind each column as one array and unnest it, Snowflake
unpacks a JSON array with FLATTEN, Redshift (no arrays) takes multi-row INSERTs, SQLite
(in-process) takes executemany.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

CHUNK = 500  # keys per IN (...) list on engines without array binding
_JSON_CHUNK_BYTES = 256_000  # well under Snowflake's limit on a statement's text
_ROWS_PER_INSERT = 1000  # Redshift, BigQuery: rows per multi-row INSERT
_INSERT_BYTES = 4_000_000  # … and their values' size, a quarter of Redshift's statement limit


@dataclass(frozen=True)
class Same:
    """An inserted column with one value for every row."""

    value: Any


def _where_in(dialect: str, column: str) -> str:
    """`sync_name = :sync AND <column> IN (the bound list :keys)`, in the engine's own way."""
    if dialect == "duckdb":
        return f"sync_name = :sync AND {column} IN (SELECT unnest(CAST(:keys AS VARCHAR[])))"
    if dialect == "postgresql":
        return f"sync_name = :sync AND {column} = ANY(CAST(:keys AS TEXT[]))"
    # Snowflake: the list as one JSON array, unpacked by FLATTEN
    return f"sync_name = :sync AND {column} IN (SELECT f.value::VARCHAR FROM TABLE(FLATTEN(INPUT => PARSE_JSON(:keys))) AS f)"


def _key_lists(dialect: str, keys: list[str]) -> Iterator[Any]:
    """`keys` as the :keys parameter of `_where_in`: one list, or JSON chunks (Snowflake)."""
    if dialect in ("duckdb", "postgresql"):
        yield keys
    else:
        yield from _json_chunks(keys)


def delete_keys(c: Connection, dialect: str, rel: str, table: sa.Table, sync: str, keys: list[str], column: str = "row_key") -> None:
    """Delete the rows of `sync` whose `column` is in `keys` from `table` (SQL name `rel`), in
    one statement per chunk."""
    if not keys:
        return
    if dialect in ("duckdb", "postgresql", "snowflake"):
        for part in _key_lists(dialect, keys):
            c.execute(sa.text(f"DELETE FROM {rel} WHERE {_where_in(dialect, column)}"), {"sync": sync, "keys": part})
        return
    col = table.c[column]
    for i in range(0, len(keys), CHUNK):
        c.execute(table.delete().where(table.c.sync_name == sync, col.in_(keys[i : i + CHUNK])))


def select_keys(
    c: Connection, dialect: str, rel: str, table: sa.Table, sync: str, keys: list[str], columns: Sequence[str], column: str = "row_key"
) -> Iterator[Sequence[Any]]:
    """`columns` of the rows of `sync` whose `column` is in `keys`."""
    if not keys:
        return
    if dialect in ("duckdb", "postgresql", "snowflake"):
        for part in _key_lists(dialect, keys):
            yield from c.execute(
                sa.text(f"SELECT {', '.join(columns)} FROM {rel} WHERE {_where_in(dialect, column)}"), {"sync": sync, "keys": part}
            ).all()
        return
    col = table.c[column]
    for i in range(0, len(keys), CHUNK):
        yield from c.execute(sa.select(*(table.c[n] for n in columns)).where(table.c.sync_name == sync, col.in_(keys[i : i + CHUNK]))).all()


def insert_columns(c: Connection, dialect: str, rel: str, table: sa.Table, columns: dict[str, list[Any] | Same]) -> None:
    """Insert rows given column by column, in bulk. A `Same` column has one value for every row."""
    names = list(columns)
    cols = ", ".join(names)
    if dialect == "duckdb":
        # DuckDB's executemany runs row by row (~7k rows/s); binding whole columns as
        # lists and unnesting them is ~30x faster, and a constant is bound once.
        select = ", ".join(
            f"CAST(? AS {_sql_type(table.c[n], 'duckdb')})"
            if isinstance(columns[n], Same)
            else f"unnest(?::{_sql_type(table.c[n], 'duckdb')}[])"
            for n in names
        )
        c.exec_driver_sql(
            f"INSERT INTO {rel} ({cols}) SELECT {select}", tuple(v.value if isinstance(v, Same) else v for v in columns.values())
        )
        return
    size = next(len(v) for v in columns.values() if not isinstance(v, Same))
    lists: dict[str, list[Any]] = {n: [v.value] * size if isinstance(v, Same) else v for n, v in columns.items()}
    if dialect in ("redshift", "bigquery"):
        # No arrays on Redshift: multi-row INSERT … VALUES (what its docs advise short of a
        # COPY from S3), each statement well under Redshift's 16 MB limit on a statement.
        # BigQuery binds each value as a query parameter (at most 10,000 a statement).
        records = [dict(zip(names, values, strict=True)) for values in zip(*lists.values(), strict=True)]
        for part in _sized_chunks(records):
            c.execute(table.insert().values(part))
    elif dialect == "postgresql":
        # One statement per batch: each column bound as one array (psycopg adapts lists).
        arrays = ", ".join(f"CAST(:c{i} AS {_sql_type(table.c[n], 'postgresql')}[])" for i, n in enumerate(names))
        c.execute(sa.text(f"INSERT INTO {rel} ({cols}) SELECT * FROM unnest({arrays})"), {f"c{i}": lists[n] for i, n in enumerate(names)})
    elif dialect == "snowflake":
        # Rows as one JSON array per statement, unpacked by FLATTEN: set-based, and the
        # statement text stays small (the connector binds client-side, inlining values).
        casts = ", ".join(f"f.value[{i}]::{_sql_type(table.c[n], 'snowflake')}" for i, n in enumerate(names))
        rows = [[v.isoformat() if isinstance(v, datetime) else v for v in row] for row in zip(*lists.values(), strict=True)]
        for payload in _json_chunks(rows):
            c.execute(
                sa.text(f"INSERT INTO {rel} ({cols}) SELECT {casts} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(:rows))) AS f"),
                {"rows": payload},
            )
    else:  # SQLite: executemany runs in-process, fast enough
        c.execute(table.insert(), [dict(zip(names, values, strict=True)) for values in zip(*lists.values(), strict=True)])


def _sized_chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """`rows` in lists of at most _ROWS_PER_INSERT rows and about _INSERT_BYTES of values."""
    part: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        length = sum(len(v) if isinstance(v, str) else 16 for v in row.values())
        if part and (size + length > _INSERT_BYTES or len(part) == _ROWS_PER_INSERT):
            yield part
            part, size = [], 0
        part.append(row)
        size += length
    if part:
        yield part


def _json_chunks(items: Sequence[Any]) -> Iterator[str]:
    """`items` as JSON arrays of at most ~_JSON_CHUNK_BYTES each."""
    part: list[str] = []
    size = 0
    for item in items:
        text = json.dumps(item, separators=(",", ":"))
        if part and size + len(text) > _JSON_CHUNK_BYTES:
            yield "[" + ",".join(part) + "]"
            part, size = [], 0
        part.append(text)
        size += len(text) + 1
    if part:
        yield "[" + ",".join(part) + "]"


def _sql_type(col: sa.Column[Any], dialect: str) -> str:
    if isinstance(col.type, sa.DateTime):
        return "TIMESTAMP_NTZ" if dialect == "snowflake" else "TIMESTAMP"
    if isinstance(col.type, sa.Integer):
        return "BIGINT"
    return "TEXT" if dialect == "postgresql" else "VARCHAR"
