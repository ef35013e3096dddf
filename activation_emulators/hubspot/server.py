"""The HTTP side of the HubSpot emulator: server, auth, rate limits, fault injection, inspection."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before

from .api import BatchErrors, CrmApi, error
from .spec import Match, ValidationMode, find_specs_dir, load_documents, route_documents
from .store import ObjectType, PropertyDef, now_iso
from .validation import SpecValidator

_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    query: str
    status: int  # 0 when the connection was dropped
    duration_ms: float
    body: Any = None  # the parsed request body, when log_bodies=True
    at: float = 0.0  # when it arrived (time.time())


@dataclass(frozen=True)
class InvalidMessage:
    """A request (or one of our own responses) that does not conform to HubSpot's documents."""

    method: str
    path: str
    detail: str
    body: Any = None


class _Server(QuietHTTPServer):
    owner: HubSpotEmulator


def _fault_body(status: int) -> tuple[bytes, str]:
    """HubSpot's error shape for an injected status."""
    if status == 429:
        body = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "policyName": "TEN_SECONDLY_ROLLING",
            "correlationId": str(uuid.uuid4()),
        }
    elif status == 401:
        body = error(401, _AUTH_MESSAGE, "INVALID_AUTHENTICATION")[1]
    else:
        body = error(status, "internal error", "INTERNAL_ERROR")[1]
    return json.dumps(body).encode(), "application/json;charset=utf-8"


