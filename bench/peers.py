"""activation beside its peers: one data set, ONE fake HubSpot v3 contacts endpoint.

    flock /tmp/activation-bench.lock python bench/peers.py [--rows 100000] [--rounds 3] [--skip-peers]
        [--growth 100000,300000,1000000] [--peers-python .venv-peers/bin/python]
    (make bench-peers; BENCH_CONCURRENCY=N sets activation's destination concurrency, default 4)

The data set: N users (user_id, a mixed-case email, first and last name, title) in a DuckDB
file. Each contender, each round, gets a fresh copy of it and a fresh endpoint
(bench/fake_hubspot.py, in its own process: contacts by email, batch upsert/read/archive, a
/__dump path). It runs twice, each time in a fresh process whose wall time and peak RSS
(os.wait4's rusage: that process alone, not the endpoint's) are measured:

1. the first full sync to the empty endpoint;
2. after 0.1% of the rows changed, 0.05% deleted and 0.05% inserted (not timed), the next run.

"exact after it": the endpoint's contacts (read from /__dump) equal the model: the same emails
(lower-cased, as HubSpot keeps them), each with the model's firstname, lastname and jobtitle.

Contenders:
- floor: a plain httpx keep-alive loop, batches of 100 to batch/upsert, no state: its second
  run sends every row again and cannot archive what was deleted;
- reference: a true diff written here (`reference`): a DuckDB state table of (key, email,
  payload hash, record id), added/changed/removed by SQL against the source, upserts and
  archives in batches of 100 on one connection, state recorded per acknowledged batch;
- activation: `activation run` on a generated project, mode mirror (removed rows are archived);
- dlt, drt-core: when importable by --peers-python (bench/requirements-peers.txt pins them; they
  are never dependencies of the project), else printed as "not installed". Neither keeps a
  delivered state for a DuckDB source and a REST destination, so each run sends the whole model.

Medians over --rounds; the ratios compare rows/s to the floor's and the incremental run's time
to the reference loop's, both from the same run (the machine is shared: compare ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx

BENCH = Path(__file__).resolve().parent
TOKEN = "pat-na1-bench"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
ARCHIVE = "/crm/v3/objects/contacts/batch/archive"
# The model's columns and the HubSpot properties they feed.
FIELDS = {"firstname": "first_name", "lastname": "last_name", "jobtitle": "title"}
CONTENDERS = ["floor", "reference", "activation", "dlt", "drt"]

PROJECT = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  hs: {{type: hubspot, token: "{token}", base_url: "{url}", requests_per_second: 100000, concurrency: {concurrency}}}
syncs:
  contacts:
    from: user
    to: hs
    object: contacts
    mode: mirror
    match: {{email: email}}
    fields: {{firstname: first_name, lastname: last_name, jobtitle: title}}
"""


# ------------------------------------------------------------------ the data set


