"""Plan a large model with some rows changed and removed, beside a hand-written hash-diff
query on the same tables, on DuckDB and Postgres.

    python bench/plan_scale.py [--rows 1000000] [--engine duckdb|postgres|redshift|bigquery|both]
                               [--changed 0.01] [--removed 0.005] [--repeat 3]

Set-up (not timed): a model of N users in `src.users`, and a state store (in the warehouse,
schema activation_state) holding every row as delivered — the row hashes and mapped values
activation itself computes, written by one INSERT … SELECT (a first load through a real
destination is another benchmark: bench/hubspot_sync.py). A sample of the seeded state is
checked against the Python mapper. Then `changed` of the rows get a new plan and `removed`
are deleted.

Timed, interleaved (plan, query, plan, query, …), best of --repeat, each in a fresh process
so its peak RSS is its own, the clock started on an open connection:
- plan: activation's dry run (materialise as temporary relations, key checks, the diff in the
  warehouse, mapping every differing row, the SyncPlan); also counts the rows the warehouse
  streamed to the process, which must equal the changes, not the model;
- query: a hand-written FULL OUTER JOIN on the key comparing the same md5 row hashes,
  fetching the differing keys.

Generated data lives in a temporary directory (DuckDB) or a temporary schema (Postgres at
$BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/test) and is deleted at the end.

`--engine redshift` runs the Redshift engine (its dialect and its SQL) on that same Postgres
standing in for Redshift (activation_emulators.redshift), beside a hand-written query in
Redshift's SQL: it compares the two on one engine, and says nothing of Redshift's own speed.
`--engine bigquery` runs the BigQuery engine (Google's client and dialect over HTTP) against
the local BigQuery emulator started by this bench (GoogleSQL translated to DuckDB), beside a
hand-written GoogleSQL query sent through the same client; it also prints the bytes each
processed, as BigQuery would bill them. Again a comparison on one engine, not BigQuery's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
FIELDS = ["email", "first_name", "mrr", "plan", "score", "seats"]  # sorted: the hash's column order

PROJECT = """\
version: 1
warehouse: {warehouse}
state: {{schema: {state}}}
entities:
  user: {{table: {src}.users, key: user_id}}
destinations:
  export: {{type: file, path: out/users.csv}}
syncs:
  users:
    from: user
    to: export
    match: {{email: email}}
    fields: {{first_name: first_name, plan: plan, seats: seats, mrr: mrr, score: score}}
