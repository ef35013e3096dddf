"""Unavailable: the warehouse or the state store cannot be used right now, said plainly.

Another process or session holds what a command needs: a DuckDB file (DuckDB lets one
process at a time open a file for writing), a Postgres table locked past `state.lock_timeout`,
a statement past `state.statement_timeout`, a server that does not answer. The driver's own
words ("Could not set lock on file …", "canceling statement due to lock timeout") say neither
who holds it nor what to do; `explain_errors` installs a hook on an engine that raises this
instead, naming the holder (its PID and command line, or its Postgres backend) and the way out.

It is transient: retry. Nothing is lost: a run commits each acknowledged batch, and what it
sent without recording is in the in-flight journal, re-checked by the next run. The CLI exits
3 on it. It is a SQLAlchemy OperationalError, so code that handles database errors (the
daemon's cycle) handles it too.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from activation.project.secrets import redact

Role = Literal["warehouse", "state store"]


class Unavailable(sa.exc.OperationalError):
    """The warehouse or the state store is held by someone else or unreachable; retry."""

    def __init__(self, message: str, statement: str | None = None, params: Any = None, orig: BaseException | None = None) -> None:
        super().__init__(statement, params, orig or Exception(message))
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:  # picklable with its message (SQLAlchemy's own takes other arguments)
        return (self.__class__, (self.message,))


def explain_errors(engine: Engine, role: Role, *, timeouts: tuple[float, float] | None = None) -> None:
    """Raise `Unavailable` instead of the driver's error when `engine` cannot be used now.

    `timeouts`: the Postgres lock and statement timeouts set from `state.lock_timeout` and
    `state.statement_timeout`, for the message to name; None: the server's own settings.
    """

    @sa.event.listens_for(engine, "handle_error")
    def _explain(ctx: sa.engine.ExceptionContext) -> BaseException | None:
        if ctx.is_pre_ping or getattr(_busy, "on", False):  # the pool reconnects; the holder's lookup failed
            return None
        orig = ctx.original_exception
        text = str(orig)
        message = None
        if engine.dialect.name == "duckdb":
            message = _duckdb_lock(text, role)
        elif engine.dialect.name == "postgresql":
            message = _postgres(ctx, role, timeouts)
        if message is None:
            return None
        return Unavailable(redact(message), ctx.statement, ctx.parameters, orig)


_busy = threading.local()

# "Could not set lock on file "/p/warehouse.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 2616)"
_DUCKDB_LOCK = re.compile(r'Could not set lock on file "(?P<file>[^"]+)"(?:.*?\(PID (?P<pid>\d+)\))?', re.S)


def _duckdb_lock(text: str, role: Role) -> str | None:
    m = _DUCKDB_LOCK.search(text)
    if m is None:
        return None
    what = "warehouse file" if role == "warehouse" else "state store's file"
    holder = f"process {_process(int(m['pid']))}" if m["pid"] else "another process"
    return (
        f"the {what} {m['file']} is in use by {holder}. DuckDB lets one process at a time open a file for "
        f"writing (or several read-only): wait for that process to finish (or close it), then retry. To run "
        f"commands while a run or a daemon works, keep the state in Postgres (state.url) or use Postgres as "
        f'the warehouse: see the README\'s "DuckDB and concurrent processes".'
    )


def _process(pid: int) -> str:
    """`PID 2616 (activation run --project …)`: the command line when this machine shows it."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return f"PID {pid}"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return f"PID {pid}"
    words[0] = Path(words[0]).name  # `python3.11 -m activation.cli run …`, not the interpreter's path
    line = " ".join(" ".join(words).split())  # one line, even for `python -c "…"`
    return f"PID {pid} ({line[:200] + '…' if len(line) > 200 else line})"


# ---------------------------------------------------------------- Postgres

_LOCK_TIMEOUT, _QUERY_CANCELED = "55P03", "57014"
# Relation lock modes that make a reader (ACCESS SHARE) or a writer (ROW EXCLUSIVE) wait.
_BLOCKING_MODES = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
_TABLE_IN_SQL = re.compile(r'\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+((?:"?[\w$]+"?\.)?"?[\w$]+"?)', re.I)
_UNREACHABLE = re.compile(
    r"connection refused|could not connect|timeout expired|server closed the connection|"
    r"no route to host|name or service not known|the database system is (starting up|shutting down)",
    re.I,
)


