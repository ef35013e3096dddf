"""Google BigQuery through Google's client (google-cloud-bigquery) and its SQLAlchemy
dialect (sqlalchemy-bigquery).

What differs from the other engines, and why:
- Sessions. BigQuery has no connection state: each statement is a job. Temporary tables
  (a plan's models, the diff) and multi-statement transactions exist only inside a
  *session*, so every pooled connection opens one (a job with `create_session`) and runs
  every later job in it (`connection_properties: session_id`). Temporary tables are named
  unqualified (BigQuery finds them in the session); BigQuery has no temporary views, so a dry run's models are temporary
  tables too. Nothing a plan makes is visible outside its session, and a session ends with
  its connection (BigQuery also expires idle ones after 24 hours).
- Transactions. BigQuery's DB-API commits every statement on its own. The state store needs
  a batch's writes to land together, so the first DML statement of a SQLAlchemy
  transaction opens a BigQuery one (`BEGIN TRANSACTION`) in the session, and the
  transaction's commit or rollback ends it. BigQuery refuses DDL on permanent tables inside
  a transaction: an open one is committed before a DDL statement (only migrations mix them).
- Names: a dataset is the schema (`schema`, and `state.schema` for the state); quoting
  with backticks. Keys are cast to STRING; row hashes are
  `TO_HEX(MD5(salt || TO_JSON_STRING(STRUCT(...))))`, NULL-safe and type-aware.
- Cost: every job's bytes processed are added up (`cost()`, shown by plan and run), and
  `maximum_bytes_billed` is set on every job, so a statement that would bill more fails
  before it runs, with BigQuery's own message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activation.project.secrets import resolve_env
from activation.warehouse.base import Warehouse, WarehouseCost, WarehouseError
from activation.warehouse.spec import AnyWarehouseSpec, BigQueryWarehouseSpec

log = logging.getLogger(__name__)

#: statements that change rows: the first of a SQLAlchemy transaction opens a BigQuery one
_DML = ("INSERT", "UPDATE", "DELETE", "MERGE")
_DDL = ("CREATE", "DROP", "ALTER", "TRUNCATE")


class BytesMeter:
    """What this process's jobs processed, added up (thread-safe). (Billed bytes are not
    in what jobs.query answers the client; BigQuery bills at least 10 MB a query that reads.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed = 0
        self.jobs = 0

    def add(self, processed: int | None) -> None:
        with self._lock:
            self.processed += processed or 0
            self.jobs += 1


