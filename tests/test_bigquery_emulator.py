"""The BigQuery emulator through the real google-cloud-bigquery client and the real
sqlalchemy-bigquery dialect, over HTTP (no mocks)."""

from __future__ import annotations

import datetime
import decimal
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from activation_emulators.bigquery import BigQueryEmulator

PROJECT = "demo"


def make_client(emu: BigQueryEmulator, **kwargs: object) -> bigquery.Client:
    return bigquery.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=emu.url), **kwargs
    )


@pytest.fixture
def emu() -> Iterator[BigQueryEmulator]:
    with BigQueryEmulator(project=PROJECT) as emulator:
        yield emulator


@pytest.fixture
def client(emu: BigQueryEmulator) -> bigquery.Client:
    c = make_client(emu)
    c.create_dataset("ds")
    return c


def seed_people(client: bigquery.Client) -> None:
    client.query_and_wait("CREATE TABLE ds.people (k STRING NOT NULL, name STRING, score INT64)")
    client.query_and_wait("INSERT INTO ds.people (k, name, score) VALUES ('a', 'Ann', 1), ('b', 'Bo', 2), ('c', 'Cy', 3)")


def test_dataset_and_table_lifecycle(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    schema = [
        bigquery.SchemaField("id", "INT64", mode="REQUIRED"),
        bigquery.SchemaField("email", "STRING"),
        bigquery.SchemaField("tags", "STRING", mode="REPEATED"),
        bigquery.SchemaField("addr", "RECORD", fields=[bigquery.SchemaField("city", "STRING")]),
    ]
    client.create_table(bigquery.Table(f"{PROJECT}.ds.users", schema=schema))
    table = client.get_table(f"{PROJECT}.ds.users")
    assert [(f.name, f.field_type, f.mode) for f in table.schema] == [
        ("id", "INTEGER", "REQUIRED"),
        ("email", "STRING", "NULLABLE"),
        ("tags", "STRING", "REPEATED"),
        ("addr", "RECORD", "NULLABLE"),
    ]
    assert [t.table_id for t in client.list_tables("ds")] == ["users"]
    assert [d.dataset_id for d in client.list_datasets()] == ["ds"]
    with pytest.raises(gexc.Conflict):
        client.create_table(bigquery.Table(f"{PROJECT}.ds.users", schema=schema))
    with pytest.raises(gexc.BadRequest, match="still in use"):
        client.delete_dataset("ds")
    client.delete_table(f"{PROJECT}.ds.users")
    with pytest.raises(gexc.NotFound, match="Not found: Table demo:ds.users was not found in location US"):
        client.get_table(f"{PROJECT}.ds.users")
    client.delete_dataset("ds", delete_contents=True)
    assert list(client.list_datasets()) == []
    assert emu.request_count == len(emu.request_log) > 0


def test_insert_all_and_named_array_parameter(client: bigquery.Client) -> None:
    schema = [bigquery.SchemaField("k", "STRING", mode="REQUIRED"), bigquery.SchemaField("n", "INT64")]
    client.create_table(bigquery.Table(f"{PROJECT}.ds.t", schema=schema))
    assert client.insert_rows_json(f"{PROJECT}.ds.t", [{"k": f"k{i}", "n": i} for i in range(10)]) == []
    bad = client.insert_rows_json(f"{PROJECT}.ds.t", [{"k": "x", "n": "seven"}, {"k": "y", "nope": 1}, {"k": "z"}])
    assert [e["index"] for e in bad] == [0, 1, 2]
    assert bad[1]["errors"][0] == {"reason": "invalid", "location": "nope", "debugInfo": "", "message": "no such field: nope."}
    assert bad[2]["errors"][0]["reason"] == "stopped"  # valid, but not written: the request had invalid rows
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ArrayQueryParameter("keys", "STRING", ["k1", "k3", "absent"]),
            bigquery.ScalarQueryParameter("min", "INT64", 2),
        ]
    )
    rows = client.query_and_wait("SELECT k, n FROM ds.t WHERE k IN UNNEST(@keys) AND n >= @min ORDER BY k", job_config=config)
    assert [tuple(r.values()) for r in rows] == [("k3", 3)]
    positional = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter(None, "STRING", "k5")])
    assert [r.n for r in client.query_and_wait("SELECT n FROM ds.t WHERE k = ?", job_config=positional)] == [5]