def _postgres(ctx: sa.engine.ExceptionContext, role: Role, timeouts: tuple[float, float] | None) -> str | None:
    orig = ctx.original_exception
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    words = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    lost = "Nothing was lost: acknowledged rows are recorded, and what was sent without being recorded is re-checked by the next run."
    if code == _LOCK_TIMEOUT:
        waited = f"state.lock_timeout ({timeouts[0]:g}s)" if timeouts else "the server's lock_timeout"
        return f"{_locked(ctx, role)}; the command waited {waited} for it. {lost} Retry once that session has ended."
    if code == _QUERY_CANCELED and "statement timeout" in str(orig):
        limit = f"state.statement_timeout ({timeouts[1]:g}s)" if timeouts else "the server's statement_timeout"
        raise_it = " (or raise state.statement_timeout)" if timeouts else ""
        return (
            f"a statement on the {role} ran longer than {limit}: the database may be overloaded, or the "
            f"table locked or very large. {lost} Retry{raise_it}."
        )
    if ctx.connection is None and (code is None or code.startswith(("08", "57P"))) and _UNREACHABLE.search(str(orig)):
        return f"cannot connect to the {role} ({words}). {lost} Retry once it is reachable."
    return None


def _locked(ctx: sa.engine.ExceptionContext, role: Role) -> str:
    """`the state store's table s.delivered is locked by another session (pid 4321 …)`, from pg_locks."""
    statement = ctx.statement or ""
    named = _TABLE_IN_SQL.search(statement)
    holders = _lock_holders(ctx.engine, statement) if ctx.engine is not None else []
    whose = "the warehouse's" if role == "warehouse" else "the state store's"
    if holders:
        h = holders[0]
        who = (
            f"pid {h['pid']}"
            + (f", {h['application_name']!r}" if h["application_name"] else "")
            + (f", {h['state']}" if h["state"] else "")
        )
        how = f"holds {h['mode']}" if h["granted"] else f"waits for {h['mode']}, and this command's statement queued behind it"
        more = f" and {len(holders) - 1} more" if len(holders) > 1 else ""
        return f"{whose} table {h['nspname']}.{h['relname']} is locked by another session ({who}; {how}){more}"
    if named:
        return f"{whose} table {named.group(1).replace(chr(34), '')} is locked by another session (see pg_locks and pg_stat_activity)"
    return f"a lock the {role} needs is held by another session (see pg_locks and pg_stat_activity)"


def _lock_holders(engine: Engine, statement: str) -> list[dict[str, Any]]:
    """Other sessions' blocking locks on the tables `statement` names (on any, without a statement)."""
    query = sa.text(
        "SELECT l.pid, l.mode, l.granted, n.nspname, c.relname, a.application_name, a.state, "
        "n.nspname = ANY(current_schemas(false)) AS on_path "
        "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid() AND l.mode IN :modes "
        "ORDER BY l.granted DESC, l.pid"
    ).bindparams(sa.bindparam("modes", expanding=True))
    _busy.on = True
    try:
        with engine.connect() as c:
            c.exec_driver_sql("SET LOCAL statement_timeout = 5000")
            rows = [dict(r._mapping) for r in c.execute(query, {"modes": list(_BLOCKING_MODES)})]
    except Exception:  # the lookup is a courtesy: the message stands without it
        return []
    finally:
        _busy.on = False
    if not statement:
        return rows
    # by its qualified name, or unqualified when its schema is on the search path: another
    # schema's table of the same name (another project's state) is not this one
    return [
        r
        for r in rows
        if re.search(rf'"?{re.escape(r["nspname"])}"?\."?{re.escape(r["relname"])}\b', statement, re.I)
        or (r["on_path"] and re.search(rf'(?<![\w."]){re.escape(r["relname"])}\b', statement, re.I))
    ]
