"""Postgres standing in for Amazon Redshift (tests, benches): what makes it one, what it cannot.

Redshift grew from Postgres 8 and speaks its protocol, so the Redshift engine
(sqlalchemy-redshift over Amazon's redshift_connector) runs against a local Postgres. But
Postgres accepts much that Redshift refuses, lacks functions Redshift has, and refuses what
redshift_connector says when it connects. So:

- `RedshiftEndpoint` is a Redshift endpoint in front of the Postgres server, over TCP: it
  answers the driver's SSL request with "no" (connect with `sslmode: disable`), passes on the
  start-up parameters Postgres knows (redshift_connector also sends client_protocol_version,
  driver_version, os_version…, which Postgres refuses with a FATAL), says the server version
  as Redshift does (8.0.2: the driver parses it, and chokes on "15.20 (Debian …)"), then
  relays the connection byte for byte.

- `prepare(engine)` gives the Postgres database the Redshift functions activation's SQL uses,
  with Redshift's meaning: `OBJECT(k1, v1, …)` (a SUPER object; here json) and
  `JSON_SERIALIZE(super)` (its JSON text; built into Postgres 17 and later).
- `RedshiftGuard` refuses, before Postgres sees it, every statement a Redshift-dialect
  connection sends that sqlglot cannot read as Redshift SQL, or that uses what Redshift does
  not have (its documented "unsupported
  PostgreSQL features" among them): arrays, ON CONFLICT, Postgres's JSON functions,
  COLLATE "C", indexes, temporary views, advisory locks, IS DISTINCT FROM, a bare VARCHAR or
  TEXT cast (256 characters on Redshift, cutting longer values)… It also keeps every
  statement, so a test can check what was sent.

What this cannot prove: Redshift's serializable isolation (its conflicts fail a transaction
Postgres would let through), VARCHAR lengths counted in bytes, SUPER's own type rules beyond
the functions above, distribution and sort keys, COPY/UNLOAD, a case-insensitive database's
collation, and speed.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

#: (pattern, what Redshift says or lacks): matched against a statement without its literals
UNSUPPORTED: list[tuple[str, str]] = [
    (r"\bON\s+CONFLICT\b", "INSERT … ON CONFLICT (Redshift has no upsert clause)"),
    (r"\bANY\s*\(|\bARRAY\s*\[|\[\s*\]|\bunnest\s*\(", "arrays (Redshift has no array type)"),
    (
        r"\bjson_(build_\w+|agg|object_agg|array_elements\w*|each\w*|populate_\w+|to_record\w*|strip_nulls)\s*\("
        r"|\bjsonb_\w+\s*\(|\bto_jsonb?\s*\(|::\s*jsonb?\b|\bAS\s+jsonb?\b",
        "Postgres's JSON functions and types (Redshift's: JSON_PARSE, JSON_SERIALIZE, OBJECT…)",
    ),
    (r"\bCOLLATE\s+\"", "COLLATE \"…\" (Redshift: COLLATE(expr, 'case_sensitive'))"),
    (r"\bto_regclass\s*\(", "to_regclass()"),
    (r"\bpg_advisory\w*\s*\(", "advisory locks"),
    (r"\bclock_timestamp\s*\(", "clock_timestamp()"),
    (r"\bCREATE\s+(UNIQUE\s+)?INDEX\b", "CREATE INDEX (Redshift has no indexes)"),
    (r"\bCREATE\s+(OR\s+REPLACE\s+)?TEMP(ORARY)?\s+VIEW\b", "temporary views"),
    (r"\bRETURNING\b", "RETURNING"),
    (r"\bFILTER\s*\(\s*WHERE\b", "aggregate FILTER (WHERE …)"),
    (r"\bIS\s+(NOT\s+)?DISTINCT\s+FROM\b", "IS [NOT] DISTINCT FROM"),
    (r"\bDISTINCT\s+ON\b", "DISTINCT ON"),
    (r"\bLATERAL\b", "LATERAL"),
    (r"\b(SERIAL|BIGSERIAL)\b|\bGENERATED\s+(ALWAYS|BY)\b", "serial and generated columns (Redshift: IDENTITY)"),
    (r"\bstring_agg\s*\(|\bgenerate_series\s*\(", "string_agg / generate_series"),
    (
        r"\bAS\s+(TEXT|VARCHAR|CHARACTER\s+VARYING)\s*\)|::\s*(TEXT|VARCHAR)\b(?!\s*\()",
        "a VARCHAR/TEXT cast without a length (256 on Redshift)",
    ),
]
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NULL_CAST = re.compile(r"CAST\s*\(\s*NULL\s+AS\s+VARCHAR\s*\)", re.I)  # nothing to cut


#: the start-up parameters Postgres knows, of those a driver sends; the rest are Redshift's
_STARTUP_KEPT = {b"user", b"database", b"application_name", b"options", b"client_encoding", b"DateStyle", b"TimeZone"}
_SSL_REQUEST = 80877103


class RedshiftEndpoint:
    """A local Redshift endpoint (see the module's note) relaying to Postgres at `upstream`."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, name="redshift-endpoint", daemon=True).start()

    def url(self, user: str = "postgres", database: str = "test", password: str = "x") -> str:
        return f"redshift+redshift_connector://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> RedshiftEndpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            self.connections += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        for s in (client, upstream):  # a query is several small writes: no Nagle delay between them
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if not self._start(client, upstream):
                return
        except (OSError, EOFError):
            client.close()
            upstream.close()
            return
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        _pipe(upstream, client)

    def _start(self, client: socket.socket, upstream: socket.socket) -> bool:
        """The start-up exchange, message by message, until the server is ready (or refuses)."""
        while True:
            (length,) = struct.unpack("!i", _read(client, 4))
            body = _read(client, length - 4)
            (protocol,) = struct.unpack("!i", body[:4])
            if protocol != _SSL_REQUEST:
                break
            client.sendall(b"N")  # no TLS here
        fields = body[4:].split(b"\0")
        kept = b"".join(k + b"\0" + v + b"\0" for k, v in zip(fields[0::2], fields[1::2], strict=False) if k in _STARTUP_KEPT)
        upstream.sendall(struct.pack("!ii", len(kept) + 9, protocol) + kept + b"\0")
        while True:  # authentication, parameters, ready: the server version said as Redshift says it
            kind = _read(upstream, 1)
            (length,) = struct.unpack("!i", _read(upstream, 4))
            message = _read(upstream, length - 4)
            if kind == b"S" and message.startswith(b"server_version\0"):
                message = b"server_version\x008.0.2\0"
            client.sendall(kind + struct.pack("!i", len(message) + 4) + message)
            if kind == b"Z":
                return True
            if kind == b"E":
                return False
            if kind == b"R" and struct.unpack("!i", message[:4])[0] in (3, 5, 10, 11):  # a password (round) asked for
                head = _read(client, 5)
                upstream.sendall(head + _read(client, struct.unpack("!i", head[1:])[0] - 4))


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class NotRedshift(Exception):
    """A statement Redshift would refuse."""


def prepare(engine: sa.Engine) -> None:
    """Create Redshift's functions that Postgres lacks (idempotent; needs a superuser, for
    OBJECT is Postgres's own json_build_object under Redshift's name)."""
    with engine.begin() as c:
        c.execute(
            sa.text(
                "CREATE OR REPLACE FUNCTION public.object(VARIADIC \"any\") RETURNS json LANGUAGE internal STABLE AS 'json_build_object'"
            )
        )
        if int(c.execute(sa.text("SHOW server_version_num")).scalar_one()) < 170000:
            c.execute(
                sa.text(
                    "CREATE OR REPLACE FUNCTION public.json_serialize(json) RETURNS varchar LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'"
                )
            )


#: sqlglot nodes of what Redshift does not have (read as Redshift SQL by sqlglot's dialect)
_NODES: list[tuple[type[exp.Expr], str]] = [
    (exp.OnConflict, "INSERT … ON CONFLICT (Redshift has no upsert clause)"),
    (exp.Any, "arrays (Redshift has no array type)"),
    (exp.Array, "arrays (Redshift has no array type)"),
    (exp.Unnest, "arrays (Redshift has no array type)"),
]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")


def problems(statement: str) -> list[str]:
    """What in `statement` Redshift does not have (empty: nothing found): the statement must
    parse as Redshift SQL (sqlglot's dialect), and neither its syntax tree nor its text
    (literals left out) may use what UNSUPPORTED and _NODES list."""
    text = _NULL_CAST.sub("NULL", _LITERAL.sub("''", statement))
    found = [what for pattern, what in UNSUPPORTED if re.search(pattern, text, re.I)]
    try:
        trees = sqlglot.parse(_PLACEHOLDER.sub(lambda m: f":{m[1] or 'p'}", statement), read="redshift")
    except sqlglot.errors.SqlglotError as e:
        return [*found, f"SQL that sqlglot cannot read as Redshift's ({e})"]
    for tree in trees:
        for node, what in _NODES:
            if tree is not None and tree.find(node) is not None and what not in found:
                found.append(what)
    return found


@dataclass
class RedshiftGuard:
    """While entered, every statement on a connection of the `redshift` dialect is checked
    (raising NotRedshift) and kept in `statements`."""

    statements: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if conn.dialect.name != "redshift":
            return
        with self._lock:
            self.statements.append(statement)
        if found := problems(statement):
            raise NotRedshift(f"Redshift does not have {'; '.join(found)}:\n{statement}")

    def __enter__(self) -> RedshiftGuard:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._check)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self._check)