class _Handler(KeepAliveHandler):
    server: _Server

    def _handle(self) -> None:
        started = time.perf_counter()
        body = self.read_body()  # always drain, even to refuse
        headers = {k.lower(): v for k, v in self.headers.items()}
        emu = self.server.owner
        fault = emu.faults.take(self.command, self.path)
        if serve_before(self, fault, _fault_body):
            emu._log(self.command, self.path, 0, started, body)
            return
        with emu._lock:
            emu._received += 1
            emu._inflight += 1
        try:
            reply = emu._respond(self.command, self.path, headers, body)
        finally:
            with emu._lock:
                emu._inflight -= 1
        if reply is None:  # fault: close without answering
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            emu._log(self.command, self.path, 0, started, body)
            return
        status, data, extra = reply
        if fault is not None:  # applied; the answer is lost, cut or late
            emu._log(self.command, self.path, status, started, body)
            serve_after(self, fault, status, data, "application/json;charset=utf-8", extra)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        emu._log(self.command, self.path, status, started, body)  # before the client can see the answer
        # Headers and body in one write.
        self._headers_buffer.append(b"\r\n" + data)  # type: ignore[attr-defined]
        self.flush_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class HubSpotEmulator(BackgroundServer):
    """HubSpot CRM v3 over real HTTP, validated against HubSpot's OpenAPI documents.

    with HubSpotEmulator(tokens={"pat-na1-test"}) as emu:
        client = HubSpot(access_token="pat-na1-test", host=emu.url)
    """

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: set[str] | frozenset[str] | list[str] | None = None,
        rate_limit: tuple[int, float] | None = None,
        daily_limit: int | None = None,
        retry_after: bool = False,
        validation: ValidationMode = "compiled",
        validate_responses: bool = True,
        batch_errors: BatchErrors = "hubspot",
        shuffle_results: bool = False,
        portal_id: int = 12345678,
        log_bodies: bool = False,
        specs_dir: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        #: Accepted bearer tokens; None accepts any bearer token (a missing one is still refused).
        self.tokens = frozenset(tokens) if tokens is not None else None
        #: (requests, seconds): at most that many requests in any rolling window of that length.
        self.rate_limit = rate_limit
        self.daily_limit = daily_limit
        #: Add Retry-After to 429s. HubSpot's docs only confirm it for 477, so it is off by default.
        self.retry_after = retry_after
        self.validate_responses = validate_responses
        self.log_bodies = log_bodies
        self.verbose = verbose
        # Routing uses the documents' paths even with validation off. Without the documents
        # (a machine without shared/vendor-specs), the emulator still serves, unvalidated.
        try:
            docs = load_documents(find_specs_dir(specs_dir))
        except FileNotFoundError as e:
            if validation != "off" and specs_dir is not None:
                raise
            docs, validation = route_documents(), "off"
            self.unvalidated_reason: str | None = str(e)
        else:
            self.unvalidated_reason = None if validation != "off" else "validation='off'"
        self.validation = validation
        self._validator = SpecValidator(docs, validation)
        self.api = CrmApi(portal_id, batch_errors, shuffle_results)
        self._lock = threading.RLock()
        #: Generic faults (see activation_emulators.faults), on top of fail_next & co.
        self.faults = FaultInjector()
        self._inflight = 0
        self.reset(keep_schema=True)

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------ setup and inspection

    def reset(self, keep_schema: bool = False) -> None:
        """Forget records, lists, logs, counters and pending faults (and custom schema unless kept)."""
        with self._lock:
            self.api.reset(keep_schema)
            self.request_log: list[LoggedRequest] = []
            self.invalid_requests: list[InvalidMessage] = []
            self.invalid_responses: list[InvalidMessage] = []
            #: Tracebacks of handler crashes (emulator bugs); tests should assert it stays empty.
            self.server_errors: list[str] = []
            self.throttled = 0
            self._received = 0
            self._faults: deque[tuple[str, int]] = deque()
            self._delay = 0.0
            self._window: deque[float] = deque()
            self._daily = 0
            self._validator.disagreements.clear()

    @property
    def batch_errors(self) -> BatchErrors:
        """ "hubspot" (documented behaviour) or "multi-status" (every failed input becomes a 207 entry)."""
        return self.api.batch_errors

    @batch_errors.setter
    def batch_errors(self, value: BatchErrors) -> None:
        self.api.batch_errors = value

    @property
    def echo_id_property(self) -> bool:
        """Whether upsert/update results echo the idProperty's value (HubSpot does not document it); True by default."""
        return self.api.echo_id_property

    @echo_id_property.setter
    def echo_id_property(self, value: bool) -> None:
        self.api.echo_id_property = value

    @property
    def request_count(self) -> int:
        """Requests received (including any still being answered) since the last reset."""
        return self._received

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being answered (e.g. after delay()); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._inflight

    @property
    def validator_disagreements(self) -> list[str]:
        """With validation="both": requests/responses where the compiled checks and openapi-core differ."""
        return self._validator.disagreements

    def add_object_type(self, name: str, properties: list[str | dict[str, Any]] | None = None, unique: list[str] | None = None) -> str:
        """A custom object type, reachable as /crm/v3/objects/<name>/...; returns its objectTypeId."""
        with self._lock:
            return self.api.add_object_type(name, properties, unique).type_id

    def add_property(
        self,
        object_type: str,
        name: str,
        type: str = "string",
        options: list[str | dict[str, Any]] | None = None,
        unique: bool = False,
        label: str | None = None,
        field_type: str | None = None,
    ) -> PropertyDef:
        with self._lock:
            return self.api.add_property(object_type, name, type, list(options or []), unique, label, field_type)

    def property_definitions(self, object_type: str) -> dict[str, dict[str, Any]]:
        """The object type's properties as the properties API returns them, by name."""
        with self._lock:
            return {name: p.to_api() for name, p in self._type(object_type).properties.items()}

    def _type(self, object_type: str) -> ObjectType:
        t = self.api.object_type(object_type)
        if t is None:
            raise KeyError(f"unknown object type {object_type!r}")
        return t

    def create(self, object_type: str, properties: dict[str, str]) -> str:
        """Seed one record without HTTP (and without validation); returns its id."""
        with self._lock:
            t = self._type(object_type)
            for name in properties:
                if name not in t.properties:
                    raise KeyError(f"{object_type} has no property {name!r}")
            return self.api._write(t, None, dict(properties), now_iso())[0].id

    def records(self, object_type: str, archived: bool = False) -> dict[str, dict[str, str]]:
        with self._lock:
            return {r.id: dict(r.properties) for r in self._type(object_type).records.values() if r.archived == archived}

    def find(self, object_type: str, property: str, value: str) -> dict[str, dict[str, str]]:
        """Live records whose property equals value (email compares case-insensitively)."""
        fold = (lambda s: s.lower()) if property == "email" else (lambda s: s)
        return {i: p for i, p in self.records(object_type).items() if fold(p.get(property, "")) == fold(value)}

    def lists(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {i: lst.to_api() for i, lst in self.api.lists.items()}

    def list_members(self, list_id: str) -> list[str]:
        with self._lock:
            return sorted(self.api.lists[str(list_id)].members, key=int)

    # ------------------------------------------------------------ faults

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next n requests answer `status` (500, 502, 503, ...) without being processed."""
        with self._lock:
            self._faults.extend([("fail", status)] * n)

    def throttle_next(self, n: int = 1) -> None:
        """The next n requests answer 429 (ten-secondly policy) without being processed."""
        with self._lock:
            self._faults.extend([("throttle", 429)] * n)

    def drop_next(self, n: int = 1) -> None:
        """The next n requests are read, then the connection is closed without an answer."""
        with self._lock:
            self._faults.extend([("drop", 0)] * n)

    def delay(self, seconds: float) -> None:
        """Wait this long before answering every request from now on (0 to stop)."""
        self._delay = seconds

    # ------------------------------------------------------------ request processing

    def _log(self, method: str, target: str, status: int, started: float, body: bytes) -> None:
        parts = urlsplit(target)
        logged_body: Any = None
        if self.log_bodies and body:
            try:
                logged_body = json.loads(body)
            except ValueError:
                logged_body = body
        took = time.perf_counter() - started
        entry = LoggedRequest(method, parts.path, parts.query, status, took * 1000, logged_body, time.time() - took)
        with self._lock:
            self.request_log.append(entry)

    def _rate_headers(self, now: float) -> dict[str, str]:
        headers = {}
        if self.rate_limit:
            limit, seconds = self.rate_limit
            headers.update(
                {
                    "X-HubSpot-RateLimit-Max": str(limit),
                    "X-HubSpot-RateLimit-Remaining": str(max(0, limit - len(self._window))),
                    "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(seconds * 1000)),
                }
            )
        if self.daily_limit:
            headers.update(
                {
                    "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                    "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily)),
                }
            )
        return headers

    def _throttle(self, policy: str, now: float) -> tuple[int, Any, dict[str, str]]:
        self.throttled += 1
        if policy == "DAILY":
            message = "You have reached your daily limit."
            tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            wait = (tomorrow - datetime.now(timezone.utc)).total_seconds()
        else:
            message = "You have reached your ten_secondly_rolling limit."
            wait = (self._window[0] + self.rate_limit[1] - now) if (self.rate_limit and self._window) else 1.0
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        headers = self._rate_headers(now)
        if self.retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return 429, body, headers

    def _admit(self, now: float) -> tuple[int, Any, dict[str, str]] | None:
        """Count the request against the quotas, or refuse it (429)."""
        if self.rate_limit:
            limit, seconds = self.rate_limit
            while self._window and self._window[0] <= now - seconds:
                self._window.popleft()
            if len(self._window) >= limit:
                return self._throttle("TEN_SECONDLY_ROLLING", now)
        if self.daily_limit and self._daily >= self.daily_limit:
            return self._throttle("DAILY", now)
        if self.rate_limit:
            self._window.append(now)
        self._daily += 1
        return None

    def _invalid(self, kind: str, method: str, path: str, detail: str, body: Any) -> None:
        with self._lock:
            target = self.invalid_requests if kind == "request" else self.invalid_responses
            target.append(InvalidMessage(method, path, detail, body))

    def _respond(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes, dict[str, str]] | None:
        if self._delay:
            time.sleep(self._delay)
        status, body, extra, match, query = self._process(method, target, headers, raw)
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        if match is not None and self.validate_responses:
            problem = self._validator.check_response(match, status, body, data, query, headers)
            if problem:
                self._invalid("response", method, urlsplit(target).path, f"{status}: {problem}", body)
        return (status, data, extra) if status >= 0 else None

    def _process(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str], Match | None, list[tuple[str, str]]]:
        now = time.monotonic()
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            kind, fault_status = fault
            if kind == "drop":
                return -1, None, {}, None, []
            with self._lock:
                if kind == "throttle":
                    return (*self._throttle("TEN_SECONDLY_ROLLING", now), None, [])
            return (*error(fault_status, "internal error", "INTERNAL_ERROR"), None, [])

        parts = urlsplit(target)
        path = unquote(parts.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or (self.tokens is not None and token not in self.tokens):
            return (*error(401, _AUTH_MESSAGE, "INVALID_AUTHENTICATION"), None, query)
        with self._lock:
            refused = self._admit(now)
            rate_headers = self._rate_headers(now)
        if refused:
            return (*refused, None, query)

        found = self._validator.router.match(method, path, _objects_doc)
        if isinstance(found, int):
            message = "Not Found" if found == 404 else f"Method {method} not allowed for {path}"
            status, body, _ = error(found, message, "OBJECT_NOT_FOUND" if found == 404 else "METHOD_NOT_ALLOWED")
            return status, body, rate_headers, None, query

        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:  # worded like HubSpot's (Jackson's) parse errors
                detail = f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
                self._invalid("request", method, path, detail, raw)
                status, body, _ = error(400, detail, "VALIDATION_ERROR")
                return status, body, rate_headers, found, query
            except ValueError as exc:  # not UTF-8
                detail = f"Invalid input JSON on line 1, column 1: {exc}"
                self._invalid("request", method, path, detail, raw)
                status, body, _ = error(400, detail, "VALIDATION_ERROR")
                return status, body, rate_headers, found, query
        problem = self._validator.check_request(found, query, headers, raw, parsed)
        if problem is not None:
            self._invalid("request", method, path, f"{problem.where}: {problem.detail}", parsed)
            message = f"Invalid input JSON on line 1: {problem.detail}" if problem.where == "body" else f"Invalid request: {problem.detail}"
            status, body, _ = error(400, message, "VALIDATION_ERROR")
            return status, body, rate_headers, found, query
        try:
            with self._lock:
                status, body, extra = self.api.handle(found, query, parsed, self.url)
        except Exception:  # an emulator bug: answer 500 and keep the traceback for the test to show
            self.server_errors.append(traceback.format_exc())
            status, body, extra = error(500, "internal error", "INTERNAL_ERROR")
        return status, body, {**rate_headers, **extra}, found, query


def _objects_doc(object_type: str) -> str:
    """Which document describes /crm/v3/objects/<object_type>: companies, else the contacts one
    (custom object types have the same shapes; unknown types are refused by the handler)."""
    return "companies" if object_type.lower() in ("companies", "company", "0-2") else "contacts"