"""

SOURCE = {
    "duckdb": """CREATE TABLE {src}.users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email,
        'name' || (i % 997) AS first_name, ['free', 'pro', 'enterprise'][1 + i % 3] AS plan,
        CAST(i % 50 AS INTEGER) AS seats, CAST(i % 1000 AS DECIMAL(12, 2)) AS mrr,
        CAST((i % 100) / 10.0 AS DOUBLE) AS score FROM range({rows}) t(i)""",
    "postgres": """CREATE TABLE {src}.users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email,
        'name' || (i % 997) AS first_name, (ARRAY['free', 'pro', 'enterprise'])[1 + i % 3] AS plan,
        CAST(i % 50 AS INTEGER) AS seats, CAST(i % 1000 AS NUMERIC(12, 2)) AS mrr,
        CAST((i % 100) / 10.0 AS DOUBLE PRECISION) AS score FROM generate_series(0, {rows} - 1) AS t(i)""",
}
SOURCE["redshift"] = SOURCE["postgres"]  # made by Postgres, which stands in for Redshift
SOURCE["bigquery"] = """CREATE TABLE {src}.users AS SELECT i AS user_id, CONCAT('user', CAST(i AS STRING), '@example.com') AS email,
        CONCAT('name', CAST(MOD(i, 997) AS STRING)) AS first_name, ['free', 'pro', 'enterprise'][OFFSET(MOD(i, 3))] AS plan,
        MOD(i, 50) AS seats, CAST(MOD(i, 1000) AS NUMERIC) AS mrr,
        CAST(MOD(i, 100) / 10.0 AS FLOAT64) AS score FROM UNNEST(GENERATE_ARRAY(0, {rows} - 1)) AS i"""
VALUES_JSON = {  # the mapped values as JSON (what the state store keeps), in SQL
    "duckdb": "to_json(struct_pack({pairs}))::VARCHAR",
    "postgres": "json_build_object({pairs})::text",
    "redshift": "JSON_SERIALIZE(OBJECT({pairs}))",
    "bigquery": "TO_JSON_STRING(STRUCT({pairs}))",
}


def project_dir(engine: str, base: Path, tag: str, memory_limit: str | None = None) -> Path:
    root = base / engine
    root.mkdir(parents=True, exist_ok=True)
    if engine == "duckdb":
        limit = f", memory_limit: {memory_limit}" if memory_limit else ""
        warehouse = f"{{type: duckdb, path: warehouse.duckdb{limit}}}"
        src, state = "src", "activation_state"
    elif engine == "bigquery":
        warehouse = f"{{type: bigquery, project: bench, api_endpoint: '{os.environ['BENCH_BQ_URL']}', anonymous: true}}"
        src, state = "src", "activation_state"
    elif engine == "redshift":  # through the endpoint this bench started (redshift_connector)
        warehouse = f"{{type: redshift, url: '{os.environ['BENCH_RS_URL']}', sslmode: disable, schema: act_{tag}}}"
        src, state = f"src_{tag}", f"state_{tag}"
    else:
        warehouse = f"{{type: {engine}, url: '{PG_URL}', schema: act_{tag}}}"
        src, state = f"src_{tag}", f"state_{tag}"
    (root / "syncs.yaml").write_text(PROJECT.format(warehouse=warehouse, src=src, state=state))
    (root / "meta.json").write_text(json.dumps({"src": src, "state": state, "memory_limit": memory_limit}))
    return root


def setup(engine: str, root: Path, rows: int, changed: float, removed: float) -> dict[str, Any]:
    """Model + delivered state, then the changes. Returns what the plan must find."""
    from activation.diff.mapping import FieldMapper
    from activation.project.loader import load_project
    from activation.session import Session

    meta = json.loads((root / "meta.json").read_text())
    src = meta["src"]
    if engine == "redshift":
        import sqlalchemy as sa

        from activation_emulators.redshift import prepare

        prepare(sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)))
    with Session(load_project(root), dry_run=False) as s:
        wh, c = s.warehouse, s.conn
        wh.execute(c, f"CREATE SCHEMA IF NOT EXISTS {src}")
        wh.execute(c, f"DROP TABLE IF EXISTS {src}.users")
        t = time.perf_counter()
        wh.execute(c, SOURCE[engine].format(src=src, rows=rows))
        c.commit()
        s.state.migrate()
        q = s.prepare(["users"])["users"].query
        key = wh.key_expr(q.key, "src")
        pair = {"duckdb": "{q} := src.{q}", "bigquery": "src.{q} AS {q}"}.get(engine, "'{f}', src.{q}")
        pairs = ", ".join(pair.format(f=f, q=wh.quote(f)) for f in FIELDS)
        delivered = s.state.relation("delivered")
        wh.execute(
            c,
            f"""INSERT INTO {delivered} (sync_name, row_key, row_hash, row_values, dest_id, delivered_at)
            SELECT 'users', {key}, {s.differ.hash(q)}, {VALUES_JSON[engine].format(pairs=pairs)}, NULL, CURRENT_TIMESTAMP
            FROM ({q.model_sql}) AS src""",
        )
        c.commit()
        # the seeded state must be what a real delivery would have recorded
        mapper = FieldMapper(s.project.syncs["users"])
        sample = wh.execute(
            c,
            f"""SELECT d.row_values, {", ".join(f"u.{f}" for f in FIELDS)}
            FROM {delivered} AS d JOIN {src}.users AS u ON d.row_key = {wh.as_text("u.user_id")}
            WHERE u.user_id < 1000""",
        ).all()
        for stored, *values in sample:
            assert json.loads(stored) == mapper.map(dict(zip(FIELDS, values, strict=False))), (stored, values)
        every_changed, every_removed = round(1 / changed), round(1 / removed)
        n_changed = wh.execute(c, f"UPDATE {src}.users SET plan = CONCAT(plan, '_v2') WHERE MOD(user_id, {every_changed}) = 0").rowcount
        n_removed = wh.execute(c, f"DELETE FROM {src}.users WHERE MOD(user_id, {every_removed}) = 1").rowcount
        c.commit()
        if engine not in ("duckdb", "bigquery"):
            c.exec_driver_sql(f"ANALYZE {src}.users")
            c.exec_driver_sql(f"ANALYZE {delivered}")
            c.commit()
        return {"changed": n_changed, "removed": n_removed, "salt": q.salt, "target": q.target, "seconds": time.perf_counter() - t}


def child_plan(root: Path) -> dict[str, Any]:
    from activation.project.loader import load_project
    from activation.runner import plan_sync
    from activation.session import Session

    with Session(load_project(root), dry_run=True) as s:
        streamed = 0
        stream = s.warehouse.stream

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal streamed
            for chunk in stream(*args, **kwargs):
                streamed += len(chunk)
                yield chunk

        s.warehouse.stream = counting  # type: ignore[method-assign]
        t = time.perf_counter()
        plan = plan_sync(s, s.prepare(["users"])["users"])
        seconds = time.perf_counter() - t
        cost = s.warehouse.cost()
    c = plan.counts
    return {
        "bytes_processed": cost.bytes_processed if cost else None,
        "seconds": seconds,
        "streamed": streamed,
        "added": c.added,
        "changed": c.changed,
        "removed": c.removed,
        "unchanged": c.unchanged,
        "fields": plan.field_changes,
    }


def child_query(engine: str, root: Path, salt: str, target: str) -> dict[str, Any]:
    meta = json.loads((root / "meta.json").read_text())
    src, state = meta["src"], meta["state"]
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
        con.execute("SET enable_progress_bar = false")
        if meta["memory_limit"]:  # the same cap as the plan's
            con.execute(f"SET memory_limit = '{meta['memory_limit']}'")
        row = f"to_json(struct_pack({', '.join(FIELDS)}))::VARCHAR"
        run = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    elif engine == "bigquery":
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        client = bigquery.Client(
            project="bench", credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=os.environ["BENCH_BQ_URL"])
        )
        fields = ", ".join(f"{f} AS {f}" for f in FIELDS)
        sql = f"""
            SELECT COALESCE(m.k, s.row_key), m.h IS NULL AS removed FROM (
              SELECT CAST(user_id AS STRING) AS k, CONCAT('{target}:', TO_HEX(MD5(CONCAT('{salt}', TO_JSON_STRING(STRUCT({fields})))))) AS h
              FROM {src}.users) AS m
            FULL OUTER JOIN (SELECT row_key, row_hash FROM {state}.delivered WHERE sync_name = 'users') AS s ON m.k = s.row_key
            WHERE m.h IS NULL OR s.row_hash IS NULL OR m.h <> s.row_hash"""
        t = time.perf_counter()
        rows = client.query_and_wait(sql)
        differing = list(rows)
        return {"seconds": time.perf_counter() - t, "differing": len(differing), "bytes_processed": rows.total_bytes_processed}
    else:
        import psycopg

        con = psycopg.connect(PG_URL)
        row = f"json_build_array({', '.join(FIELDS)})::text"
        if engine == "redshift":  # Redshift's SQL (no IS DISTINCT FROM either)
            pairs = ", ".join(f"'{f}', {f}" for f in FIELDS)
            row = f"JSON_SERIALIZE(OBJECT({pairs}))"
        run = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    sql = f"""
        SELECT COALESCE(m.k, s.row_key), m.h IS NULL AS removed FROM (
          SELECT CAST(user_id AS VARCHAR(65535)) AS k, '{target}:' || md5('{salt}' || {row}) AS h FROM {src}.users) AS m
        FULL OUTER JOIN (SELECT row_key, row_hash FROM {state}.delivered WHERE sync_name = 'users') AS s
          ON m.k = s.row_key
        WHERE m.h IS NULL OR s.row_hash IS NULL OR m.h <> s.row_hash"""
    t = time.perf_counter()
    differing = run(sql)
    return {"seconds": time.perf_counter() - t, "differing": len(differing)}


def peak_rss_mb() -> float:
    """This process's own peak RSS. (getrusage's ru_maxrss would also count the parent's
    memory at the fork that started this process.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(engine: str, rows: int, changed: float, removed: float, repeat: int, memory_limit: str | None) -> None:
    base = Path(tempfile.mkdtemp(prefix="activation-bench-"))
    tag = uuid.uuid4().hex[:8]
    emulator = None
    if engine == "bigquery":  # in this process, its data in a file; the children reach it over HTTP
        from activation_emulators.bigquery import BigQueryEmulator

        emulator = BigQueryEmulator(project="bench", path=str(base / "bigquery.duckdb")).__enter__()
        os.environ["BENCH_BQ_URL"] = emulator.url
    elif engine == "redshift":  # a Redshift endpoint in front of the Postgres server
        from urllib.parse import urlsplit

        from activation_emulators.redshift import RedshiftEndpoint

        pg = urlsplit(PG_URL)
        endpoint = RedshiftEndpoint((pg.hostname or "127.0.0.1", pg.port or 5432))
        os.environ["BENCH_RS_URL"] = endpoint.url(pg.username or "postgres", pg.path.lstrip("/") or "test")
    root = project_dir(engine, base, tag)
    try:
        expect = measure("setup", engine, str(root), str(rows), str(changed), str(removed))
        if memory_limit and engine == "duckdb":  # the set-up runs uncapped (it builds the state's index)
            project_dir(engine, base, tag, memory_limit)
        print(
            f"  set-up ({engine}, {rows:,} rows): {expect['seconds']:.0f}s; {expect['changed']:,} changed, {expect['removed']:,} removed",
            flush=True,
        )
        plans, queries = [], []
        for _ in range(repeat):
            plans.append(measure("plan", engine, str(root)))
            queries.append(measure("query", engine, str(root), expect["salt"], expect["target"]))
        p = min(plans, key=lambda r: r["seconds"])
        f = min(queries, key=lambda r: r["seconds"])
        changes = expect["changed"] + expect["removed"]
        assert (p["changed"], p["removed"], p["added"]) == (expect["changed"], expect["removed"], 0), p
        assert f["differing"] == changes, f
        limit = f", DuckDB memory_limit {memory_limit}" if memory_limit and engine == "duckdb" else ""
        print(f"{engine}{limit}, {rows:,} rows, {expect['changed']:,} changed + {expect['removed']:,} removed (fields: {p['fields']}):")
        print(
            f"  activation plan    {p['seconds']:7.2f}s  peak RSS {p['peak_rss_mb']:5.0f} MB  "
            f"rows streamed to the process {p['streamed']:,} (changes: {changes:,})"
        )
        print(f"  hand-written query {f['seconds']:7.2f}s  peak RSS {f['peak_rss_mb']:5.0f} MB  differing keys fetched {f['differing']:,}")
        if p.get("bytes_processed") is not None:
            print(f"  bytes processed: plan {p['bytes_processed'] / 1e6:,.1f} MB, query {f['bytes_processed'] / 1e6:,.1f} MB")
        times = lambda runs: ", ".join(f"{r['seconds']:.2f}" for r in runs)  # noqa: E731
        print(
            f"  plan / query: {p['seconds'] / f['seconds']:.2f}x (best of {repeat}; plans: {times(plans)}; queries: {times(queries)})",
            flush=True,
        )
    finally:
        if emulator is not None:
            emulator.__exit__(None, None, None)
        elif engine != "duckdb":
            import sqlalchemy as sa

            e = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
            with e.begin() as c:
                for schema in (f"src_{tag}", f"act_{tag}", f"state_{tag}"):
                    c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            e.dispose()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--engine", choices=["duckdb", "postgres", "redshift", "bigquery", "both"], default="both")
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--removed", type=float, default=0.005)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory-limit", help="DuckDB memory_limit for the plan and the query alike, e.g. 300MB")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, engine, root, *rest = args.child
        if kind == "setup":
            rows, changed, removed = rest
            out = setup(engine, Path(root), int(rows), float(changed), float(removed))
        else:
            out = child_plan(Path(root)) if kind == "plan" else child_query(engine, Path(root), *rest)
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out))
        return
    for engine in ["duckdb", "postgres"] if args.engine == "both" else [args.engine]:
        bench(engine, args.rows, args.changed, args.removed, args.repeat, args.memory_limit)


if __name__ == "__main__":
    main()
