"""`SalesforceEmulator`: a real local HTTP server speaking the Salesforce REST API subset.

Runs a stdlib `ThreadingHTTPServer` in a background thread (127.0.0.1, port 0, HTTP/1.1
keep-alive, TCP_NODELAY). One lock guards all state; injected delays sleep outside it.
Every request under ``/services/data`` is authenticated (Bearer session token), counted
against the daily API quota and answered with ``Sforce-Limit-Info: api-usage=N/LIMIT``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before

from . import auth, rest
from .bulk import BulkIngest
from .schema import Field, SObjectType, default_sobjects, make_id, make_sobject
from .store import RecordError, Store, parse_json_record
from .wire import Reply, Request, error_reply, json_reply, not_found

API_VERSION = "59.0"
DEFAULT_INSTANCE = "emulated.my.salesforce.com"
DEFAULT_TOKEN = "00DEm0000000001!AQEmulatedSessionToken"
DEFAULT_USER = ("integration@example.com", "password", "SECURITYTOKEN")
DEFAULT_APP = ("emulated-consumer-key", "emulated-consumer-secret")
_DATA = re.compile(r"^/services/data(?:/v(\d+\.\d+))?(/.*)?$")
_SOAP = re.compile(r"^/services/Soap/u/(\d+\.\d+)")


@dataclass(frozen=True)
class Logged:
    """One request as received; `status` is None when the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    host: str
    headers: dict[str, str]
    body: Any
    status: int | None


@dataclass
class _Fault:
    kind: str  # "fail" | "limit" | "drop"
    status: int
    match: str | None  # only requests whose path contains this


class _Server(QuietHTTPServer):
    owner: SalesforceEmulator


