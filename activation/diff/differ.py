"""Classify every key of a sync's model against what was delivered.

Two engines, one output (`DiffRow`s in key order, unchanged rows left out):
- `SqlDiffer`: the delivered table is in the warehouse; one set-based FULL OUTER JOIN on
  the key, comparing row hashes, runs there and only differing rows travel.
- `MergeDiffer`: the state store is elsewhere (SQLite, another Postgres); both sides are
  streamed in key order and merged, memory bounded by the batch.
Row hashes are computed by the warehouse in both, so both agree by construction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.engine import Connection

from activation.project.spec import NAME_PATTERN
from activation.state.store import StateStore
from activation.warehouse.base import Warehouse

DiffKind = Literal["added", "changed", "removed", "null_key", "duplicate_key", "shared_identity"]
SharedRule = Literal["reject", "first", "merge"]


@dataclass(slots=True)
class DiffRow:
    kind: DiffKind
    key: str | None
    row: dict[str, Any] | None  # model columns the mapping reads (None when removed)
    row_hash: str | None
    stored_values: dict[str, Any] | None  # what was delivered (None when new)
    stored_hash: str | None
    dest_id: str | None
    # shared_identity: how many other rows map to the row's record, and one of them
    shared: tuple[int, str] | None = None


@dataclass(frozen=True)
class KeyStats:
    rows: int
    null_keys: int
    duplicates: bool
    shared: int = 0  # rows that would share a record with another row (rejected)


@dataclass(frozen=True)
class SharedIdentities:
    """How to find rows that would write one record at the destination: the record identity
    as SQL over the model (`src`), or None where the rows must be mapped to know it (`mapped`);
    and the sync's rule for them: reject them all, or keep the first by `order` (SQL over
    `src`, then the key) and reject the others."""

    rule: SharedRule
    sql: str | None
    order: str | None = None


@dataclass(frozen=True)
class DiffQuery:
    sync: str
    model_sql: str
    key: list[str]
    columns: list[str]  # model columns to hash and bring back
    salt: str  # fingerprint of the mapping: a changed mapping changes every hash
    target: str = ""  # fingerprint of where rows go (to, object, mode, match): prefixes each hash
    shared: SharedIdentities | None = None  # None: rows may share a record (ad audiences; merge)


class Differ:
    def __init__(self, warehouse: Warehouse, state: StateStore) -> None:
        self.wh = warehouse
        self.state = state

    def shared_relation(self, q: DiffQuery) -> str:
        """The temporary table of the rows that would share a record (key, others, one other)."""
        return self.wh.relation(f"shared-{q.sync}", temp=True)

    def find_shared(self, conn: Connection, q: DiffQuery, mapped: Iterator[tuple[str, str]] | None = None) -> int:
        """Put the model's rows that would write one record at the destination (and are not the
        row a `first` rule keeps) in `shared_relation`; return how many. The identity comes
        from SQL (`q.shared.sql`) or, where a match field is a template, from `mapped`: every
        model row's (key, identity), computed by mapping it."""
        rule = q.shared
        if rule is None or rule.rule == "merge":
            return 0
        wh = self.wh
        key = wh.key_expr(q.key, "src")
        if rule.sql is not None:
            ids = f"SELECT {key} AS __k, {rule.sql} AS __i FROM ({q.model_sql}) AS src"
        else:
            groups: dict[str, list[str]] = {}
            for k, identity in mapped or ():
                groups.setdefault(identity, []).append(k)
            pairs = [(k, i) for i, keys in groups.items() if len(keys) > 1 for k in keys]
            ids = (
                " UNION ALL ".join(f"SELECT {_literal(k)} AS __k, {_literal(i)} AS __i" for k, i in pairs)
                or f"SELECT {self.wh.null_text} AS __k, {self.wh.null_text} AS __i WHERE 1 = 0"
            )
        # The rank of a `first` rule orders by the model's own columns: only the rows that
        # share a record are joined back to it.
        order, join = (f"{rule.order}, c.__k", f" JOIN ({q.model_sql}) AS src ON {key} = c.__k") if rule.order else ("c.__k", "")
        keep = "" if rule.rule == "reject" else "WHERE __rank > 1"
        sql = f"""WITH ids AS ({ids}),
g AS (SELECT __i FROM ids WHERE __k IS NOT NULL AND __i IS NOT NULL AND __i <> '' GROUP BY __i HAVING COUNT(*) > 1),
c AS (SELECT ids.__k, ids.__i FROM ids JOIN g ON ids.__i = g.__i),
r AS (SELECT c.__k, COUNT(*) OVER (PARTITION BY c.__i) - 1 AS __n,
        MIN(c.__k) OVER (PARTITION BY c.__i) AS __lo, MAX(c.__k) OVER (PARTITION BY c.__i) AS __hi,
        ROW_NUMBER() OVER (PARTITION BY c.__i ORDER BY {order}) AS __rank
      FROM c{join})
SELECT __k, __n, CASE WHEN __lo = __k THEN __hi ELSE __lo END AS __other FROM r {keep}"""
        wh.materialise(conn, self.shared_relation(q), sql, temp=True, view=False)
        return int(wh.execute(conn, f"SELECT COUNT(*) FROM {self.shared_relation(q)}").scalar() or 0)

    def model_rows(self, conn: Connection, q: DiffQuery) -> int:
        """How many rows the sync's model has (its size; no diff)."""
        return int(self.wh.execute(conn, f"SELECT COUNT(*) FROM ({q.model_sql}) AS m").scalar() or 0)

    def key_stats(self, conn: Connection, q: DiffQuery, mapped: Iterator[tuple[str, str]] | None = None) -> KeyStats:
        """Row count, whether any key repeats (one aggregate pass), and the rows that would
        share a record (see `find_shared`; `mapped` where the identity needs mapping).

        A GROUP BY, not COUNT(DISTINCT): engines hash it (Postgres sorts for a DISTINCT)."""
        shared = self.find_shared(conn, q, mapped)
        key = self.wh.key_expr(q.key, "src")
        total, nulls, most = self.wh.execute(
            conn,
            f"""SELECT SUM(n), SUM(CASE WHEN k IS NULL THEN n ELSE 0 END),
  MAX(CASE WHEN k IS NULL THEN 0 ELSE n END)
FROM (SELECT k, COUNT(*) AS n FROM (SELECT {key} AS k FROM ({q.model_sql}) AS src) AS m GROUP BY k) AS g""",
        ).one()
        return KeyStats(int(total or 0), int(nulls or 0), int(most or 0) > 1, shared)

    def hash(self, q: DiffQuery) -> str:
        """The row hash, prefixed with the target's tag so a changed target is visible later."""
        return f"'{q.target}:' || {self.wh.hash_expr(q.columns, 'src', q.salt)}"

    def model_cte(self, q: DiffQuery, stats: KeyStats) -> str:
        """key, hash, rows with the key, shared (others, one other), then the columns."""
        wh = self.wh
        key = wh.key_expr(q.key, "src")
        cols = ", ".join(f"src.{wh.quote(c)} AS __c{i}" for i, c in enumerate(q.columns))
        # The window that spots duplicate keys costs ~50% of the diff; pay it only when needed.
        count = f"COUNT(*) OVER (PARTITION BY {key})" if stats.duplicates else "1"
        shared, join = self._shared_join(q, stats, key)
        return (
            f"SELECT {key} AS __key, {self.hash(q)} AS __hash, "
            f"{count} AS __n, {shared}{', ' + cols if cols else ''}\n"
            f"FROM ({q.model_sql}) AS src{join}"
        )

    def _shared_join(self, q: DiffQuery, stats: KeyStats, key: str) -> tuple[str, str]:
        """The columns __sn, __so (others sharing the row's record, one of them) and the join
        that brings them, NULL when no row shares one."""
        if not stats.shared:
            return f"{self.wh.null_integer} AS __sn, {self.wh.null_text} AS __so", ""
        return "sh.__n AS __sn, sh.__other AS __so", f" LEFT JOIN {self.shared_relation(q)} AS sh ON sh.__k = {key}"

    def rows(self, conn: Connection, q: DiffQuery, stats: KeyStats, batch: int = 5000, *, while_writing: bool = False) -> Iterator[DiffRow]:
        """The differing rows; `while_writing`: the process writes the state meanwhile (a
        push), so the warehouse must not hold a read open (Warehouse.stream_detached)."""
        raise NotImplementedError

    def kind_counts(self, conn: Connection, q: DiffQuery, stats: KeyStats) -> dict[str, int]:
        """How many rows of each DiffKind, without bringing the rows back when possible."""
        counts: dict[str, int] = {}
        for d in self.rows(conn, q, stats):
            counts[d.kind] = counts.get(d.kind, 0) + 1
        return counts