def make_source(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA src")
    con.execute(f"""CREATE TABLE src.users AS SELECT i AS user_id, 'User' || i || '@Example.com' AS email,
        'First' || (i % 997) AS first_name, 'Last' || (i % 991) AS last_name, 'Engineer' AS title
        FROM range({rows}) t(i)""")
    con.close()


def mutate_source(path: Path, rows: int) -> None:
    """0.1% changed, 0.05% deleted, 0.05% inserted (disjoint: user_id % 1000 = 7 vs % 2000 = 3)."""
    con = duckdb.connect(str(path))
    con.execute("UPDATE src.users SET title = 'Manager', first_name = first_name || 'x' WHERE user_id % 1000 = 7")
    con.execute("DELETE FROM src.users WHERE user_id % 2000 = 3")
    con.execute(f"""INSERT INTO src.users SELECT i, 'User' || i || '@Example.com', 'First' || (i % 997),
        'Last' || (i % 991), 'Engineer' FROM range({rows}, {rows + max(1, rows // 2000)}) t(i)""")
    con.close()


def source_rows(path: Path) -> Iterator[list[tuple[Any, ...]]]:
    """The model's rows, 100 at a time (streamed: a contender's memory is not the model's)."""
    con = duckdb.connect(str(path), read_only=True)
    cur = con.execute("SELECT user_id, email, first_name, last_name, title FROM src.users")
    while batch := cur.fetchmany(100):
        yield batch
    con.close()


def upsert_input(email: str, first: str, last: str, title: str) -> dict[str, Any]:
    return {"id": email, "idProperty": "email", "properties": {"firstname": first, "lastname": last, "jobtitle": title}}


def exactness(path: Path, url: str) -> str:
    """ "yes", or what differs between the endpoint's contacts and the model."""
    con = duckdb.connect(str(path), read_only=True)
    want = {e.lower(): (f, la, t) for e, f, la, t in con.execute("SELECT email, first_name, last_name, title FROM src.users").fetchall()}
    con.close()
    dump = httpx.get(url + "/__dump", timeout=120).json()
    missing = sum(1 for e in want if e not in dump)
    extra = sum(1 for e in dump if e not in want)
    wrong = sum(1 for e, v in want.items() if e in dump and tuple(dump[e].get(p) for p in FIELDS) != v)
    if not (missing or extra or wrong):
        return "yes"
    return "no: " + ", ".join(f"{n:,} {what}" for n, what in ((missing, "missing"), (extra, "extra"), (wrong, "stale")) if n)


# ------------------------------------------------------------------ contenders run in a child process


def floor(db: Path, url: str) -> None:
    """Every row, batches of 100, one keep-alive connection; no state, so never a delete."""
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}, timeout=60) as client:
        for batch in source_rows(db):
            body = json.dumps({"inputs": [upsert_input(e, f, la, t) for _, e, f, la, t in batch]}, separators=(",", ":"))
            client.post(url + UPSERT, content=body).raise_for_status()


def reference(db: Path, url: str) -> None:
    """A true diff in ~80 lines: what any state-keeping sync must at least do.

    State: ref.state(user_id, email, h, hs_id), h = md5 of the payload. One FULL OUTER JOIN
    classifies the model against it into ref.diff (added, changed, removed: only the differing
    rows leave the warehouse). Removed rows (and a changed email's old record) are archived by
    record id, then added and changed rows upserted by email; each acknowledged batch of 100 is
    recorded in the state at once (its own transaction), so a crash loses at most one batch.
    """
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA IF NOT EXISTS ref")
    con.execute("CREATE TABLE IF NOT EXISTS ref.state (user_id BIGINT, email VARCHAR, h VARCHAR, hs_id VARCHAR)")
    con.execute("""CREATE OR REPLACE TABLE ref.diff AS
        WITH m AS (SELECT user_id, email, first_name, last_name, title,
                          md5(concat_ws(chr(31), lower(email), coalesce(first_name, ''), coalesce(last_name, ''),
                                        coalesce(title, ''))) AS h FROM src.users)
        SELECT coalesce(m.user_id, s.user_id) AS user_id, m.email, m.first_name, m.last_name, m.title, m.h,
               s.hs_id, s.user_id IS NULL AS added, m.user_id IS NULL AS removed,
               s.email IS NOT NULL AND m.email IS NOT NULL AND lower(s.email) <> lower(m.email) AS renamed
        FROM m FULL OUTER JOIN ref.state s ON m.user_id = s.user_id
        WHERE s.user_id IS NULL OR m.user_id IS NULL OR s.h <> m.h""")
    write = con.cursor()  # state writes on a connection of their own, while `read` streams the diff
    read = con.cursor()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=60) as client:
        # 1. archive what left (and the old record of a row whose email changed)
        read.execute("SELECT user_id, hs_id, removed FROM ref.diff WHERE removed OR renamed")
        while batch := read.fetchmany(100):
            ids = [{"id": hs_id} for _, hs_id, _ in batch if hs_id]
            if ids:
                client.post(url + ARCHIVE, content=json.dumps({"inputs": ids})).raise_for_status()
            gone = [k for k, _, removed in batch if removed]
            if gone:
                write.execute("DELETE FROM ref.state WHERE user_id IN (SELECT unnest($1::BIGINT[]))", [gone])
        # 2. upsert what is new or changed, recording each acknowledged batch
        read.execute("SELECT user_id, email, first_name, last_name, title, h, added FROM ref.diff WHERE NOT removed")
        while batch := read.fetchmany(100):
            inputs = [upsert_input(e, f, la, t) for _, e, f, la, t, _, _ in batch]
            r = client.post(url + UPSERT, content=json.dumps({"inputs": inputs}, separators=(",", ":")))
            r.raise_for_status()
            ids = {res["properties"]["email"].lower(): res["id"] for res in r.json()["results"]}
            known = [k for k, *_, added in batch if not added]
            write.execute("BEGIN")
            if known:  # a changed row replaces its state row (the first sync has none: no scan)
                write.execute("DELETE FROM ref.state WHERE user_id IN (SELECT unnest($1::BIGINT[]))", [known])
            write.execute(
                """INSERT INTO ref.state SELECT unnest($1::BIGINT[]), unnest($2::VARCHAR[]),
                                 unnest($3::VARCHAR[]), unnest($4::VARCHAR[])""",
                [[b[0] for b in batch], [b[1] for b in batch], [b[5] for b in batch], [ids[b[1].lower()] for b in batch]],
            )
            write.execute("COMMIT")
    con.execute("DROP TABLE ref.diff")
    con.close()


