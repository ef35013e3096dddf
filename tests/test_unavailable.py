"""A warehouse or state store held by someone else fails the command at once (or after
`state.lock_timeout`), naming the holder and what to do, with exit 3; with `--json` stdout
is always one JSON document. Real processes and real databases throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import PG_URL, Project, make_project, postgres_or_skip
from held_receiver import HeldReceiver, drop_schemas, finish, postgres_project, spawn

UNAVAILABLE = 3


# ---------------------------------------------------------------- Postgres: a locked state table


class TableLocker:
    """Another session taking `LOCK TABLE … IN ACCESS EXCLUSIVE MODE` (in a thread: it may
    have to queue behind a run's read), holding it until `release()`."""

    def __init__(self, engine: sa.Engine, table: str) -> None:
        self.engine, self.table = engine, table
        self.pid: int | None = None
        self.started, self.locked, self._release = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with self.engine.connect() as c:
            self.pid = c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            self.started.set()
            c.execute(sa.text(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE"))
            self.locked.set()
            self._release.wait()
            c.rollback()

    def start(self) -> TableLocker:
        self._thread.start()
        assert self.started.wait(60)
        watch = sa.text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND relation = to_regclass(:table)")
        with self.engine.connect() as c:  # until the lock is held or queued: the condition, not a guess of time
            while not c.execute(watch, {"pid": self.pid, "table": self.table}).scalar_one():
                c.rollback()
                time.sleep(0.02)
        return self

    def release(self) -> None:
        self._release.set()
        self._thread.join(60)


@pytest.mark.parametrize("where,as_json", [("state in Postgres, DuckDB warehouse", False), ("state in the Postgres warehouse", True)])
def test_a_locked_state_table_fails_the_run_clearly_and_nothing_is_lost(tmp_path: Path, where: str, as_json: bool) -> None:
    engine = postgres_or_skip()
    tag = uuid.uuid4().hex[:8]
    try:
        with HeldReceiver() as rx:
            if where.endswith("DuckDB warehouse"):
                p = make_project(tmp_path / "p", rx, state=f"state: {{url: '{PG_URL}', schema: state_{tag}, lock_timeout: 1s}}")
                change = p.sql
            else:
                p = postgres_project(tmp_path / "p", rx, engine, tag, state=f"state: {{schema: state_{tag}, lock_timeout: 1s}}")

                def change(statement: str) -> None:
                    p.sql(statement)  # the DuckDB copy: the oracle of model_users()
                    with engine.begin() as c:
                        c.execute(sa.text(statement.replace("src.", f"src_{tag}.")))

            p.cli("run", "users_to_hook")
            change("UPDATE src.users SET plan = plan || '_v2'")  # four batches of changes to push

            rx.hold()
            child = spawn(p, "run", "users_to_hook", *(["--json"] if as_json else []))
            assert rx.arrived.wait(120), finish(child)  # a batch is out; the next commit comes once it returns
            locker = TableLocker(engine, f"state_{tag}.delivered").start()
            rx.release()
            code, out, err = finish(child)  # ends on state.lock_timeout, not when the lock is released
            assert code == UNAVAILABLE, (out, err)
            said = json.loads(out)["errors"][0] if as_json else err
            assert f"state_{tag}.delivered is locked by another session (pid {locker.pid}" in " ".join(said.split()), said
            assert "Nothing was lost" in said and "Traceback" not in err and "LockNotAvailable" not in said
            assert locker.locked.wait(60), "the run's connections were closed when it failed"
            locker.release()

            run = p.json("history", "users_to_hook")["runs"][0]
            assert run["status"] == "aborted" and "is locked by another session" in run["error"]
            assert p.json("run", "users_to_hook")["ok"] is True
            assert rx.records("users_to_hook") == p.model_users()  # exact: nothing lost, nothing stale
            assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date"
    finally:
        drop_schemas(engine, tag)
        engine.dispose()


@pytest.mark.parametrize(
    "timeouts,said",
    [
        (
            "lock_timeout: 1s",
            "state_{tag}.delivered is locked by another session (pid {pid}, idle in transaction; holds "
            "AccessExclusiveLock); the command waited state.lock_timeout (1s)",
        ),
        ("lock_timeout: 0, statement_timeout: 1s", "ran longer than state.statement_timeout (1s)"),
    ],
)
def test_reads_of_a_locked_state_table_end_too(tmp_path: Path, rx: HeldReceiver, timeouts: str, said: str) -> None:
    """`status` (a read) waits for an exclusive lock like a run's write does: it ends on
    state.lock_timeout, or on state.statement_timeout when it would wait forever for locks.
    The session named is the one holding this state's table, not one holding another
    schema's table of the same name."""
    engine = postgres_or_skip()
    tag = uuid.uuid4().hex[:8]
    try:
        p = make_project(tmp_path / "p", rx, state=f"state: {{url: '{PG_URL}', schema: state_{tag}, {timeouts}}}")
        p.cli("run", "whales_to_hook")
        with engine.begin() as c:
            c.execute(sa.text(f"CREATE SCHEMA src_{tag}"))  # another schema with a table of the same name
            c.execute(sa.text(f"CREATE TABLE src_{tag}.delivered (x INTEGER)"))
        decoy = TableLocker(engine, f"src_{tag}.delivered").start()
        locker = TableLocker(engine, f"state_{tag}.delivered").start()
        try:
            assert locker.locked.wait(60) and decoy.locked.wait(60)
            code, out, err = finish(spawn(p, "status", "--json"))
        finally:
            locker.release()
            decoy.release()
        assert code == UNAVAILABLE, err
        assert said.format(pid=locker.pid, tag=tag) in json.loads(out)["errors"][0]
        p.cli("status")
    finally:
        drop_schemas(engine, tag)
        engine.dispose()


def test_the_state_store_has_its_timeouts_and_the_warehouse_none(tmp_path: Path) -> None:
    """The state's connections carry state.lock_timeout and state.statement_timeout, even in
    the warehouse's own database; the warehouse's (model queries) keep the server's settings."""
    from activation.project.loader import load_project
    from activation.session import Session

    engine = postgres_or_skip()
    tag = uuid.uuid4().hex[:8]
    try:
        with HeldReceiver() as rx:
            p = postgres_project(
                tmp_path / "p", rx, engine, tag, state=f"state: {{schema: state_{tag}, lock_timeout: 2s, statement_timeout: 90s}}"
            )
            with engine.connect() as c:
                server = (c.execute(sa.text("SHOW lock_timeout")).scalar(), c.execute(sa.text("SHOW statement_timeout")).scalar())
            with Session(load_project(p.root), dry_run=True) as s, s.state.engine.connect() as c:
                assert c.execute(sa.text("SHOW lock_timeout")).scalar() == "2s"
                assert c.execute(sa.text("SHOW statement_timeout")).scalar() == "90s"
                assert (
                    s.conn.execute(sa.text("SHOW lock_timeout")).scalar(),
                    s.conn.execute(sa.text("SHOW statement_timeout")).scalar(),
                ) == server
                assert type(s.differ).__name__ == "SqlDiffer", "the diff still runs in the warehouse"
    finally:
        drop_schemas(engine, tag)
        engine.dispose()


# ---------------------------------------------------------------- DuckDB: one process per file


def test_a_second_process_on_a_duckdb_file_in_use_is_told_who_holds_it(tmp_path: Path) -> None:
    with HeldReceiver() as rx:
        p = make_project(tmp_path / "p", rx)
        rx.hold()
        first = spawn(p, "run", "users_to_hook")
        assert rx.arrived.wait(120), finish(first)  # it holds the warehouse file, mid-run
        for command in (["run"], ["status"], ["plan"]):
            code, out, err = finish(spawn(p, *command))
            said = " ".join(err.split())
            assert code == UNAVAILABLE, (command, out, err)
            assert f"is in use by process PID {first.pid} (" in said and "activation.cli run users_to_hook" in said, said
            assert "DuckDB and concurrent processes" in said and "IOException" not in said and "Traceback" not in said
            code, out, err = finish(spawn(p, *command, "--json"))
            assert code == UNAVAILABLE, (command, out, err)
            doc = json.loads(out)
            assert doc["ok"] is False and f"PID {first.pid}" in doc["errors"][0]
        rx.release()
        code, out, err = finish(first)
        assert code == 0, err  # the first run was not disturbed
        assert rx.records("users_to_hook") == p.model_users()


# ---------------------------------------------------------------- --json on every failure path


JSON_COMMANDS = [
    ["validate", "--json"],
    ["lint", "--json"],
    ["plan", "--json"],
    ["plan", "--format", "json"],
    ["plan", "--base", "HEAD", "--json"],
    ["run", "--json"],
    ["run", "--dry-run", "--json"],
    ["status", "--json"],
    ["history", "users_to_hook", "--json"],
]


def in_git(root: Path) -> None:
    """A git repository with the project committed: what `plan --base HEAD` reviews."""
    for git in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"]):
        subprocess.run(["git", *git], cwd=root, check=True)


@pytest.fixture
def locked_project(tmp_path: Path, rx: HeldReceiver) -> Iterator[Project]:
    """A project in a git repository (for `plan --base`) whose warehouse file another process holds."""
    p = make_project(tmp_path / "p", rx)
    in_git(p.root)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            str(p.warehouse),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "open\n"
    yield p
    holder.communicate("")  # end of stdin: it closes the file and ends


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=[" ".join(c) for c in JSON_COMMANDS])
def test_json_is_printed_when_the_warehouse_file_is_locked(locked_project: Project, command: list[str]) -> None:
    code, out, err = finish(spawn(locked_project, *command))
    doc = json.loads(out)  # exactly one JSON document
    assert doc["ok"] is False and "is in use by process PID" in doc["errors"][0], doc
    assert code == UNAVAILABLE, err
    text = [c for c in command if c not in ("--json", "--format", "json")]
    assert finish(spawn(locked_project, *text))[0] == code, "the same exit code as in text mode"


@pytest.mark.parametrize("command", [c for c in JSON_COMMANDS if c[0] in ("plan", "run", "status", "history")], ids=lambda c: " ".join(c))
def test_json_is_printed_when_the_state_store_is_unreachable(tmp_path: Path, rx: HeldReceiver, command: list[str]) -> None:
    p = make_project(tmp_path / "p", rx, state="state: {url: 'postgresql://postgres@127.0.0.1:1/test'}")  # nothing listens there
    in_git(p.root)
    code, out, err = finish(spawn(p, *command))
    doc = json.loads(out)
    assert doc["ok"] is False and "cannot connect to the state store" in doc["errors"][0], doc
    assert code == UNAVAILABLE, err


def test_json_is_printed_on_an_unexpected_error_too(project: Project) -> None:
    """A state store newer than this activation (a real StateError, no seam replaced): text on
    stderr and exit 1, or one JSON document and exit 1."""
    project.cli("run", "whales_to_hook")
    project.sql("INSERT INTO activation_state.schema_version VALUES (99, now())")
    code, out, err = finish(spawn(project, "run", "--json"))
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and "schema version 99" in doc["errors"][0], doc
    code, out, err = finish(spawn(project, "run"))
    assert code == 1 and out == "" and "schema version 99" in err


@pytest.fixture
def rx() -> Iterator[HeldReceiver]:
    with HeldReceiver() as receiver:
        yield receiver
