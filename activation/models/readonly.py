"""Refuse SQL that obviously writes: trait, audience and sync SQL must only read.

This is a seat belt, not the guard: the real guard is the warehouse role activation runs as
(read on sources, write only on its own schemas; see README). It catches the mistakes and
the pasted scripts — a second statement after `;`, a DML/DDL keyword, a data-modifying CTE —
before anything reaches the warehouse. Comments, string literals and quoted identifiers are
skipped, so `select 'drop table'` or a column named "update" are fine.
"""

from __future__ import annotations

import re

#: Keywords that only appear in statements that write (anywhere: Postgres runs DML inside a
#: CTE). Statements such as SET, PRAGMA, LOAD or CALL are caught by the first-keyword rule.
WRITE_KEYWORDS = frozenset(
    {
        "insert",
        "update",
        "delete",
        "merge",
        "drop",
        "create",
        "alter",
        "truncate",
        "grant",
        "revoke",
        "attach",
        "detach",
        "copy",
    }
)
FIRST_KEYWORDS = frozenset({"select", "with", "values", "from", "table", "("})

_TOKEN = re.compile(
    r"""
    (?P<skip> --[^\n]*            # line comment
            | /\*.*?\*/            # block comment
            | '(?:[^']|'')*'       # string literal
            | "(?:[^"]|"")*"       # quoted identifier
            | `[^`]*`              # MySQL/Snowflake-ish quoted identifier
            | \$\$.*?\$\$          # Postgres/Snowflake dollar-quoted string
            )
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<semi>;)
    | (?P<paren>\()
    | (?P<other>\S)
    """,
    re.VERBOSE | re.DOTALL,
)


def write_problem(sql: str, *, fragment: bool = False) -> str | None:
    """Why `sql` is not a single read-only query (or, with `fragment`, a read-only condition
    such as an audience's `where:`), or None when it looks like one."""
    first: str | None = None
    ended = False
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind == "skip":
            continue
        text = m.group()
        if ended:
            return "it holds more than one statement (text after `;`); use one SELECT"
        if kind == "semi":
            ended = True
            continue
        lowered = text.lower()
        line = sql.count("\n", 0, m.start()) + 1
        if first is None:
            first = lowered
            if not fragment and first not in FIRST_KEYWORDS:
                return f"it must be a query (SELECT/WITH), not {text.upper()} (line {line})"
        if kind == "word" and lowered in WRITE_KEYWORDS:
            return f"it must only read, but uses {text.upper()} (line {line}); the warehouse role is the real guard"
    if first is None and not fragment:
        return "it is empty"
    return None


def without_final_semicolon(sql: str) -> str:
    """`sql` minus a statement-ending `;` (and the comments after it): models are embedded
    as subqueries, where a `;` would be a syntax error."""
    cut = None
    for m in _TOKEN.finditer(sql):
        if m.lastgroup == "semi":
            cut = m.start()
        elif m.lastgroup != "skip":
            cut = None
    return sql[:cut] if cut is not None else sql