def dlt_sync(db: Path, url: str) -> None:
    """dlt (1.x): the model as a resource, a custom destination (@dlt.destination) POSTing each
    batch of 100 to batch/upsert. dlt has no delivered state for a destination like this (its
    incremental loading needs a cursor column, and sees no deletes): every run sends every row."""
    import dlt

    client = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}, timeout=60)

    @dlt.resource(name="users", write_disposition="append")
    def users() -> Iterator[list[dict[str, Any]]]:
        for batch in source_rows(db):
            yield [{"user_id": k, "email": e, "first_name": f, "last_name": la, "title": t} for k, e, f, la, t in batch]

    @dlt.destination(batch_size=100, name="hubspot", skip_dlt_columns_and_tables=True)
    def hubspot(items: Any, table: Any) -> None:
        inputs = [upsert_input(i["email"], i["first_name"], i["last_name"], i["title"]) for i in items]
        client.post(url + UPSERT, content=json.dumps({"inputs": inputs}, separators=(",", ":"))).raise_for_status()

    pipeline = dlt.pipeline(pipeline_name="peers", destination=hubspot, pipelines_dir=str(db.parent / "dlt"))
    pipeline.run(users())


DRT_SYNC = """
name: contacts
model: "SELECT user_id, email, first_name, last_name, title FROM src.users"
destination:
  type: rest_api
  url: "{url}/crm/v3/objects/contacts/batch/upsert"
  method: POST
  headers: {{Content-Type: application/json, Authorization: "Bearer {token}"}}
  body_mode: batch
  max_records_per_request: 100
  batch_template: |
    {{"inputs": [{{% for row in rows %}}{{"id": {{{{ row.email | tojson }}}}, "idProperty": "email", "properties":
      {{"firstname": {{{{ row.first_name | tojson }}}}, "lastname": {{{{ row.last_name | tojson }}}},
       "jobtitle": {{{{ row.title | tojson }}}}}}}}{{% if not loop.last %}},{{% endif %}}{{% endfor %}}]}}
sync:
  mode: full
  batch_size: 1000
  rate_limit: {{requests_per_second: 100000}}
  on_error: fail
"""


def drt_project(work: Path, db: Path, url: str) -> Path:
    """drt-core (`drt run`): a rest_api destination in batch mode, a Jinja template making each
    request of 100 a HubSpot batch upsert. Its snapshot diff (incremental_strategy: diff) needs a
    Postgres or Snowflake source, and a REST destination has no mirror deletes: on DuckDB every
    run sends every row. The profile lives in $HOME/.drt: HOME is the project directory."""
    root = work / "drt"
    if not root.exists():
        (root / ".drt").mkdir(parents=True)
        (root / "syncs").mkdir()
        (root / "drt_project.yml").write_text("name: peers\nprofile: default\n")
        (root / ".drt" / "profiles.yml").write_text(f"default:\n  type: duckdb\n  database: {db}\n")
        (root / "syncs" / "contacts.yml").write_text(DRT_SYNC.format(url=url, token=TOKEN))
    return root


CHILDREN: dict[str, Callable[[Path, str], None]] = {"floor": floor, "reference": reference, "dlt": dlt_sync}


# ------------------------------------------------------------------ the harness


@dataclass
class Measured:
    seconds: float
    rss_mb: float