class BigQueryWarehouse(Warehouse):
    """Opened through the registry, which first checks google-cloud-bigquery and
    sqlalchemy-bigquery are installed."""

    spec: BigQueryWarehouseSpec
    dialect = "bigquery"
    temp_schema = None  # a session's temporary tables are named unqualified
    text_type = "STRING"
    integer_type = "INT64"

    def __init__(self, spec: AnyWarehouseSpec, root: Path, *, read_only: bool = False) -> None:
        self.bytes = BytesMeter()
        super().__init__(spec, root, read_only=read_only)

    # -- connection -----------------------------------------------------------------

    def _create_engine(self) -> Engine:
        s = self.spec
        # `user_supplied_client`: the dialect makes no client of its own (it would look for
        # credentials at once); each pooled connection gets ours, in its own session
        engine = sa.create_engine(f"bigquery://{resolve_env(s.project)}?user_supplied_client=True", creator=self._dbapi_connection)
        sa.event.listen(engine, "before_cursor_execute", _open_transaction_for_dml)
        sa.event.listen(engine, "commit", lambda conn: _end_transaction(conn, "COMMIT"))
        sa.event.listen(engine, "rollback", lambda conn: _end_transaction(conn, "ROLLBACK"))
        return engine

    def _client(self) -> Any:
        from google.api_core.client_options import ClientOptions
        from google.cloud import bigquery

        s = self.spec
        project = resolve_env(s.project)
        options = ClientOptions(api_endpoint=resolve_env(s.api_endpoint)) if s.api_endpoint else None
        credentials: Any = None
        if s.anonymous:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        elif s.credentials_file:
            from google.oauth2 import service_account

            file = Path(resolve_env(s.credentials_file))
            file = file if file.is_absolute() else self.root / file
            try:
                credentials = service_account.Credentials.from_service_account_file(
                    str(file), scopes=["https://www.googleapis.com/auth/cloud-platform"]
                )
            except (OSError, ValueError) as e:
                raise WarehouseError(f"cannot read the service-account key {file}: {e}") from e
        # else: application default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server)
        meter = self.bytes

        class MeteredClient(bigquery.Client):
            """Adds up what each job processed (the DB-API keeps no job to ask afterwards)."""

            def query_and_wait(self, *args: Any, **kwargs: Any) -> Any:
                rows = super().query_and_wait(*args, **kwargs)
                meter.add(rows.total_bytes_processed)
                return rows

        return MeteredClient(
            project=resolve_env(s.billing_project) if s.billing_project else project,
            credentials=credentials,
            location=s.location,
            client_options=options,
        )

    def _dbapi_connection(self) -> Any:
        """A DB-API connection whose every job runs in a BigQuery session of its own."""
        from google.cloud.bigquery import ConnectionProperty, QueryJobConfig, dbapi

        client = self._client()
        labels = {"tool": "activation"}
        try:
            job = client.query("SELECT 1", job_config=QueryJobConfig(create_session=True, labels=labels))
            job.result()
        except Exception as e:  # auth, network, a missing project: said once, with the client's words
            raise WarehouseError(f"cannot open a BigQuery session in project {client.project}: {e}") from e
        session = job.session_info.session_id
        config = QueryJobConfig(connection_properties=[ConnectionProperty("session_id", session)], labels=labels)
        if self.spec.maximum_bytes_billed is not None:  # (set to None, the client sends the string "None")
            config.maximum_bytes_billed = self.spec.maximum_bytes_billed
        client.default_query_job_config = config
        return dbapi.connect(client=client, prefer_bqstorage_client=False)

    def cost(self) -> WarehouseCost:
        m = self.bytes
        return WarehouseCost(jobs=m.jobs, bytes_processed=m.processed)

    def describe(self) -> str:
        return f"bigquery project {self.spec.project}" + (f" at {self.spec.api_endpoint}" if self.spec.api_endpoint else "")

    # -- SQL building blocks ---------------------------------------------------------

    def quote(self, name: str) -> str:
        return f"`{name.replace('`', '')}`"  # backticks: BigQuery's quoting, whatever the name

    def hash_expr(self, columns: Sequence[str], alias: str, salt: str) -> str:
        fields = ", ".join(f"{alias}.{self.quote(c)} AS {self.quote(c)}" for c in columns)
        return f"TO_HEX(MD5(CONCAT('{salt}', TO_JSON_STRING(STRUCT({fields})))))"

    # -- statements -------------------------------------------------------------------

    def ensure_schema(self, conn: Connection, schema: str) -> None:
        location = f" OPTIONS (location = '{self.spec.location}')" if self.spec.location else ""
        self.execute(conn, f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}{location}")

    def materialise(self, conn: Connection, relation: str, sql: str, *, temp: bool, view: bool) -> None:
        if temp:  # BigQuery has no temporary views
            self.execute(conn, f"CREATE OR REPLACE TEMP TABLE {relation} AS\n{sql}")
        else:
            self.execute(conn, f"CREATE OR REPLACE {'VIEW' if view else 'TABLE'} {relation} AS\n{sql}")


def _open_transaction_for_dml(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    info = conn.connection.info
    if verb in _DML and not info.get("bigquery_transaction") and conn.in_transaction():
        cursor.execute("BEGIN TRANSACTION")
        info["bigquery_transaction"] = True
    elif verb in _DDL and info.get("bigquery_transaction"):
        cursor.execute("COMMIT TRANSACTION")  # DDL cannot run inside one (see the module's note)
        info["bigquery_transaction"] = False


def _end_transaction(conn: Connection, how: str) -> None:
    info = conn.connection.info
    if info.pop("bigquery_transaction", False):
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(f"{how} TRANSACTION")
        except Exception:
            if how == "COMMIT":
                raise
            # BigQuery already rolled back a transaction whose statement failed: that
            # statement's error is the one to see
            log.debug("ROLLBACK TRANSACTION failed", exc_info=True)
        finally:
            cur.close()