def _row(q: DiffQuery, values: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(q.columns, values, strict=False))


class SqlDiffer(Differ):
    """The diff in the warehouse (state lives there too), in one pass over the model.

    `key_stats` runs the classifying FULL OUTER JOIN once, keeping only the keys that differ
    in a temporary table (`rows` and `kind_counts` read it), and proves the keys unique from
    counts instead of a second GROUP BY pass over the model (see `key_stats`).
    Rows come unordered, except on the rare duplicate-key path, where the rows of one key
    must be adjacent to be reported as one rejection.
    """

    def _delivered(self, columns: str) -> str:
        if self.state.initialised:
            return f"SELECT {columns} FROM {self.state.relation('delivered')} WHERE sync_name = :sync"
        # nothing delivered yet, and a dry run must not create the table
        nulls = ", ".join(f"{self.wh.null_text} AS {c.strip()}" for c in columns.split(","))
        return f"SELECT {nulls} WHERE 1 = 0"

    _KIND = """CASE
    WHEN m.__hash IS NULL THEN 'removed'
    WHEN m.__key IS NULL THEN 'null_key'
    WHEN m.__n > 1 THEN 'duplicate_key'
    WHEN m.__sn IS NOT NULL AND (s.row_key IS NULL OR m.__hash <> s.row_hash) THEN 'shared_identity'
    WHEN s.row_key IS NULL THEN 'added'
    WHEN m.__hash <> s.row_hash THEN 'changed'
    ELSE 'unchanged' END"""

    def differing(self, q: DiffQuery) -> str:
        """The temporary table of the keys that differ (kind, key, model hash). The '-' keeps
        its name apart from every model's (names are identifiers, which have none)."""
        return self.wh.relation(f"diff-{q.sync}", temp=True)

    def key_stats(self, conn: Connection, q: DiffQuery, mapped: Iterator[tuple[str, str]] | None = None) -> KeyStats:
        """Classify every key (one join, kept in `differing`), then prove the keys unique.

        Each state key is unique, so each model row with a key joins one state row or none:
        the model rows that matched (all non-NULL-key rows but the added ones) number exactly
        the state keys that matched (the state's rows but the removed ones) unless a matched
        key repeats; repeats among added keys are found by grouping the added keys only.
        Either sign sends the sync down the exact duplicate path; a first load (everything
        added) pays for a full GROUP BY there, an incremental plan does not.
        """
        wh = self.wh
        params = {"sync": q.sync}
        key = wh.key_expr(q.key, "src")
        shared = self.find_shared(conn, q, mapped)
        total, with_key = wh.execute(conn, f"SELECT COUNT(*), COUNT(k) FROM (SELECT {key} AS k FROM ({q.model_sql}) AS src) AS m").one()
        delivered = wh.execute(conn, f"SELECT COUNT(*) FROM ({self._delivered('row_key')}) AS s", params).scalar()
        # the sync's name inlined (CREATE TABLE AS takes no bound parameters on Postgres); it
        # is an identifier (checked when the project loaded), so it needs no escaping
        assert re.fullmatch(NAME_PATTERN, q.sync), q.sync
        draft = KeyStats(int(total), int(total) - int(with_key), False, shared)
        classify = f"{self._classify(q, draft)}\nSELECT * FROM d WHERE __kind <> 'unchanged'".replace(":sync", f"'{q.sync}'")
        wh.materialise(conn, self.differing(q), classify, temp=True, view=False)
        kinds = self._counts(conn, q)
        # rows of a shared record are counted like added ones: matched or not, they are not
        # compared with a state row below (a shared row that matched one is found by key too)
        matched_rows = int(with_key) - kinds.get("added", 0) - self._unmatched_shared(conn, q, kinds)
        matched_keys = int(delivered or 0) - kinds.get("removed", 0)
        duplicates = (
            matched_rows != matched_keys
            or wh.execute(
                conn,
                f"SELECT COUNT(*) FROM (SELECT __k FROM {self.differing(q)} WHERE __kind IN ('added', 'shared_identity') "
                f"GROUP BY __k HAVING COUNT(*) > 1) AS r",
            ).scalar()
            != 0
        )
        return KeyStats(int(total), int(total) - int(with_key), duplicates, shared)

    def _unmatched_shared(self, conn: Connection, q: DiffQuery, kinds: dict[str, int]) -> int:
        """Shared rows with no delivered row (they count as added for the key-uniqueness proof)."""
        if not kinds.get("shared_identity"):
            return 0
        return int(
            self.wh.execute(
                conn,
                f"SELECT COUNT(*) FROM {self.differing(q)} AS d WHERE d.__kind = 'shared_identity' "
                f"AND NOT EXISTS (SELECT 1 FROM ({self._delivered('row_key')}) AS s WHERE s.row_key = d.__k)",
                {"sync": q.sync},
            ).scalar()
            or 0
        )

    def _counts(self, conn: Connection, q: DiffQuery) -> dict[str, int]:
        return {k: int(n) for k, n in self.wh.execute(conn, f"SELECT __kind, COUNT(*) FROM {self.differing(q)} GROUP BY __kind")}

    def sql(self, q: DiffQuery, stats: KeyStats) -> str:
        wh = self.wh
        order = f"ORDER BY {wh.order_key('__k')} NULLS FIRST"
        if stats.duplicates:
            # Rare path: carry every column through one join so each duplicate row stays one row.
            cols = "".join(f", m.__c{i}" for i in range(len(q.columns)))
            return f"""WITH m AS (
{self.model_cte(q, stats)}
), s AS (
{self._delivered("row_key, row_hash, row_values, dest_id")}
), d AS (
SELECT {self._KIND} AS __kind,
  COALESCE(m.__key, s.row_key) AS __k, m.__hash, s.row_values, s.row_hash, s.dest_id, m.__sn, m.__so{cols}
FROM m FULL OUTER JOIN s ON m.__key = s.row_key
)
SELECT * FROM d WHERE __kind <> 'unchanged' {order}"""
        # Usual path: the keys that differ, classified by key_stats from keys and hashes only
        # (narrow, fast); now the payload columns and delivered values of just those keys.
        key = wh.key_expr(q.key, "src")
        cols = "".join(f", src.{wh.quote(c)}" for c in q.columns)
        shared = (
            ("sh.__n, sh.__other", f"\nLEFT JOIN {self.shared_relation(q)} AS sh ON d.__kind = 'shared_identity' AND sh.__k = d.__k")
            if stats.shared
            else (f"{wh.null_integer}, {wh.null_text}", "")
        )
        return f"""SELECT d.__kind, d.__k, d.__hash, st.row_values, st.row_hash, st.dest_id, {shared[0]}{cols}
FROM {self.differing(q)} AS d
LEFT JOIN ({q.model_sql}) AS src ON d.__kind <> 'removed' AND {key} = d.__k
LEFT JOIN ({self._delivered("row_key, row_hash, row_values, dest_id")}) AS st ON st.row_key = d.__k{shared[1]}"""
        # No ORDER BY: sorting would hold the whole diff in the warehouse's memory (a first
        # load of 10M rows); rows stream as the join produces them.

    def _classify(self, q: DiffQuery, stats: KeyStats) -> str:
        """CTEs up to `d`: every key with its kind, from keys and hashes only (no duplicates)."""
        key = self.wh.key_expr(q.key, "src")
        shared, join = self._shared_join(q, stats, key)
        return f"""WITH m AS (
SELECT {key} AS __key, {self.hash(q)} AS __hash, 1 AS __n, {shared}
FROM ({q.model_sql}) AS src{join}
), s AS (
{self._delivered("row_key, row_hash")}
), d AS (
SELECT {self._KIND} AS __kind, COALESCE(m.__key, s.row_key) AS __k, m.__hash
FROM m FULL OUTER JOIN s ON m.__key = s.row_key
)"""

    def kind_counts(self, conn: Connection, q: DiffQuery, stats: KeyStats) -> dict[str, int]:
        if stats.duplicates:
            return super().kind_counts(conn, q, stats)
        return self._counts(conn, q)

    def rows(self, conn: Connection, q: DiffQuery, stats: KeyStats, batch: int = 5000, *, while_writing: bool = False) -> Iterator[DiffRow]:
        stream = self.wh.stream_detached if while_writing else self.wh.stream
        for chunk in stream(conn, self.sql(q, stats), {"sync": q.sync}, batch=batch):
            for r in chunk:
                kind, key, h, values, stored_hash, dest_id, others, other = r[:8]
                yield DiffRow(
                    kind,
                    key,
                    None if kind == "removed" else _row(q, r[8:]),
                    h,
                    json.loads(values) if values is not None else None,
                    stored_hash,
                    dest_id,
                    (int(others), other) if others is not None else None,
                )


