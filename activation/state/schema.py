"""The state store's tables and their versioned migrations.

Each migration is a numbered step applied once, in order, inside a transaction, and
recorded in `schema_version`; a store newer than this code is refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

Migration = Callable[[Connection, sa.MetaData], None]

#: Text of any length; on Redshift, whose TEXT is VARCHAR(256), the longest VARCHAR there is.
LONG_TEXT = sa.Text().with_variant(sa.VARCHAR(65535), "redshift")


def has_table(conn: Connection, name: str, schema: str | None) -> bool:
    """Whether `schema`.`name` exists. sqlalchemy-redshift reflects through Redshift's own
    catalog views (svv_*, pg_table_def); information_schema answers alike on Redshift and
    on the Postgres that stands in for it in tests."""
    if conn.dialect.name == "redshift":
        found = conn.execute(
            sa.text("SELECT 1 FROM information_schema.tables WHERE table_schema = :schema AND table_name = :name"),
            {"schema": schema or "public", "name": name},
        ).first()
        return found is not None
    return sa.inspect(conn).has_table(name, schema=schema)


def create_table(conn: Connection, table: sa.Table) -> None:
    """CREATE `table` unless it exists."""
    if not has_table(conn, table.name, table.schema):
        table.create(conn, checkfirst=False)


def tables(schema: str | None, *, indexes: bool = True, row_keys: bool = True) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """`indexes=False` for Snowflake, whose standard tables have none (micro-partitions
    instead), and for DuckDB, with `row_keys=False` (no primary key on `delivered`): DuckDB
    keeps an ART index whole in memory and cannot spill it, so a key index on a state that
    grows with the model made a first load's memory grow with it (~360 MB per million rows
    on its own). Without it the tables are appended to and scanned, which DuckDB does fast
    (a batch's delete-and-insert of 100 changed rows in a 1M-row table took 32 ms, against
    44 ms with the key). Keys stay unique by construction: a row is inserted as new only
    when the diff found it absent, and every other insert deletes its key first."""
    md = sa.MetaData(schema=schema)
    t = {
        "schema_version": sa.Table(
            "schema_version",
            md,
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("applied_at", sa.DateTime, nullable=False),
        ),
        # What each sync last delivered: enough to diff per field and to remove later.
        "delivered": sa.Table(
            "delivered",
            md,
            sa.Column("sync_name", sa.String(200), primary_key=row_keys, nullable=False),
            sa.Column("row_key", sa.String(2000), primary_key=row_keys, nullable=False),
            sa.Column("row_hash", sa.String(64), nullable=False),
            sa.Column("row_values", LONG_TEXT, nullable=False),  # JSON of the mapped fields sent
            sa.Column("dest_id", sa.String(200)),
            sa.Column("delivered_at", sa.DateTime, nullable=False),
        ),
        "runs": sa.Table(
            "runs",
            md,
            sa.Column("run_id", sa.String(40), primary_key=True),
            sa.Column("sync_name", sa.String(200), nullable=False, index=indexes),
            sa.Column("destination", sa.String(200), nullable=False),
            sa.Column("started_at", sa.DateTime, nullable=False),
            sa.Column("finished_at", sa.DateTime),
            sa.Column("status", sa.String(20), nullable=False),  # running|success|partial|failed|aborted
            sa.Column("added", sa.Integer, nullable=False, default=0),
            sa.Column("changed", sa.Integer, nullable=False, default=0),
            sa.Column("removed", sa.Integer, nullable=False, default=0),
            sa.Column("unchanged", sa.Integer, nullable=False, default=0),
            sa.Column("rejected", sa.Integer, nullable=False, default=0),
            sa.Column("sent", sa.Integer, nullable=False, default=0),
            sa.Column("failed", sa.Integer, nullable=False, default=0),
            sa.Column("error", LONG_TEXT),
            sa.Column("details", LONG_TEXT),  # JSON: the destination's report (calls, platform ids)
        ),
        # Rows a run could not deliver, with the reason; they stay undelivered and are retried.
        "row_errors": sa.Table(
            "row_errors",
            md,
            sa.Column("run_id", sa.String(40), nullable=False, index=indexes),
            sa.Column("sync_name", sa.String(200), nullable=False),
            sa.Column("row_key", sa.String(2000)),
            sa.Column("stage", sa.String(20), nullable=False),  # plan | destination
            sa.Column("reason", LONG_TEXT, nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
        ),
        # Rows handed to a destination whose acknowledgement is not yet recorded. A run that
        # dies leaves them here; the next run treats them as possibly delivered.
        "in_flight": sa.Table(
            "in_flight",
            md,
            sa.Column("sync_name", sa.String(200), primary_key=True),
            sa.Column("row_key", sa.String(2000), primary_key=True),
            sa.Column("row_values", LONG_TEXT, nullable=False),
            sa.Column("run_id", sa.String(40), nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
        ),
        # One row per sync (and per model being refreshed, "model:<id>"): who runs it now and
        # until when. Times are the database's clock, in ms since the epoch, so daemons on
        # hosts with skewed clocks agree on expiry.
        "leases": sa.Table(
            "leases",
            md,
            sa.Column("name", sa.String(250), primary_key=True),
            sa.Column("owner", sa.String(200), nullable=False),  # host/pid of the holder (or last holder)
            sa.Column("token", sa.String(40), nullable=False),  # this acquisition; renew/release must match it
            sa.Column("process", sa.String(300)),  # host|pid namespace|pid|start: lets a process of the same machine see it ended
            sa.Column("acquired_ms", sa.BigInteger, nullable=False),
            sa.Column("expires_ms", sa.BigInteger, nullable=False),  # 0 once released
            sa.Column("done_ms", sa.BigInteger),  # sync: the schedule slot last served; model: when its last refresh began
            sa.Column("failures", sa.Integer, nullable=False, default=0),  # consecutive failed runs
            sa.Column("retry_ms", sa.BigInteger),  # backoff: no scheduled run before this
        ),
        # The identities each delivered (or possibly delivered) row maps to at the destination:
        # what it holds records under (a normalised email, each hashed identifier of an ad
        # member, the row key itself). A record is removed only when no row claims it.
        "claims": sa.Table(
            "claims",
            md,
            sa.Column("sync_name", sa.String(200), nullable=False),
            sa.Column("identity", sa.String(2000), nullable=False),
            sa.Column("row_key", sa.String(2000), nullable=False),
            *(
                [sa.Index("ix_claims_identity", "sync_name", "identity"), sa.Index("ix_claims_row", "sync_name", "row_key")]
                if indexes
                else []
            ),
        ),
        # Identities the destination holds or may hold that a row stopped claiming (it left the
        # model, its identity changed, or it was sent by a run that died or whose answer was
        # lost). The end of each run removes those no row claims (mirror, audience) or forgets
        # them (other modes); an entry goes only once the destination acknowledged it.
        "releases": sa.Table(
            "releases",
            md,
            sa.Column("sync_name", sa.String(200), nullable=False),
            sa.Column("identity", sa.String(2000), nullable=False),
            sa.Column("row_key", sa.String(2000)),  # the row that last held it (for messages)
            sa.Column("dest_id", sa.String(200)),
            sa.Column("row_values", LONG_TEXT, nullable=False),  # JSON: what a remove of it carries
            sa.Column("created_at", sa.DateTime, nullable=False),
            *([sa.Index("ix_releases_identity", "sync_name", "identity")] if indexes else []),
        ),
        # Per sync: the version of the destination's identity rules the claims were computed
        # with (claims of a store written before them, or under other rules, are recomputed).
        "identity_versions": sa.Table(
            "identity_versions",
            md,
            sa.Column("sync_name", sa.String(200), primary_key=True),
            sa.Column("version", sa.String(100), nullable=False),
        ),
        # Per vendor account, the earliest time its next request may go (state/budget.py).
        "budgets": sa.Table(
            "budgets",
            md,
            sa.Column("account", sa.String(200), primary_key=True),
            sa.Column("next_ms", sa.BigInteger, nullable=False),
            # the vendor's daily quota as it last said it (for plan's forecast), and when
            sa.Column("daily_remaining", sa.BigInteger),
            sa.Column("daily_limit", sa.BigInteger),
            sa.Column("daily_seen_ms", sa.BigInteger),
        ),
    }
    return md, t


def _v1(conn: Connection, md: sa.MetaData) -> None:
    for name in ("delivered", "runs", "row_errors"):
        create_table(conn, md.tables[_qualified(md, name)])


def _qualified(md: sa.MetaData, name: str) -> str:
    return f"{md.schema}.{name}" if md.schema else name


def _v2(conn: Connection, md: sa.MetaData) -> None:
    create_table(conn, md.tables[_qualified(md, "in_flight")])


def _v3(conn: Connection, md: sa.MetaData) -> None:
    # Stores made by v1 lack the column; stores made from scratch got it from the v1 table.
    if conn.dialect.name == "redshift":  # (see has_table)
        sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = :schema AND table_name = 'runs'"
        columns = set(conn.execute(sa.text(sql), {"schema": md.schema or "public"}).scalars())
    else:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("runs", schema=md.schema)}
    if "details" not in columns:
        runs = f"{conn.dialect.identifier_preparer.quote(md.schema)}.runs" if md.schema else "runs"
        kind = "VARCHAR(65535)" if conn.dialect.name == "redshift" else "TEXT"
        conn.execute(sa.text(f"ALTER TABLE {runs} ADD COLUMN details {kind}"))


def _v4(conn: Connection, md: sa.MetaData) -> None:
    create_table(conn, md.tables[_qualified(md, "leases")])


def _v5(conn: Connection, md: sa.MetaData) -> None:
    for name in ("claims", "releases", "identity_versions"):
        create_table(conn, md.tables[_qualified(md, name)])


def _v6(conn: Connection, md: sa.MetaData) -> None:
    """DuckDB: the state tables lose their key indexes (see `tables`)."""
    if conn.dialect.name != "duckdb":
        return
    prefix = f"{md.schema}." if md.schema else ""
    for index in ("ix_claims_identity", "ix_claims_row", "ix_releases_identity"):  # those of runs, row_errors stay small
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {prefix}{index}"))
    # a primary key cannot be dropped in DuckDB: the table is rebuilt (from the metadata,
    # which has none on DuckDB) and its rows copied over
    conn.execute(sa.text(f"ALTER TABLE {prefix}delivered RENAME TO delivered_v5"))
    md.tables[_qualified(md, "delivered")].create(conn)
    conn.execute(sa.text(f"INSERT INTO {prefix}delivered SELECT * FROM {prefix}delivered_v5"))
    conn.execute(sa.text(f"DROP TABLE {prefix}delivered_v5"))


def _v7(conn: Connection, md: sa.MetaData) -> None:
    create_table(conn, md.tables[_qualified(md, "budgets")])


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "delivered rows, runs, row errors", _v1),
    (2, "in-flight journal: rows sent but not yet acknowledged", _v2),
    (3, "runs.details: what the destination reported (calls, retries, platform ids)", _v3),
    (4, "leases: one run per sync at a time across daemons; schedule slots and backoff", _v4),
    (5, "identities: what each row claims at the destination, and what is held but released", _v5),
    (6, "DuckDB: state tables without key indexes (memory bounded on first loads)", _v6),
    (7, "budgets: one request schedule per vendor account, shared by every sync and process", _v7),
]
LATEST = MIGRATIONS[-1][0]
