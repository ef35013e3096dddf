"""Postgres standing in for Amazon Redshift (tests, benches): what makes it one, what it cannot.

Redshift grew from Postgres 8 and speaks its protocol, so the Redshift engine
(sqlalchemy-redshift over psycopg2) runs against a local Postgres. But Postgres accepts much
that Redshift refuses, and lacks functions Redshift has. So:

- `prepare(engine)` gives the Postgres database the Redshift functions activation's SQL uses,
  with Redshift's meaning: `OBJECT(k1, v1, …)` (a SUPER object; here json) and
  `JSON_SERIALIZE(super)` (its JSON text; built into Postgres 17 and later).
- `RedshiftGuard` refuses, before Postgres sees it, every statement a Redshift-dialect
  connection sends that sqlglot cannot read as Redshift SQL, or that uses what Redshift does
  not have (its documented "unsupported
  PostgreSQL features" among them): arrays, ON CONFLICT, Postgres's JSON functions,
  COLLATE "C", indexes, temporary views, advisory locks, IS DISTINCT FROM, a bare VARCHAR or
  TEXT cast (256 characters on Redshift, cutting longer values)… It also keeps every
  statement, so a test can check what was sent.

What this cannot prove: Redshift's serializable isolation (its conflicts fail a transaction
Postgres would let through), VARCHAR lengths counted in bytes, SUPER's own type rules beyond
the functions above, distribution and sort keys, COPY/UNLOAD, a case-insensitive database's
collation, and speed.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

#: (pattern, what Redshift says or lacks): matched against a statement without its literals
UNSUPPORTED: list[tuple[str, str]] = [
    (r"\bON\s+CONFLICT\b", "INSERT … ON CONFLICT (Redshift has no upsert clause)"),
    (r"\bANY\s*\(|\bARRAY\s*\[|\[\s*\]|\bunnest\s*\(", "arrays (Redshift has no array type)"),
    (
        r"\bjson_(build_\w+|agg|object_agg|array_elements\w*|each\w*|populate_\w+|to_record\w*|strip_nulls)\s*\("
        r"|\bjsonb_\w+\s*\(|\bto_jsonb?\s*\(|::\s*jsonb?\b|\bAS\s+jsonb?\b",
        "Postgres's JSON functions and types (Redshift's: JSON_PARSE, JSON_SERIALIZE, OBJECT…)",
    ),
    (r"\bCOLLATE\s+\"", "COLLATE \"…\" (Redshift: COLLATE(expr, 'case_sensitive'))"),
    (r"\bto_regclass\s*\(", "to_regclass()"),
    (r"\bpg_advisory\w*\s*\(", "advisory locks"),
    (r"\bclock_timestamp\s*\(", "clock_timestamp()"),
    (r"\bCREATE\s+(UNIQUE\s+)?INDEX\b", "CREATE INDEX (Redshift has no indexes)"),
    (r"\bCREATE\s+(OR\s+REPLACE\s+)?TEMP(ORARY)?\s+VIEW\b", "temporary views"),
    (r"\bRETURNING\b", "RETURNING"),
    (r"\bFILTER\s*\(\s*WHERE\b", "aggregate FILTER (WHERE …)"),
    (r"\bIS\s+(NOT\s+)?DISTINCT\s+FROM\b", "IS [NOT] DISTINCT FROM"),
    (r"\bDISTINCT\s+ON\b", "DISTINCT ON"),
    (r"\bLATERAL\b", "LATERAL"),
    (r"\b(SERIAL|BIGSERIAL)\b|\bGENERATED\s+(ALWAYS|BY)\b", "serial and generated columns (Redshift: IDENTITY)"),
    (r"\bstring_agg\s*\(|\bgenerate_series\s*\(", "string_agg / generate_series"),
    (
        r"\bAS\s+(TEXT|VARCHAR|CHARACTER\s+VARYING)\s*\)|::\s*(TEXT|VARCHAR)\b(?!\s*\()",
        "a VARCHAR/TEXT cast without a length (256 on Redshift)",
    ),
]
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NULL_CAST = re.compile(r"CAST\s*\(\s*NULL\s+AS\s+VARCHAR\s*\)", re.I)  # nothing to cut


class NotRedshift(Exception):
    """A statement Redshift would refuse."""


def prepare(engine: sa.Engine) -> None:
    """Create Redshift's functions that Postgres lacks (idempotent; needs a superuser, for
    OBJECT is Postgres's own json_build_object under Redshift's name)."""
    with engine.begin() as c:
        c.execute(
            sa.text(
                "CREATE OR REPLACE FUNCTION public.object(VARIADIC \"any\") RETURNS json LANGUAGE internal STABLE AS 'json_build_object'"
            )
        )
        if int(c.execute(sa.text("SHOW server_version_num")).scalar_one()) < 170000:
            c.execute(
                sa.text(
                    "CREATE OR REPLACE FUNCTION public.json_serialize(json) RETURNS varchar LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'"
                )
            )


#: sqlglot nodes of what Redshift does not have (read as Redshift SQL by sqlglot's dialect)
_NODES: list[tuple[type[exp.Expr], str]] = [
    (exp.OnConflict, "INSERT … ON CONFLICT (Redshift has no upsert clause)"),
    (exp.Any, "arrays (Redshift has no array type)"),
    (exp.Array, "arrays (Redshift has no array type)"),
    (exp.Unnest, "arrays (Redshift has no array type)"),
]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")


def problems(statement: str) -> list[str]:
    """What in `statement` Redshift does not have (empty: nothing found): the statement must
    parse as Redshift SQL (sqlglot's dialect), and neither its syntax tree nor its text
    (literals left out) may use what UNSUPPORTED and _NODES list."""
    text = _NULL_CAST.sub("NULL", _LITERAL.sub("''", statement))
    found = [what for pattern, what in UNSUPPORTED if re.search(pattern, text, re.I)]
    try:
        trees = sqlglot.parse(_PLACEHOLDER.sub(lambda m: f":{m[1] or 'p'}", statement), read="redshift")
    except sqlglot.errors.SqlglotError as e:
        return [*found, f"SQL that sqlglot cannot read as Redshift's ({e})"]
    for tree in trees:
        for node, what in _NODES:
            if tree is not None and tree.find(node) is not None and what not in found:
                found.append(what)
    return found


@dataclass
class RedshiftGuard:
    """While entered, every statement on a connection of the `redshift` dialect is checked
    (raising NotRedshift) and kept in `statements`."""

    statements: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if conn.dialect.name != "redshift":
            return
        with self._lock:
            self.statements.append(statement)
        if found := problems(statement):
            raise NotRedshift(f"Redshift does not have {'; '.join(found)}:\n{statement}")

    def __enter__(self) -> RedshiftGuard:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._check)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self._check)