@dataclass
class Result:
    full: list[Measured] = field(default_factory=list)
    incr: list[Measured] = field(default_factory=list)
    exact: list[str] = field(default_factory=list)
    note: str = ""


# Children are started by a small launcher process, not by this one. Linux carries a process's
# peak RSS across exec (the kernel keeps the old image's high-water mark in ru_maxrss), so a
# child forked from this harness, which grows with every /__dump it reads, would report the
# harness's size as its own. The launcher is a fresh interpreter with only os/json/subprocess
# loaded (~10 MB): the floor under every figure it reports.
LAUNCHER = r"""
import json, os, subprocess, sys, tempfile, time
for line in sys.stdin:
    job = json.loads(line)
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        proc = subprocess.Popen(job["cmd"], cwd=job["cwd"], env=job["env"], stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        out.seek(0)
        tail = out.read()[-3000:].decode(errors="replace")
    print(json.dumps({"seconds": seconds, "rss_kib": usage.ru_maxrss, "rc": os.waitstatus_to_exitcode(status),
                      "tail": tail}), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Measured:
        """Wall time and peak RSS of one process (os.wait4 in the launcher: that child's own rusage)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, "cwd": str(cwd), "env": env or dict(os.environ)}) + "\n")
        self.proc.stdin.flush()
        done = json.loads(self.proc.stdout.readline())
        if done["rc"]:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done['rc']}):\n{done['tail']}")
        return Measured(done["seconds"], done["rss_kib"] / 1024)  # KiB on Linux

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


LAUNCH: Launcher | None = None


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Measured:
    global LAUNCH
    if LAUNCH is None:
        LAUNCH = Launcher()
    return LAUNCH.run(cmd, cwd, env)


def start_endpoint() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, str(BENCH / "fake_hubspot.py"), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().split()[-1]  # "fake HubSpot on http://127.0.0.1:PORT"
    httpx.get(url + "/__stats", timeout=10).raise_for_status()
    return proc, url


def stop_endpoint(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def contender_cmd(name: str, work: Path, db: Path, url: str, peers_python: str) -> tuple[list[str], dict[str, str] | None]:
    if name == "activation":
        (work / "syncs.yaml").write_text(PROJECT.format(token=TOKEN, url=url, concurrency=os.environ.get("BENCH_CONCURRENCY", "4")))
        return [str(Path(sys.executable).parent / "activation"), "run", "-p", str(work)], None
    if name == "drt":
        root = drt_project(work, db, url)
        env = {**os.environ, "HOME": str(root), "DO_NOT_TRACK": "1"}
        return [str(Path(peers_python).parent / "drt"), "run"], env  # run from `root`: see one_round
    python = peers_python if name == "dlt" else sys.executable
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "WARNING"}
    return [python, str(Path(__file__).resolve()), "--child", name, "--db", str(db), "--url", url], env


def one_round(name: str, template: Path, rows: int, peers_python: str, incremental: bool = True) -> tuple[Measured, Measured | None, str]:
    work = Path(tempfile.mkdtemp(prefix=f"activation-peers-{name}-"))
    db = work / "warehouse.duckdb"
    shutil.copy(template, db)
    proc, url = start_endpoint()
    try:
        cmd, env = contender_cmd(name, work, db, url, peers_python)
        cwd = work / "drt" if name == "drt" else work
        full = run_measured(cmd, cwd, env)
        if not incremental:
            return full, None, ""
        mutate_source(db, rows)
        cmd, env = contender_cmd(name, work, db, url, peers_python)
        incr = run_measured(cmd, cwd, env)
        return full, incr, exactness(db, url)
    finally:
        stop_endpoint(proc)
        shutil.rmtree(work, ignore_errors=True)


def installed(name: str, peers_python: str) -> bool:
    if name not in ("dlt", "drt"):
        return True
    module = {"dlt": "dlt", "drt": "drt.cli.main"}[name]
    return Path(peers_python).exists() and subprocess.run([peers_python, "-c", f"import {module}"], capture_output=True).returncode == 0


def mb(x: float) -> str:
    return f"{x:,.0f} MB"


