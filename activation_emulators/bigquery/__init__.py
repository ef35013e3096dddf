"""A local BigQuery (REST API v2) that runs GoogleSQL on DuckDB, translated by sqlglot.

google-cloud-bigquery reaches it with anonymous credentials and the emulator's endpoint::

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    with BigQueryEmulator(project="demo") as emu:               # path="w.duckdb" to keep the data
        client = bigquery.Client(project="demo", credentials=AnonymousCredentials(),
                                 client_options={"api_endpoint": emu.url})

(The client also honours ``BIGQUERY_EMULATOR_HOST=http://127.0.0.1:PORT`` as its endpoint, but
still asks google.auth for credentials unless given some.) sqlalchemy-bigquery builds its own
Client from ADC or a service-account key, neither of which works offline, so the engine gets a
pre-built Client: ``user_supplied_client=True`` in the URL makes the dialect take
``connect_args["client"]``. The dialect then does not apply the URL's dataset to that Client's
queries, so the Client carries it as its default dataset (for unqualified table names)::

    client = bigquery.Client(project="demo", credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": emu.url},
                             default_query_job_config=bigquery.QueryJobConfig(default_dataset="demo.analytics"))
    engine = sqlalchemy.create_engine("bigquery://demo/analytics?user_supplied_client=True",
                                      connect_args={"client": client, "prefer_bqstorage_client": False})

Served (under /bigquery/v2/projects/{project}): jobs.insert / get / cancel for query jobs,
jobs.query, jobs.getQueryResults (maxResults, pageToken, startIndex, formatOptions); datasets
list / get / insert / patch / delete (deleteContents); tables list / get / insert (schema or view)
/ delete; tabledata.list and insertAll (per-row insertErrors, skipInvalidRows,
ignoreUnknownValues, insertId de-duplication); projects.list.

Queries honour useLegacySql (true is refused), defaultDataset, named and positional
parameters (scalars, ARRAY, STRUCT), dryRun (schema and bytes, nothing run), maximumBytesBilled
(``bytesBilledLimitExceeded``), createSession / connectionProperties session_id (a session is
its own DuckDB connection: TEMP tables and an open transaction live in it; ``CALL
BQ.ABORT_SESSION()`` ends it), destinationTable with write/createDisposition, scripts of several
statements and BEGIN / COMMIT / ROLLBACK TRANSACTION. Statements: SELECT, INSERT, UPDATE,
DELETE, MERGE, TRUNCATE, CREATE [OR REPLACE] [TEMP] TABLE [AS SELECT], CREATE VIEW, CREATE /
DROP SCHEMA, DROP TABLE / VIEW, ``dataset.INFORMATION_SCHEMA.TABLES|COLUMNS``, ``@@project_id``.
Errors come in BigQuery's shape (`errors`): a missing table is 404 ``notFound`` ("Not found:
Table p:d.t was not found in location US"); what sqlglot cannot parse or translate, and what
DuckDB refuses, is 400 ``invalidQuery`` naming the emulator and the statement.

Differences from BigQuery: one project, one location (US); jobs run inside the request that
creates them, so every job answered is DONE (timeoutMs waits for nothing, cancel finds it
finished). ``totalBytesProcessed`` is an estimate from BigQuery's documented data sizes over the
columns a statement names (a name anywhere in the statement counts), billed bytes round up to
the MB with the 10 MB minimum per query that reads data; caching never happens. DuckDB's
semantics show through where sqlglot keeps them: ``x / 0`` is Infinity rather than an error,
``DATE + INTERVAL`` is a DATETIME, a NUMERIC product whose scale passes 9 is typed BIGNUMERIC
(BIGNUMERIC itself is DECIMAL(38,18)), GEOGRAPHY is text. No legacy SQL, DECLARE/SET/IF
scripting, procedures, UDFs in JavaScript, load/extract/copy jobs, the Storage Read API,
partition/cluster/OPTIONS (accepted, ignored), row-level security or IAM. A script's rows are
those of its last statement when that is a SELECT (BigQuery's exact rule is not verified here).
Concurrency is BigQuery's optimistic kind where it matters most: a write rolls back another
session's open transaction on the same table when that session is idle (a client killed
mid-transaction holds nobody back), and that session's next statement is told "Transaction is
aborted due to concurrent update against table …"; two writes running at the same instant can
still fail with DuckDB's conflict (answered as invalidQuery). A bug in the emulator is answered as 400 ``invalid`` ("Internal error in the
BigQuery emulator"), not 5xx, so the client does not retry it for minutes.

Helpers: ``execute(sql)`` (DuckDB SQL, to seed data), ``tables(dataset)``, ``request_log``,
``request_count``, ``db`` (the `Database`).

    python -m activation_emulators.bigquery --port 9050 --project demo [--path w.duckdb] [--dataset analytics]
"""

from activation_emulators.bigquery.server import BigQueryEmulator, LoggedRequest

__all__ = ["BigQueryEmulator", "LoggedRequest"]
