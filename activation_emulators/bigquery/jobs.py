"""Query jobs: run a query configuration on DuckDB and answer as BigQuery's job resources,
jobs.query responses and getQueryResults pages.

Jobs run to completion inside the request that creates them (jobs.insert or jobs.query), so
every job the API returns is DONE; `timeoutMs` has nothing to wait for. A script (several
statements) returns the rows of its last statement when that is a SELECT; its statementType is
SCRIPT. ``totalBytesProcessed`` is an estimate (see `Database.bytes_read`), billed bytes are
rounded up to the MB with BigQuery's on-demand minimum of 10 MB for a query that reads data.
"""

from __future__ import annotations

import base64
import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb

from .database import Cursor, Database, Session, relation
from .errors import LOCATION, BigQueryError, duplicate, invalid, invalid_query, not_found
from .translate import Statement, Translator
from .typemap import encode_row, field_for, param_sql

MB = 1024 * 1024
MIN_BILLED = 10 * MB
DEFAULT_PAGE_ROWS = 100_000
DEFAULT_PAGE_BYTES = 10 * MB  # BigQuery's default page: as many rows as fit in about 10 MB
_ABORT_ARG = re.compile(r"ABORT_SESSION\s*\(\s*['\"]([^'\"]+)['\"]", re.IGNORECASE)


@dataclass
class Outcome:
    """What a query did: its rows (SELECT) or its effect (DML, DDL)."""

    statement_type: str
    fields: list[dict[str, Any]] | None = None
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    bytes_processed: int = 0
    dml_affected: int | None = None
    dml_stats: dict[str, str] | None = None
    ddl_operation: str | None = None
    ddl_target: dict[str, Any] | None = None  # {"ddlTargetTable": ...} or {"ddlTargetDataset": ...}
    referenced: list[dict[str, str]] = field(default_factory=list)

    @property
    def bytes_billed(self) -> int:
        if self.bytes_processed <= 0:
            return 0
        return max(MIN_BILLED, math.ceil(self.bytes_processed / MB) * MB)


@dataclass
class Job:
    project: str
    job_id: str | None  # None for a dry run (BigQuery keeps no job for it)
    configuration: dict[str, Any]
    created: int
    ended: int = 0
    outcome: Outcome | None = None
    error: BigQueryError | None = None
    session_id: str | None = None

    @property
    def reference(self) -> dict[str, str]:
        ref = {"projectId": self.project, "location": LOCATION}
        return {**ref, "jobId": self.job_id} if self.job_id else ref

    def resource(self) -> dict[str, Any]:
        """The Job resource (jobs.insert, jobs.get, jobs.cancel)."""
        status: dict[str, Any] = {"state": "DONE"}
        if self.error is not None:
            status |= {"errorResult": self.error.error_proto(), "errors": [self.error.error_proto()]}
        times = {"creationTime": str(self.created), "startTime": str(self.created), "endTime": str(self.ended)}
        stats: dict[str, Any] = dict(times)
        if self.outcome is not None:
            out = self.outcome
            query: dict[str, Any] = {"totalBytesProcessed": str(out.bytes_processed), "totalBytesBilled": str(out.bytes_billed)}
            query |= {"cacheHit": False, "billingTier": 1, "statementType": out.statement_type, "totalSlotMs": "0"}
            if self.job_id is None:
                query["estimatedBytesProcessed"] = str(out.bytes_processed)
            if out.fields is not None:
                query["schema"] = {"fields": out.fields}
            if out.dml_affected is not None:
                query["numDmlAffectedRows"] = str(out.dml_affected)
            if out.dml_stats:
                query["dmlStats"] = out.dml_stats
            if out.ddl_operation:
                query["ddlOperationPerformed"] = out.ddl_operation
            query |= out.ddl_target or {}
            if out.referenced:
                query["referencedTables"] = out.referenced
            stats |= {"totalBytesProcessed": str(out.bytes_processed), "query": query}
        if self.session_id:
            stats["sessionInfo"] = {"sessionId": self.session_id}
        job_ref = self.reference
        resource = {"kind": "bigquery#job", "etag": f'"{self.created}"', "jobReference": job_ref, "status": status}
        resource |= {"configuration": self.configuration, "statistics": stats, "user_email": "emulator@bigquery.local"}
        if self.job_id:
            resource["id"] = f"{self.project}:{LOCATION}.{self.job_id}"
        return resource

    def results(self, start: int, max_results: int | None, ts_format: str, kind: str) -> dict[str, Any]:
        """A jobs.query / getQueryResults body with the page of rows from `start`."""
        if self.error is not None:
            raise self.error  # both answer a failed query with the HTTP error
        out = self.outcome
        assert out is not None
        body: dict[str, Any] = {"kind": kind, "jobReference": self.reference, "jobComplete": True, "cacheHit": False}
        body |= {"totalBytesProcessed": str(out.bytes_processed), "totalBytesBilled": str(out.bytes_billed)}
        body |= {"creationTime": str(self.created), "startTime": str(self.created), "endTime": str(self.ended)}
        if self.session_id:
            body["sessionInfo"] = {"sessionId": self.session_id}
        if out.dml_affected is not None:
            body["numDmlAffectedRows"] = str(out.dml_affected)
        if out.dml_stats:
            body["dmlStats"] = out.dml_stats
        if out.fields is None or self.job_id is None:
            if out.fields is not None:
                body["schema"] = {"fields": out.fields}
            return body  # DDL, DML or dry run: no totalRows, the client shows no rows
        body["schema"] = {"fields": out.fields}
        body["totalRows"] = str(len(out.rows))
        rows, end = page(out.rows, out.fields, start, max_results, ts_format)
        if rows:
            body["rows"] = rows
        if end < len(out.rows) and rows:
            body["pageToken"] = page_token(end)
        return body