def test_typed_values_round_trip(client: bigquery.Client) -> None:
    client.query_and_wait(
        "CREATE TABLE ds.typed (i INT64, f FLOAT64, b BOOL, n NUMERIC, s STRING, ts TIMESTAMP, d DATE, "
        "dt DATETIME, t TIME, j JSON, by BYTES, arr ARRAY<STRING>, rec STRUCT<x INT64, y STRING>)"
    )
    job = client.query(
        "INSERT INTO ds.typed VALUES (42, 2.5, TRUE, NUMERIC '12345.678901234', 'héllo ✓ 日本', "
        "TIMESTAMP '2024-05-06 07:08:09.123456 UTC', DATE '2024-02-29', DATETIME '2024-01-02 03:04:05', TIME '10:11:12.5', "
        """JSON '{"a": [1, 2], "b": "ü"}', b'\\x00\\xff', ['x', 'y'], STRUCT(7 AS x, 'z' AS y)), """
        "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    job.result()
    assert (job.statement_type, job.num_dml_affected_rows) == ("INSERT", 2)
    rows = list(client.query_and_wait("SELECT * FROM ds.typed ORDER BY i NULLS LAST"))
    full, empty = rows
    assert full.i == 42 and full.f == 2.5 and full.b is True
    assert full.n == decimal.Decimal("12345.678901234")
    assert full.s == "héllo ✓ 日本"
    assert full.ts == datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
    assert full.d == datetime.date(2024, 2, 29)
    assert full.dt == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert full.t == datetime.time(10, 11, 12, 500000)
    assert full.j == {"a": [1, 2], "b": "ü"}
    assert full.by == b"\x00\xff"
    assert full.arr == ["x", "y"]
    assert full.rec == {"x": 7, "y": "z"}
    assert tuple(empty.values()) == (None,) * 11 + ([], None)  # BigQuery has no NULL arrays
    fields = {f.name: f.field_type for f in client.get_table(f"{PROJECT}.ds.typed").schema}
    assert fields == {
        "i": "INTEGER", "f": "FLOAT", "b": "BOOLEAN", "n": "NUMERIC", "s": "STRING", "ts": "TIMESTAMP", "d": "DATE",
        "dt": "DATETIME", "t": "TIME", "j": "JSON", "by": "BYTES", "arr": "STRING", "rec": "RECORD",
    }  # fmt: skip
    # the same values through tabledata.list, and typed query parameters
    listed = list(client.list_rows(f"{PROJECT}.ds.typed", selected_fields=[bigquery.SchemaField("ts", "TIMESTAMP")]))
    assert listed[0].ts == full.ts
    params = [
        bigquery.ScalarQueryParameter("ts", "TIMESTAMP", full.ts),
        bigquery.ScalarQueryParameter("n", "NUMERIC", decimal.Decimal("12345.678901234")),
        bigquery.ScalarQueryParameter("d", "DATE", datetime.date(2024, 2, 29)),
        bigquery.ScalarQueryParameter("j", "JSON", {"k": 1}),
    ]
    one = list(
        client.query_and_wait(
            "SELECT i, @j AS j FROM ds.typed WHERE ts = @ts AND n = @n AND d = @d",
            job_config=bigquery.QueryJobConfig(query_parameters=params),
        )
    )
    assert [(r.i, r.j) for r in one] == [(42, {"k": 1})]


def test_paging_across_pages(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    emu.execute("CREATE TABLE ds.big AS SELECT i AS id, 'row ' || i AS label FROM range(25000) t(i)")
    rows = client.query_and_wait("SELECT id, label FROM ds.big ORDER BY id", page_size=4000)
    assert rows.total_rows == 25000
    ids = [r.id for r in rows]
    assert ids == list(range(25000))
    pages = [e for e in emu.request_log if "/queries/" in e.path]
    assert len(pages) >= 6  # the first page came with jobs.query, the other six through getQueryResults
    listed = client.list_rows(f"{PROJECT}.ds.big", page_size=10000, start_index=100)
    assert sum(1 for _ in listed) == 24900


def test_session_temp_table_visible_only_in_session(client: bigquery.Client) -> None:
    job = client.query(
        "CREATE TEMP TABLE scratch AS SELECT 1 AS x UNION ALL SELECT 2", job_config=bigquery.QueryJobConfig(create_session=True)
    )
    job.result()
    session_id = job.session_info.session_id
    assert session_id
    in_session = bigquery.QueryJobConfig(connection_properties=[bigquery.ConnectionProperty("session_id", session_id)])
    assert [r.total for r in client.query_and_wait("SELECT SUM(x) AS total FROM scratch", job_config=in_session)] == [3]
    with pytest.raises(gexc.BadRequest, match="missing dataset"):
        client.query_and_wait("SELECT * FROM scratch")  # not in the session
    other = client.query("SELECT 1", job_config=bigquery.QueryJobConfig(create_session=True))
    other.result()
    with pytest.raises(gexc.BadRequest):
        in_other = [bigquery.ConnectionProperty("session_id", other.session_info.session_id)]
        client.query_and_wait("SELECT * FROM scratch", job_config=bigquery.QueryJobConfig(connection_properties=in_other))
    client.query_and_wait("CALL BQ.ABORT_SESSION()", job_config=in_session)
    with pytest.raises(gexc.BadRequest, match="Session .* not found"):
        client.query_and_wait("SELECT 1", job_config=in_session)


def test_transaction_rolled_back_and_committed(client: bigquery.Client) -> None:
    seed_people(client)
    job = client.query("SELECT 1", job_config=bigquery.QueryJobConfig(create_session=True))
    job.result()
    session = bigquery.QueryJobConfig(connection_properties=[bigquery.ConnectionProperty("session_id", job.session_info.session_id)])
    client.query_and_wait("BEGIN TRANSACTION; DELETE FROM ds.people WHERE TRUE;", job_config=session)
    assert [r.n for r in client.query_and_wait("SELECT COUNT(*) AS n FROM ds.people", job_config=session)] == [0]
    assert [r.n for r in client.query_and_wait("SELECT COUNT(*) AS n FROM ds.people")] == [3]  # not committed
    client.query_and_wait("ROLLBACK TRANSACTION", job_config=session)
    assert [r.n for r in client.query_and_wait("SELECT COUNT(*) AS n FROM ds.people", job_config=session)] == [3]
    # a script's transaction, committed; an error inside one rolls it back
    client.query_and_wait("BEGIN TRANSACTION; UPDATE ds.people SET score = 10 WHERE k = 'a'; COMMIT TRANSACTION;")
    with pytest.raises(gexc.NotFound):
        client.query_and_wait("BEGIN; UPDATE ds.people SET score = 99 WHERE TRUE; SELECT * FROM ds.nope; COMMIT;")
    assert sorted(r.score for r in client.query_and_wait("SELECT score FROM ds.people")) == [2, 3, 10]


def test_a_transaction_left_open_does_not_block_a_writer_and_loses_at_its_commit(client: bigquery.Client) -> None:
    """BigQuery's concurrency is optimistic: a transaction a killed client left open in its
    session does not hold others back; the first to commit wins, the other is aborted."""
    seed_people(client)

    def session() -> bigquery.QueryJobConfig:
        job = client.query("SELECT 1", job_config=bigquery.QueryJobConfig(create_session=True))
        job.result()
        return bigquery.QueryJobConfig(connection_properties=[bigquery.ConnectionProperty("session_id", job.session_info.session_id)])

    left, writer = session(), session()
    client.query_and_wait("BEGIN TRANSACTION", job_config=left)
    client.query_and_wait("DELETE FROM ds.people WHERE k = 'a'", job_config=left)  # and its client is gone
    client.query_and_wait("BEGIN TRANSACTION", job_config=writer)
    client.query_and_wait("UPDATE ds.people SET score = 7 WHERE k = 'a'", job_config=writer)
    client.query_and_wait("COMMIT TRANSACTION", job_config=writer)
    assert [r.score for r in client.query_and_wait("SELECT score FROM ds.people WHERE k = 'a'")] == [7]
    with pytest.raises(gexc.BadRequest, match="aborted due to concurrent update against table demo.ds.people"):
        client.query_and_wait("COMMIT TRANSACTION", job_config=left)
    client.query_and_wait("SELECT 1", job_config=left)  # the session itself goes on


def test_merge_reports_affected_rows(client: bigquery.Client) -> None:
    seed_people(client)
    merge = """
        MERGE ds.people T
        USING (SELECT 'a' AS k, 'Anna' AS name UNION ALL SELECT 'z', 'Zed') S
        ON T.k = S.k
        WHEN MATCHED THEN UPDATE SET name = S.name
        WHEN NOT MATCHED THEN INSERT (k, name, score) VALUES (S.k, S.name, 0)
    """
    job = client.query(merge)
    job.result()
    assert (job.statement_type, job.num_dml_affected_rows) == ("MERGE", 2)
    rows = client.query_and_wait("DELETE FROM ds.people WHERE score < 2")
    assert rows.num_dml_affected_rows == 2


def test_dry_run_estimates_bytes_and_creates_nothing(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    seed_people(client)
    dry = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
    job = client.query("SELECT k, score FROM ds.people", job_config=dry)
    # STRING: 2 + UTF-8 bytes per value (3 × 3), INT64: 8 per value (3 × 8)
    assert job.total_bytes_processed == 9 + 24
    assert [f.name for f in job.schema] == ["k", "score"]
    before = emu.tables()
    job = client.query("CREATE TABLE ds.copy AS SELECT * FROM ds.people", job_config=dry)
    assert job.total_bytes_processed == 9 + (2 + 3 + 2 + 2 + 2 + 2) + 24
    assert emu.tables() == before == ["ds.people"]
    real = client.query("SELECT k, score FROM ds.people")
    real.result()
    assert real.total_bytes_billed == 10 * 1024 * 1024 and real.cache_hit is False
    assert client.query("SELECT COUNT(*) FROM ds.people", job_config=dry).total_bytes_processed == 0
    assert client.query_and_wait("SELECT k FROM ds.people", job_config=dry).total_bytes_processed == 9  # through jobs.query
    assert emu.tables() == ["ds.people"]


def test_maximum_bytes_billed_refused(client: bigquery.Client) -> None:
    seed_people(client)
    capped = bigquery.QueryJobConfig(maximum_bytes_billed=1000)
    with pytest.raises(gexc.BadRequest) as refused:
        client.query_and_wait("SELECT * FROM ds.people", job_config=capped)
    assert refused.value.errors[0]["reason"] == "bytesBilledLimitExceeded"
    assert "Query exceeded limit for bytes billed: 1000. 10485760 or higher required." in refused.value.message
    assert [r.n for r in client.query_and_wait("SELECT 1 AS n", job_config=capped)] == [1]  # reads no table


def test_untranslatable_statement_is_a_clear_400(client: bigquery.Client) -> None:
    seed_people(client)
    with pytest.raises(gexc.BadRequest) as refused:
        client.query_and_wait("SELECT APPROX_TOP_COUNT(name, 2) FROM ds.people")
    error = refused.value.errors[0]
    assert error["reason"] == "invalidQuery" and error["location"] == "query"
    assert "BigQuery emulator" in error["message"] and "APPROX_TOP_COUNT(name, 2)" in error["message"]
    with pytest.raises(gexc.BadRequest, match=r"BigQuery emulator.*NET\.HOST"):
        client.query_and_wait("SELECT NET.HOST(name) FROM ds.people")  # translated, refused by DuckDB
    with pytest.raises(gexc.BadRequest, match="Syntax error"):
        client.query_and_wait("SELEC 1")
    with pytest.raises(gexc.BadRequest, match="legacy SQL"):
        client.query_and_wait("SELECT 1", job_config=bigquery.QueryJobConfig(use_legacy_sql=True))


def test_missing_table_is_a_404(client: bigquery.Client) -> None:
    with pytest.raises(gexc.NotFound, match="Not found: Table demo:ds.nope was not found in location US"):
        client.query_and_wait("SELECT * FROM `demo.ds.nope`")
    with pytest.raises(gexc.NotFound, match="Not found: Table demo:ds.nope"):
        client.query("SELECT * FROM ds.nope").result()  # jobs.insert: the job's errorResult
    with pytest.raises(gexc.NotFound, match="Not found: Dataset demo:other"):
        client.query_and_wait("SELECT * FROM other.t")
    with pytest.raises(gexc.NotFound, match="Project elsewhere"):
        client.query_and_wait("SELECT * FROM `elsewhere.ds.t`")


def test_ddl_views_and_information_schema(client: bigquery.Client) -> None:
    seed_people(client)
    job = client.query("CREATE OR REPLACE VIEW ds.top AS SELECT k, score FROM ds.people WHERE score > 1")
    job.result()
    assert (job.statement_type, job.ddl_operation_performed) == ("CREATE_VIEW", "CREATE")
    assert client.get_table(f"{PROJECT}.ds.top").table_type == "VIEW"
    assert client.query_and_wait("CREATE SCHEMA IF NOT EXISTS ds").total_rows in (None, 0)
    tables = client.query_and_wait("SELECT table_name, table_type FROM ds.INFORMATION_SCHEMA.TABLES ORDER BY table_name")
    assert [tuple(r.values()) for r in tables] == [("people", "BASE TABLE"), ("top", "VIEW")]
    columns = client.query_and_wait(
        "SELECT column_name, data_type, is_nullable FROM `demo.ds.INFORMATION_SCHEMA.COLUMNS` WHERE table_name = 'people' ORDER BY ordinal_position"
    )
    assert [tuple(r.values()) for r in columns] == [("k", "STRING", "NO"), ("name", "STRING", "YES"), ("score", "INT64", "YES")]
    unqualified = bigquery.QueryJobConfig(default_dataset=f"{PROJECT}.ds")
    assert [r.n for r in client.query_and_wait("SELECT COUNT(*) AS n FROM top", job_config=unqualified)] == [2]
    job = client.query("DROP VIEW IF EXISTS ds.top; DROP TABLE ds.people")
    job.result()
    assert job.statement_type == "SCRIPT"
    assert list(client.list_tables("ds")) == []


def test_destination_table_write_disposition(client: bigquery.Client) -> None:
    seed_people(client)
    dest = f"{PROJECT}.ds.snapshot"
    for _ in range(2):
        config = bigquery.QueryJobConfig(destination=dest, write_disposition="WRITE_APPEND")
        client.query("SELECT k, score FROM ds.people", job_config=config).result()
    assert client.get_table(dest).num_rows == 6
    truncate = bigquery.QueryJobConfig(destination=dest, write_disposition="WRITE_TRUNCATE")
    client.query("SELECT k, score FROM ds.people WHERE score = 1", job_config=truncate).result()
    assert client.get_table(dest).num_rows == 1
    with pytest.raises(gexc.Conflict):
        client.query("SELECT 1 AS k", job_config=bigquery.QueryJobConfig(destination=dest)).result()


def test_file_database_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "warehouse.duckdb")
    with BigQueryEmulator(project=PROJECT, path=path) as first:
        c = make_client(first)
        c.create_dataset("ds")
        c.query_and_wait("CREATE TABLE ds.kept AS SELECT 'v' AS k")
    with BigQueryEmulator(project=PROJECT, path=path) as second:
        assert [r.k for r in make_client(second).query_and_wait("SELECT k FROM ds.kept")] == ["v"]


def test_two_clients_at_once(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client.query_and_wait("CREATE TABLE ds.counter (n INT64)")

    def work(i: int) -> int:
        c = make_client(emu)
        c.query_and_wait(f"INSERT INTO ds.counter VALUES ({i})")
        return next(iter(c.query_and_wait("SELECT COUNT(*) AS n FROM ds.counter"))).n

    other_process = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, emu.url])  # a second process, meanwhile
    with ThreadPoolExecutor(4) as pool:
        assert all(n >= 1 for n in pool.map(work, range(8)))
    assert other_process.wait(timeout=60) == 0
    assert next(iter(client.query_and_wait("SELECT SUM(n) AS s FROM ds.counter"))).s == sum(range(8)) + 100


CLIENT_SCRIPT = """
import sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
c = bigquery.Client(project="demo", credentials=AnonymousCredentials(), client_options={"api_endpoint": sys.argv[1]})
for _ in range(5):
    c.query_and_wait("INSERT INTO ds.counter VALUES (20)")
"""


def test_jobs_get_cancel_and_result_pages(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    job = client.query("SELECT id FROM UNNEST(GENERATE_ARRAY(1, 10)) AS id ORDER BY id")
    assert [r.id for r in job.result(page_size=3)] == list(range(1, 11))
    fetched = client.get_job(job.job_id, location="US")
    assert (fetched.state, fetched.statement_type, fetched.total_bytes_billed) == ("DONE", "SELECT", 0)
    assert client.cancel_job(job.job_id, location="US").state == "DONE"  # it had finished already
    assert [r.id for r in client.get_job(job.job_id).result(start_index=7)] == [8, 9, 10]  # a job without cached rows
    with pytest.raises(gexc.NotFound, match="Not found: Job demo:US.nope"):
        client.get_job("nope", location="US")


def test_timestamp_cell_formats(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    import urllib.request

    client.query_and_wait("CREATE TABLE ds.times AS SELECT TIMESTAMP '2024-01-01 00:00:01.5 UTC' AS ts")
    url = f"{emu.url}/bigquery/v2/projects/{PROJECT}/datasets/ds/tables/times/data"

    def cell(query: str) -> str:
        with urllib.request.urlopen(url + query) as answer:
            return json.loads(answer.read())["rows"][0]["f"][0]["v"]

    assert cell("?formatOptions.useInt64Timestamp=true") == "1704067201500000"
    assert cell("?formatOptions.timestampOutputFormat=ISO8601_STRING") == "2024-01-01T00:00:01.500000Z"
    assert float(cell("")) == 1704067201.5  # without formatOptions: float seconds


# ---------------------------------------------------------------- SQLAlchemy (sqlalchemy-bigquery)


def make_engine(emu: BigQueryEmulator, dataset: str) -> sa.Engine:
    """What the module docstring documents: a pre-built Client (its endpoint, anonymous
    credentials, the default dataset) passed through connect_args."""
    client = make_client(emu, default_query_job_config=bigquery.QueryJobConfig(default_dataset=f"{PROJECT}.{dataset}"))
    return sa.create_engine(
        f"bigquery://{PROJECT}/{dataset}?user_supplied_client=True", connect_args={"client": client, "prefer_bqstorage_client": False}
    )


def test_sqlalchemy_engine(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    seed_people(client)
    emu.execute(
        "CREATE TABLE ds.big AS SELECT i AS id, 'x' || i AS label, TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i) AS at FROM range(12000) t(i)"
    )
    engine = make_engine(emu, "ds")
    inspector = sa.inspect(engine)
    assert inspector.has_table("people") and not inspector.has_table("nope")
    assert [(c["name"], str(c["type"])) for c in inspector.get_columns("people")] == [
        ("k", "VARCHAR"),
        ("name", "VARCHAR"),
        ("score", "INTEGER"),
    ]
    assert sorted(inspector.get_table_names()) == ["big", "people"]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name FROM people WHERE k IN UNNEST(:keys) ORDER BY name"), {"keys": ["a", "c"]}).all()
        assert [r.name for r in rows] == ["Ann", "Cy"]
        result = conn.execution_options(stream_results=True).execute(sa.text("SELECT id, at FROM big ORDER BY id"))
        seen = 0
        for batch in result.partitions(5000):
            seen += len(batch)
        assert seen == 12000
        table = sa.Table("people", sa.MetaData(), autoload_with=conn)
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 3
        conn.execute(sa.text("UPDATE people SET score = score + 1 WHERE k = :k"), {"k": "a"})
        assert conn.execute(sa.text("SELECT score FROM people WHERE k = 'a'")).scalar() == 2


def test_json_error_body_shape(emu: BigQueryEmulator, client: bigquery.Client) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{emu.url}/bigquery/v2/projects/{PROJECT}/queries",
        data=json.dumps({"query": "SELECT * FROM ds.missing", "useLegacySql": False}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(request)
    body = json.loads(answered.value.read())
    assert answered.value.code == 404
    assert body["error"]["status"] == "NOT_FOUND"
    assert body["error"]["errors"][0]["reason"] == "notFound"


def test_array_offsets_are_zero_based_whatever_the_index(client: bigquery.Client) -> None:
    """OFFSET(expr) on DuckDB's 1-based arrays (sqlglot shifted only literal indexes)."""
    rows = client.query_and_wait(
        "SELECT ['a', 'b', 'c'][OFFSET(MOD(i, 3))] AS o, ['a', 'b', 'c'][SAFE_OFFSET(i)] AS s, ['a', 'b', 'c'][ORDINAL(i + 1)] AS n, "
        "['a', 'b', 'c'][OFFSET(1)] AS lit FROM UNNEST([0, 1, 2, 3]) AS i ORDER BY i"
    )
    assert [tuple(r.values()) for r in rows] == [("a", "a", "a", "b"), ("b", "b", "b", "b"), ("c", "c", "c", "b"), ("a", None, None, "b")]


def test_types_and_casts_googlesql_does_not_have_are_refused(client: bigquery.Client) -> None:
    """sqlglot reads DOUBLE PRECISION or `::` in BigQuery SQL and would quietly run them."""
    for sql, said in [
        ("SELECT CAST(1 AS DOUBLE PRECISION) AS x", "Type not found: DOUBLE"),
        ("SELECT SAFE_CAST('1' AS VARCHAR) AS x", "Type not found: VARCHAR"),
        ("SELECT 1::INT64 AS x", 'Unexpected "::"'),
    ]:
        with pytest.raises(gexc.BadRequest, match=said):
            client.query_and_wait(sql)
    [row] = client.query_and_wait("SELECT CAST(CAST(1 AS STRING) AS FLOAT64) AS x, CAST('2' AS INTEGER) AS y")
    assert (row.x, row.y) == (1.0, 2)