def _fault_body(status: int) -> tuple[bytes, str]:
    """Salesforce's error shape for an injected status (401: an expired session)."""
    code = {401: "INVALID_SESSION_ID", 429: "REQUEST_LIMIT_EXCEEDED"}.get(status, "SERVER_UNAVAILABLE")
    return json.dumps([{"errorCode": code, "message": f"injected HTTP {status}"}]).encode(), "application/json"


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        path, _, qs = self.path.partition("?")
        req = Request(
            self.command,
            path,
            dict(parse_qsl(qs, keep_blank_values=True)),
            {k.lower(): v for k, v in self.headers.items()},
            self.read_body(),
        )
        owner = self.server.owner
        fault = owner.faults.take(self.command, path)
        if serve_before(self, fault, _fault_body):
            return
        reply = owner._handle(req)
        if reply is None:  # injected drop: hang up without an answer
            self.close_connection = True
            return
        if fault is not None:
            serve_after(self, fault, reply.status, reply.body, reply.content_type or "application/json", reply.headers)
            return
        self.send_response(reply.status)
        if reply.body or reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type or "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class SalesforceEmulator(BackgroundServer):
    """``with SalesforceEmulator() as emu:`` then talk to it through `emulator_session(emu)`."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        instance: str = DEFAULT_INSTANCE,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        api_limit: int = 15000,
        keep_requests: bool = True,
        verbose: bool = False,
    ) -> None:
        self.host, self.port, self.instance = host, port, instance
        self.keep_requests, self.verbose = keep_requests, verbose
        #: Report unknown fields / unreadable values per record instead of a 400 for the request.
        self.field_errors_per_record = False
        #: external id or record Id (lower-case) -> writes still to refuse (lock_rows)
        self.locked_rows: dict[str, list[int]] = {}  # value -> [writes to let through, writes to refuse]
        self.org_id, self.user_id = make_id("00D", 1), make_id("005", 1)
        self.users: dict[str, tuple[str, str]] = {DEFAULT_USER[0]: DEFAULT_USER[1:]}
        self.connected_apps: dict[str, str] = {DEFAULT_APP[0]: DEFAULT_APP[1]}
        self._initial_tokens = tuple(tokens)
        self._api_limit = api_limit
        self._lock = threading.RLock()
        #: Generic faults (see activation_emulators.faults), checked before the ones below.
        self.faults = FaultInjector()
        self.schema: dict[str, SObjectType] = {s.name: s for s in default_sobjects()}
        self.reset()

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        """A currently valid session token (the first configured one, or a new one)."""
        with self._lock:
            return next(iter(self._sessions), None) or self.new_session()

    def reset(self) -> None:
        """Forget records, jobs, the request log, faults, API usage and sessions (keeps schema)."""
        with self._lock:
            self.store = Store(self.schema)
            self.bulk = BulkIngest(self.store, self.user_id)
            self._sessions: dict[str, None] = dict.fromkeys(self._initial_tokens)
            self._session_seq = 0
            self._log: list[Logged] = []
            self._request_count = 0
            self._api_used = 0
            self._faults: list[_Fault] = []
            self._delay, self._delay_times = 0.0, None

    # ------------------------------------------------------------ configuration

    def add_sobject(
        self,
        name: str,
        fields: Iterable[Field | dict[str, Any] | str] = (),
        *,
        key_prefix: str | None = None,
        label: str | None = None,
        name_field: bool = True,
    ) -> SObjectType:
        """Define a custom object; fields are `Field`s, dicts of Field arguments, or names
        (string fields). A text `Name` (required, as on a real custom object) is added unless
        `name_field=False` or `fields` defines one."""
        specs = [f if isinstance(f, Field) else Field(**f) if isinstance(f, dict) else Field(f) for f in fields]
        if name_field and not any(f.name == "Name" for f in specs):
            specs.insert(0, Field("Name", required=True, length=80, label=f"{name} Name"))
        with self._lock:
            used = {s.key_prefix for s in self.schema.values()}
            prefix = key_prefix or next(f"a{n:02d}" for n in range(100) if f"a{n:02d}" not in used)
            sot = make_sobject(name, specs, prefix, label=label or "", custom=name.endswith("__c"))
            self.schema[name] = sot
            return sot

    def add_field(self, sobject: str, field: Field) -> None:
        with self._lock:
            self.schema[sobject].add_field(field)

    def add_user(self, username: str, password: str, security_token: str = "") -> None:
        with self._lock:
            self.users[username] = (password, security_token)

    def add_connected_app(self, consumer_key: str, consumer_secret: str) -> None:
        with self._lock:
            self.connected_apps[consumer_key] = consumer_secret

    def new_session(self) -> str:
        """Issue a new valid session token (what a login returns)."""
        with self._lock:
            self._session_seq += 1
            token = f"{self.org_id[:15]}!AQEm.session.{self._session_seq}.{time.time_ns() % 10**9}"
            self._sessions[token] = None
            return token

    def expire_sessions(self) -> None:
        """Invalidate every current token: the next API call answers 401 INVALID_SESSION_ID."""
        with self._lock:
            self._sessions.clear()

    @property
    def bulk_processing_delay(self) -> float:
        return self.bulk.processing_delay

    @bulk_processing_delay.setter
    def bulk_processing_delay(self, seconds: float) -> None:
        """Seconds a closed Bulk 2.0 job stays InProgress before it is processed."""
        with self._lock:
            self.bulk.processing_delay = seconds

    @property
    def api_usage(self) -> tuple[int, int]:
        with self._lock:
            return self._api_used, self._api_limit

    def set_api_usage(self, used: int | None = None, limit: int | None = None) -> None:
        """Set the daily API counter and/or quota (used >= limit → 403 REQUEST_LIMIT_EXCEEDED)."""
        with self._lock:
            self._api_used = self._api_used if used is None else used
            self._api_limit = self._api_limit if limit is None else limit

    # ------------------------------------------------------------ faults

    def fail_next(self, n: int = 1, status: int = 500, match: str | None = None) -> None:
        """Answer the next `n` requests (whose path contains `match`) with a 5xx error."""
        with self._lock:
            self._faults += [_Fault("fail", status, match) for _ in range(n)]

    def limit_next(self, n: int = 1, match: str | None = None) -> None:
        """Answer the next `n` API requests with 403 REQUEST_LIMIT_EXCEEDED for too many long
        requests at once (it passes in seconds; the daily quota says "TotalRequests": see
        `set_api_usage`)."""
        with self._lock:
            self._faults += [_Fault("limit", 403, match) for _ in range(n)]

    def drop_next(self, n: int = 1, match: str | None = None) -> None:
        """Close the connection of the next `n` requests without answering."""
        with self._lock:
            self._faults += [_Fault("drop", 0, match) for _ in range(n)]

    def delay(self, seconds: float, times: int | None = None) -> None:
        """Wait `seconds` before answering (the next `times` requests, or all)."""
        with self._lock:
            self._delay, self._delay_times = seconds, times

    def lock_rows(self, value: str, n: int = 1, after: int = 0) -> None:
        """After `after` more collection writes of the record whose external id (or Id) is
        `value`, the next `n` fail with UNABLE_TO_LOCK_ROW, Salesforce's usual per-record
        transient error (another transaction holds the record or its parent)."""
        with self._lock:
            self.locked_rows[value.lower()] = [after, n]

    def take_row_lock(self, value: Any) -> bool:
        with self._lock:
            lock = self.locked_rows.get(str(value).lower())
            if lock is None or lock[1] <= 0:
                return False
            if lock[0] > 0:
                lock[0] -= 1
                return False
            lock[1] -= 1
            return True

    def fail_bulk_jobs(self, n: int = 1, message: str = "InternalServerError : Retry later") -> None:
        """Make the next `n` Bulk 2.0 jobs processed end Failed with this errorMessage."""
        with self._lock:
            self.bulk.fail_jobs += [message] * n

    def clear_faults(self) -> None:
        self.faults.clear()
        with self._lock:
            self._faults, self._delay, self._delay_times = [], 0.0, None
            self.bulk.fail_jobs = []

    # ------------------------------------------------------------ inspection

    def sobject(self, name: str) -> SObjectType | None:
        """The sObject type named `name` (case-insensitive, as in real URLs)."""
        found = self.schema.get(name)
        return found or next((s for n, s in self.schema.items() if n.lower() == name.lower()), None)

    def records(self, sobject: str, include_deleted: bool = False) -> dict[str, dict[str, Any]]:
        """Current records of `sobject`: id → fields (copies)."""
        with self._lock:
            self.bulk.advance()
            out = {i: dict(r) for i, r in self.store.live.get(sobject, {}).items()}
            if include_deleted:
                out.update({i: dict(r) for i, r in self.store.deleted.get(sobject, {}).items()})
            return out

    def find(self, sobject: str, field: str, value: Any) -> dict[str, Any] | None:
        """The first live record whose `field` equals `value` (external ids ignore case)."""
        found = self.find_all(sobject, field, value)
        return found[0] if found else None

    def find_all(self, sobject: str, field: str, value: Any) -> list[dict[str, Any]]:
        with self._lock:
            self.bulk.advance()
            live = self.store.live.get(sobject, {})
            return [dict(live[i]) for i in self.store.find_ids(sobject, field, value)]

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        """Seed a record without HTTP (same validation); raises `RecordError`."""
        with self._lock:
            sot = self.schema[sobject]
            values, rels = parse_json_record(self.schema, sot, fields)
            return self.store.insert(sot, values, rels)

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            self.bulk.advance()
            return [j.info() for j in self.bulk.jobs.values()]

    @property
    def request_log(self) -> list[Logged]:
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        """Every request received, including faulted and dropped ones."""
        with self._lock:
            return self._request_count

    # ------------------------------------------------------------ request handling

    def _handle(self, req: Request) -> Reply | None:
        with self._lock:
            self._request_count += 1
            # fail/drop faults hit any request; limit faults only authenticated API calls (_api)
            fault = next((f for f in self._faults if f.kind != "limit" and (f.match is None or f.match in req.path)), None)
            if fault is not None:
                self._faults.remove(fault)
            delay = self._delay
            if self._delay_times is not None:
                delay = delay if self._delay_times > 0 else 0.0
                self._delay_times = max(0, self._delay_times - 1)
        if delay:
            time.sleep(delay)  # outside the lock: other requests proceed meanwhile
        with self._lock:
            try:
                reply = None if fault and fault.kind == "drop" else self._respond(req, fault)
            except Exception as e:  # an emulator bug: answer 500 loudly instead of hanging up
                traceback.print_exc()
                reply = error_reply(500, "UNKNOWN_EXCEPTION", f"emulator error: {e!r}")
            if self.keep_requests:
                ctype = req.headers.get("content-type", "")
                try:
                    body: Any = json.loads(req.body) if "json" in ctype and req.body else req.text
                except ValueError:
                    body = req.text
                self._log.append(
                    Logged(req.method, req.path, req.query, req.headers.get("host", ""), req.headers, body, reply.status if reply else None)
                )
        return reply

    def _respond(self, req: Request, fault: _Fault | None) -> Reply:
        data = _DATA.match(req.path)
        if fault and fault.kind == "fail":
            reply = _server_error(fault.status)
            if data is None:
                return reply
        elif (soap := _SOAP.match(req.path)) and req.method == "POST":
            return auth.soap_login(self, req, soap.group(1))
        elif req.path.rstrip("/") == "/services/oauth2/token" and req.method == "POST":
            return auth.oauth_token(self, req)
        elif data is None:
            return not_found()
        elif data.group(1) is None:  # GET /services/data: the versions list (no auth)
            return json_reply(200, [{"label": "Winter '24", "url": f"/services/data/v{API_VERSION}", "version": API_VERSION}])
        else:
            reply = self._api(req, data.group(1), data.group(2) or "")
        used, limit = self._api_used, self._api_limit
        reply.headers["Sforce-Limit-Info"] = f"api-usage={used}/{limit}"
        return reply

    def _api(self, req: Request, version: str, rest_path: str) -> Reply:
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or token not in self._sessions:
            return error_reply(401, "INVALID_SESSION_ID", "Session expired or invalid")
        fault = next((f for f in self._faults if f.kind == "limit" and (f.match is None or f.match in req.path)), None)
        if fault is not None:
            self._faults.remove(fault)
            return error_reply(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        if self._api_used >= self._api_limit:
            return error_reply(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self._api_used += 1
        self.bulk.advance()
        segs = [unquote(s) for s in rest_path.split("/") if s]
        try:
            return rest.route(self, req, version, segs)
        except RecordError as e:  # a stray per-record error outside a collection
            return error_reply(400, e.code, e.message, e.fields)


def _server_error(status: int) -> Reply:
    if status == 503:
        return error_reply(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
    return error_reply(
        status,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
    )