def table(rows: int, rounds: int, results: dict[str, Result]) -> None:
    med = statistics.median
    floor_rate = rows / med(m.seconds for m in results["floor"].full)
    ref_incr = med(m.seconds for m in results["reference"].incr)
    print(
        f"\n| {rows:,} rows, one fake HubSpot v3 endpoint, {rounds} rounds (median) | first full sync s | rows/s "
        f"(÷ floor) | peak RSS | run after 0.1% changed, 0.05% deleted, 0.05% inserted s (÷ reference) | exact after it |"
    )
    print("|---|---|---|---|---|---|")
    for name in CONTENDERS:
        r = results.get(name)
        if r is None or not r.full:
            print(f"| {name} | {r.note if r else 'skipped'} | | | | |")
            continue
        full, incr = med(m.seconds for m in r.full), med(m.seconds for m in r.incr)
        rss = med(max(a.rss_mb, b.rss_mb) for a, b in zip(r.full, r.incr, strict=True))
        exact = r.exact[0] if len(set(r.exact)) == 1 else " / ".join(r.exact)
        print(
            f"| {name} | {full:.2f} | {rows / full:,.0f} ({rows / full / floor_rate:.2f}×) | {mb(rss)} | "
            f"{incr:.2f} ({incr / ref_incr:.2f}×) | {exact} |"
        )


def growth(sizes: list[int], peers_python: str) -> None:
    """Activation and the floor, first full sync at each size: seconds and peak RSS per million rows."""
    print("\n| rows | contender | first full sync s | s per 1M rows | peak RSS | RSS growth per 1M rows since the last size |")
    print("|---|---|---|---|---|---|")
    last: dict[str, tuple[int, float]] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="activation-peers-src-") as tmp:
            template = Path(tmp) / "source.duckdb"
            make_source(template, n)
            for name in ("floor", "activation"):
                m, _, _ = one_round(name, template, n, peers_python, incremental=False)
                slope = ""
                if name in last:
                    n0, rss0 = last[name]
                    slope = mb((m.rss_mb - rss0) / ((n - n0) / 1e6))
                last[name] = (n, m.rss_mb)
                print(f"| {n:,} | {name} | {m.seconds:.2f} | {m.seconds / (n / 1e6):.1f} | {mb(m.rss_mb)} | {slope} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-peers", action="store_true", help="leave out dlt and drt-core")
    ap.add_argument("--growth", help="comma-separated sizes: activation and the floor at each")
    ap.add_argument(
        "--peers-python",
        default=os.environ.get("BENCH_PEERS_PYTHON", str(BENCH.parent / ".venv-peers/bin/python")),
        help="the interpreter that has dlt and drt-core (bench/requirements-peers.txt)",
    )
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.peers_python = os.path.abspath(args.peers_python)  # the children run elsewhere; not resolve(): a venv's python is a symlink
    if args.child:
        CHILDREN[args.child](args.db, args.url)
        return
    if args.growth:
        growth([int(s) for s in args.growth.split(",")], args.peers_python)
        return

    results: dict[str, Result] = {}
    names = [n for n in CONTENDERS if not (args.skip_peers and n in ("dlt", "drt"))]
    for name in names:
        results[name] = Result()
        if not installed(name, args.peers_python):
            results[name].note = f"not installed (in {args.peers_python}: make bench-peers-venv)"
    with tempfile.TemporaryDirectory(prefix="activation-peers-src-") as tmp:
        template = Path(tmp) / "source.duckdb"
        make_source(template, args.rows)
        for n in range(args.rounds):  # contenders alternate within a round: each sees the same machine load
            for name in names:
                r = results[name]
                if r.note:
                    continue
                try:
                    full, incr, exact = one_round(name, template, args.rows, args.peers_python)
                except (RuntimeError, OSError) as e:
                    r.note = f"failed: {str(e).splitlines()[0][:120]}"
                    print(f"round {n + 1}: {name} {e}", file=sys.stderr, flush=True)
                    continue
                assert incr is not None
                r.full.append(full)
                r.incr.append(incr)
                r.exact.append(exact)
                print(
                    f"round {n + 1}: {name}: full {full.seconds:.2f} s ({args.rows / full.seconds:,.0f} rows/s, "
                    f"{mb(full.rss_mb)}), incremental {incr.seconds:.2f} s ({mb(incr.rss_mb)}), exact: {exact}",
                    flush=True,
                )
    table(args.rows, args.rounds, results)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