class MergeDiffer(Differ):
    """Sorted merge of the model (from the warehouse) and the delivered rows (state store)."""

    def model_sql(self, q: DiffQuery, stats: KeyStats) -> str:
        return f"SELECT * FROM ({self.model_cte(q, stats)}) AS m ORDER BY {self.wh.order_key('__key')} NULLS FIRST"

    def rows(self, conn: Connection, q: DiffQuery, stats: KeyStats, batch: int = 5000, *, while_writing: bool = False) -> Iterator[DiffRow]:
        model = _flatten(self.wh.stream(conn, self.model_sql(q, stats), batch=batch))
        state = _flatten(self.state.stream_delivered(q.sync, batch))
        m = next(model, None)
        s = next(state, None)
        last: str | None = None
        while m is not None or s is not None:
            if m is not None and m[0] is None:  # null keys sort first
                yield DiffRow("null_key", None, _row(q, m[5:]), m[1], None, None, None)
                m = next(model, None)
                continue
            mk = m[0] if m is not None else None
            if mk is not None:
                if last is not None and mk < last:
                    raise RuntimeError(
                        "the warehouse returned keys out of code-point order; its collation "
                        "differs from the state store's (see README: keys and collations)"
                    )
                last = mk
            sk = s[0] if s is not None else None
            if s is None or (mk is not None and mk < sk):  # only in the model
                assert m is not None
                kind: DiffKind = "duplicate_key" if m[2] > 1 else "shared_identity" if m[3] is not None else "added"
                yield DiffRow(kind, mk, _row(q, m[5:]), m[1], None, None, None, _shared(m))
                m = next(model, None)
            elif m is None or s[0] < m[0]:  # only delivered (s and m narrowed: sk and mk are these keys)
                yield DiffRow("removed", sk, None, None, json.loads(s[2]), s[1], s[3])
                s = next(state, None)
            else:  # in both; duplicates of one key are all rejected against the same state row
                if m[2] > 1:
                    kind = "duplicate_key"
                elif m[1] != s[1]:
                    kind = "shared_identity" if m[3] is not None else "changed"
                else:
                    m = next(model, None)
                    if m is None or m[0] != sk:
                        s = next(state, None)
                    continue
                yield DiffRow(kind, mk, _row(q, m[5:]), m[1], json.loads(s[2]), s[1], s[3], _shared(m))
                m = next(model, None)
                if m is None or m[0] != sk:
                    s = next(state, None)


def _shared(m: Sequence[Any]) -> tuple[int, str] | None:
    return (int(m[3]), m[4]) if m[3] is not None else None


def _literal(text: str) -> str:
    """A SQL string literal (rows mapped in Python, put back in SQL: keys and identities)."""
    return "'" + text.replace("'", "''") + "'"


def _flatten(chunks: Iterator[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    for chunk in chunks:
        yield from chunk


def differ_for(warehouse: Warehouse, state: StateStore) -> Differ:
    # the same database: the state's own engine on the warehouse's URL (Postgres) counts too
    same_db = state.engine is warehouse.engine or state.engine.url == warehouse.engine.url
    return SqlDiffer(warehouse, state) if same_db else MergeDiffer(warehouse, state)