def page(
    rows: list[tuple[Any, ...]], fields: list[dict[str, Any]], start: int, max_results: int | None, ts_format: str
) -> tuple[list[dict[str, Any]], int]:
    """Encoded rows from `start`: at most `max_results`, and no more than about 10 MB."""
    limit = DEFAULT_PAGE_ROWS if max_results is None else max_results
    out: list[dict[str, Any]] = []
    size, i = 0, start
    while i < len(rows) and len(out) < limit and size < DEFAULT_PAGE_BYTES:
        encoded = encode_row(rows[i], fields, ts_format)
        size += sum(len(str(c["v"])) + 8 for c in encoded["f"])
        out.append(encoded)
        i += 1
    return out, i


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"row:{offset}".encode()).decode()


def token_offset(token: str) -> int:
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "row":
            return int(offset)
    except ValueError:
        pass
    raise invalid(f"Invalid page token: {token}")


class QueryRunner:
    """Runs query configurations (`configuration.query` of a job, or a QueryRequest)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def run(self, config: dict[str, Any], dry_run: bool) -> tuple[Outcome, str | None]:
        """(outcome, session id) of a query; BigQueryError when it fails."""
        project = self.db.project
        if config.get("useLegacySql") is True:
            raise invalid_query("The BigQuery emulator runs GoogleSQL only: set useLegacySql to false (legacy SQL is not supported)")
        query = config.get("query")
        if not isinstance(query, str) or not query.strip():
            raise invalid("Missing query text (configuration.query.query)")
        default = config.get("defaultDataset") or {}
        if default.get("projectId") not in (None, project):
            raise not_found(f"Project {default['projectId']} (the BigQuery emulator serves project {project} only)")
        named, positional = _parameters(config.get("queryParameters") or [])
        translator = Translator(project, default.get("datasetId"), named, positional, self.db.info_schema_sql)
        statements = translator.statements(query)
        props = {p.get("key"): p.get("value") for p in config.get("connectionProperties") or []}
        session: Session | None = None
        if config.get("createSession"):
            session = self.db.create_session()
        elif props.get("session_id"):
            session = self.db.session(str(props["session_id"]))
        with self.db.connection(session) as cur:
            _search_path(cur, default.get("datasetId"))
            if dry_run:
                return self._dry_run(cur, statements, default.get("datasetId")), session.id if session else None
            outcome = self._script(cur, statements, session, config, default.get("datasetId"))
        return outcome, session.id if session else None

    def _dry_run(self, cur: Cursor, statements: list[Statement], default: str | None) -> Outcome:
        out = Outcome("SCRIPT" if len(statements) > 1 else statements[0].kind)
        for st in statements:
            try:
                out.bytes_processed += self.db.bytes_read(cur, st.reads, st.columns)
                if st.is_query:
                    rel = cur.sql(st.sql)  # bound (names and types known), not run
                    out.fields = [field_for(n, t) for n, t in zip(rel.columns, rel.types, strict=True)]
                elif st.kind in ("INSERT", "UPDATE", "DELETE", "MERGE"):
                    cur.execute(f"EXPLAIN {st.sql}")  # binds (checks names and types), runs nothing
            except duckdb.Error as e:
                raise self.db.error(e, st, default) from e
        out.referenced = _referenced(self.db.project, statements, default)
        return out

    def _script(
        self, cur: Cursor, statements: list[Statement], session: Session | None, config: dict[str, Any], default: str | None
    ) -> Outcome:
        script = len(statements) > 1
        total = Outcome("SCRIPT" if script else statements[0].kind)
        limit = int(config["maximumBytesBilled"]) if config.get("maximumBytesBilled") else None
        state = session or Session("", cur)  # a request outside a session: its own transaction flag
        try:
            for st in statements:
                if st.kind == "CALL":
                    self._abort(st.text, session)
                    continue
                read = self.db.bytes_read(cur, st.reads, st.columns)
                total.bytes_processed += read
                if limit is not None and total.bytes_billed > limit:
                    raise BigQueryError(
                        400,
                        "bytesBilledLimitExceeded",
                        f"Query exceeded limit for bytes billed: {limit}. {total.bytes_billed} or higher required.",
                    )
                out = self._statement(cur, st, state, config if not script else {}, default)
                if not script:
                    out.bytes_processed = total.bytes_processed
                    total = out
                elif st.is_query or st is statements[-1]:
                    total.fields, total.rows = out.fields, out.rows
        except duckdb.Error as e:
            self._rollback(cur, state)
            raise self.db.error(e, st, default) from e
        except BigQueryError:
            self._rollback(cur, state)
            raise
        if session is None and state.in_transaction:
            self._rollback(cur, state)
            raise invalid_query("Transaction was not committed or rolled back at the end of the script (BigQuery emulator)")
        total.referenced = _referenced(self.db.project, statements, default)
        return total

    def _statement(self, cur: Cursor, st: Statement, state: Session, config: dict[str, Any], default: str | None) -> Outcome:
        out = Outcome(st.kind)
        if state.aborted is not None and st.kind != "BEGIN_TRANSACTION":
            message, state.aborted = state.aborted, None
            raise invalid_query(message)
        if st.kind in ("INSERT", "UPDATE", "DELETE", "MERGE") and st.target is not None:
            table = (st.target[0] or default, st.target[1])
            self.db.abort_idle_writers(table, state)
            if state.in_transaction:
                state.written.add(table)
        if st.kind == "BEGIN_TRANSACTION" and state.in_transaction:
            raise invalid_query("Transaction is already in progress (BEGIN TRANSACTION inside a transaction)")
        if st.kind in ("COMMIT_TRANSACTION", "ROLLBACK_TRANSACTION") and not state.in_transaction:
            raise invalid_query(f"{st.kind.split('_')[0]} TRANSACTION without an active transaction (no BEGIN TRANSACTION before it)")
        existed = self._exists(cur, st) if st.kind.startswith(("CREATE", "DROP")) else None
        destination = config.get("destinationTable") if st.is_query else None
        if destination:
            return self._into_destination(cur, st, destination, config)
        cur.execute(st.sql)
        if st.kind == "BEGIN_TRANSACTION":
            state.in_transaction = True
        elif st.kind in ("COMMIT_TRANSACTION", "ROLLBACK_TRANSACTION"):
            state.in_transaction = False
            state.written.clear()
        elif st.is_query:
            out.fields = [field_for(name, t) for name, t, *_ in cur.description or []]
            out.rows = cur.fetchall()
        elif st.kind in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            row = cur.fetchone()
            out.dml_affected = int(row[0]) if row else 0
            stat = {"INSERT": "insertedRowCount", "UPDATE": "updatedRowCount", "DELETE": "deletedRowCount"}.get(st.kind)
            out.dml_stats = {stat: str(out.dml_affected)} if stat else None  # DuckDB counts a MERGE's rows as one number
        elif existed is not None:
            out.ddl_operation, out.ddl_target = self._ddl_result(st, existed, default)
        return out

    def _into_destination(self, cur: Cursor, st: Statement, dest: dict[str, Any], config: dict[str, Any]) -> Outcome:
        """A SELECT with destinationTable: written as writeDisposition/createDisposition say."""
        if dest.get("projectId") not in (None, self.db.project):
            raise not_found(f"Project {dest['projectId']} (the BigQuery emulator serves project {self.db.project} only)")
        dataset, table = str(dest.get("datasetId")), str(dest.get("tableId"))
        name, exists = relation(dataset, table), self.db.table_kind(dataset, table) is not None
        cur.execute(f"CREATE OR REPLACE TEMP TABLE _emulator_result AS {st.sql}")
        write = config.get("writeDisposition") or "WRITE_EMPTY"
        if not exists:
            if config.get("createDisposition") == "CREATE_NEVER":
                raise not_found(f"Table {self.db.project}:{dataset}.{table}")
            cur.execute(f"CREATE TABLE {name} AS SELECT * FROM _emulator_result")
        elif write == "WRITE_TRUNCATE":
            cur.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _emulator_result")
        else:
            if write == "WRITE_EMPTY" and cur.execute(f"SELECT COUNT(*) FROM {name}").fetchone() != (0,):
                raise duplicate(f"Table {self.db.project}:{dataset}.{table}")
            cur.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _emulator_result")
        result = cur.execute("SELECT * FROM _emulator_result")
        out = Outcome("SELECT", [field_for(n, t) for n, t, *_ in result.description or []], result.fetchall())
        cur.execute("DROP TABLE _emulator_result")
        return out

    def _exists(self, cur: Cursor, st: Statement) -> bool | None:
        if st.target is None or st.temporary:
            return None
        dataset, table = st.target
        if table is None:
            return self.db.has_dataset(dataset or "")
        return dataset is not None and self.db.table_kind(dataset, table) is not None

    def _ddl_result(self, st: Statement, existed: bool, default: str | None) -> tuple[str, dict[str, Any]]:
        if st.kind.startswith("CREATE"):
            operation = "REPLACE" if existed and st.replace else "SKIP" if existed else "CREATE"
        else:
            operation = "DROP" if existed else "SKIP"
        dataset, table = st.target or (None, None)
        dataset = dataset or default or ""
        if table is None:
            if operation == "DROP":
                self.db.forget(dataset)
            return operation, {"ddlTargetDataset": {"projectId": self.db.project, "datasetId": dataset}}
        if operation in ("DROP", "REPLACE"):
            self.db.forget(dataset, table)
        return operation, {"ddlTargetTable": {"projectId": self.db.project, "datasetId": dataset, "tableId": table}}

    def _abort(self, text: str, session: Session | None) -> None:
        match = _ABORT_ARG.search(text)
        target = match.group(1) if match else (session.id if session else None)
        if target is None:
            raise invalid_query("CALL BQ.ABORT_SESSION() outside a session needs the session id as its argument")
        if session is not None and target == session.id and session.in_transaction:
            session.cursor.execute("ROLLBACK")
            session.in_transaction = False
        self.db.abort_session(target)

    def _rollback(self, cur: Cursor, state: Session) -> None:
        """A failed statement ends the transaction it was in, as in BigQuery."""
        if state.in_transaction:
            with contextlib.suppress(duckdb.Error):  # DuckDB may have ended it already
                cur.execute("ROLLBACK")
            state.in_transaction = False
            state.written.clear()


def _search_path(cur: Cursor, dataset: str | None) -> None:
    """Unqualified names resolve in the default dataset (after the session's TEMP tables)."""
    try:
        cur.execute(f"SET search_path = '{(dataset or 'main').replace(chr(39), '')}'")
    except duckdb.Error:
        cur.execute("SET search_path = 'main'")  # a missing default dataset: names fail as not found


def _parameters(params: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    named, positional = {}, []
    for p in params:
        sql = param_sql(p.get("parameterType") or {}, p.get("parameterValue"))
        if p.get("name"):
            named[str(p["name"])] = sql
        else:
            positional.append(sql)
    return named, positional


def _referenced(project: str, statements: list[Statement], default: str | None) -> list[dict[str, str]]:
    seen = dict.fromkeys((ds or default, t) for st in statements for ds, t in st.reads)
    return [{"projectId": project, "datasetId": ds, "tableId": t} for ds, t in seen if ds]
