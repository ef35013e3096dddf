"""The Customer.io Track API emulator: routing, Basic auth (site id : API key), the fair-use
rate limit, people keyed by the workspace's identifier, v2 batch with per-operation errors,
manual segments and fault injection (see `activation_emulators.customerio` for what it models)."""

from __future__ import annotations

import argparse
import base64
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before

JSON = "application/json"
MAX_BATCH_BODY = 500 * 1024  # /api/v2/batch: "limited to requests 500kb or smaller"
MAX_ENTITY_BODY = 32 * 1024  # /api/v2/entity: 32 kb
MAX_ID_BYTES = 150
MAX_NAME_BYTES = 150
MAX_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_SEGMENT_IDS = 1000  # ids per add_customers / remove_customers call
RATE_LIMIT = 100  # requests per second per workspace, v1 and v2 together (fair use)
PERSON_ACTIONS = frozenset({"identify", "delete", "event", "screen", "page", "add_relationships", "delete_relationships"})
PERSON_ACTIONS |= {"add_device", "delete_device", "merge", "suppress", "unsuppress"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")

Reply = tuple[int, Any]


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    status: int  # 0: the connection was dropped by a fault
    body: Any = None
    query: str = ""


def meta_error(message: str) -> dict[str, Any]:
    """Customer.io's v1 error shape: {"meta": {"error": ...}}."""
    return {"meta": {"error": message}}


class _Server(QuietHTTPServer):
    owner: CustomerioEmulator


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        raw = self.read_body()
        self.server.owner._serve(self, raw)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class CustomerioEmulator(BackgroundServer):
    """``with CustomerioEmulator(credentials={("site", "key")}) as emu:`` then point the destination's `url` at ``emu.url``."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        credentials: set[tuple[str, str]] | None = None,
        identify_by: str = "id",
        region: str = "us",
        rate_limits: bool = True,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.credentials = credentials or {("emulator-site", "emulator-key")}
        self.identify_by = identify_by
        self.region = region
        self.rate_limits = rate_limits
        self.verbose = verbose
        self.faults = FaultInjector()
        self.throttled = 0
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._people: dict[str, dict[str, Any]] = {}  # identity -> {"id"|"email": ..., "attributes": {...}}
        self._segments: dict[int, dict[str, Any]] = {}  # id -> {"name", "type": "manual"|"data", "members": set}
        self._calls: deque[float] = deque()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- set-up and inspection --------------------------------------------------------------

    def create_segment(self, name: str, *, manual: bool = True, segment_id: int | None = None) -> int:
        with self._lock:
            segment_id = segment_id if segment_id is not None else max(self._segments, default=0) + 1
            self._segments[segment_id] = {"name": name, "type": "manual" if manual else "data", "members": set()}
            return segment_id

    def people(self) -> dict[str, dict[str, Any]]:
        """identity (an id, or an email lower-cased) -> its attributes (a copy)."""
        with self._lock:
            return {k: json.loads(json.dumps(p["attributes"])) for k, p in self._people.items()}

    def identities(self) -> list[str]:
        with self._lock:
            return list(self._people)

    def members(self, segment_id: int) -> set[str]:
        with self._lock:
            return set(self._segments[segment_id]["members"])

    def segments(self) -> dict[int, str]:
        with self._lock:
            return {i: s["name"] for i, s in self._segments.items()}

    @property
    def request_log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        parts = urlsplit(handler.path)
        path, query = unquote(parts.path), parts.query
        method = handler.command
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        fault = self.faults.take(method, path)
        if fault is not None and fault.before:
            status = 0 if fault.kind in ("drop", "timeout") else {"throttle": 429, "unauthorized": 401}.get(fault.kind, fault.status)
            self._record(method, path, status, body, query)
            serve_before(handler, fault, _error_body)
            return
        serve_before(handler, fault, _error_body)  # a stall waits here
        status, data = self._answer(method, path, parse_qs(query), body, handler.headers.get("Authorization"), len(raw))
        self._record(method, path, status, body, query)
        serve_after(handler, fault, status, json.dumps(data).encode(), JSON)

    def _record(self, method: str, path: str, status: int, body: Any, query: str) -> None:
        with self._lock:
            self._log.append(LoggedRequest(method, path, status, None if body is ValueError else body, query))

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            site, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (site, key) in self.credentials

    def _answer(self, method: str, path: str, query: dict[str, list[str]], body: Any, auth: str | None, size: int) -> Reply:
        if not self._authorized(auth):
            return 401, meta_error("Unauthorized request")
        with self._lock:
            if self._limited():
                self.throttled += 1
                return 429, meta_error("Too many requests")
            if body is ValueError:
                return 400, meta_error("invalid JSON")
            return self._route(method, path, query, body, size)

    def _limited(self) -> bool:
        if not self.rate_limits:
            return False
        now = time.monotonic()
        while self._calls and self._calls[0] <= now - 1.0:
            self._calls.popleft()
        if len(self._calls) >= RATE_LIMIT:
            return True
        self._calls.append(now)
        return False

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any, size: int) -> Reply:
        if path == "/api/v2/batch" and method == "POST":
            if size > MAX_BATCH_BODY:
                return 400, meta_error(f"request body is larger than {MAX_BATCH_BODY} bytes")
            batch = body.get("batch") if isinstance(body, dict) else None
            if not isinstance(batch, list) or not batch:
                return 400, meta_error("batch is required")
            errors = [e for i, op in enumerate(batch) if (e := self._operation(i, op)) is not None]
            return (207, {"errors": errors}) if errors else (200, {})
        if path == "/api/v2/entity" and method == "POST":
            if size > MAX_ENTITY_BODY:
                return 400, meta_error(f"request body is larger than {MAX_ENTITY_BODY} bytes")
            error = self._operation(0, body)
            return (400, {"errors": [error]}) if error else (200, {})
        if path == "/api/v1/accounts/region" and method == "GET":
            return 200, {"url": f"https://track{'-eu' if self.region == 'eu' else ''}.customer.io", "data_center": self.region}
        m = re.match(r"^/api/v1/segments/([^/]+)/(add_customers|remove_customers)$", path)
        if m and method == "POST":
            return self._membership(m.group(1), m.group(2), query.get("id_type", ["id"])[0], body)
        m = re.match(r"^/api/v1/customers/([^/]+)$", path)
        if m and method in ("PUT", "DELETE"):
            ident = m.group(1)
            op = {"type": "person", "identifiers": {self.identify_by: ident}, "action": "identify" if method == "PUT" else "delete"}
            if method == "PUT":
                op["attributes"] = body if isinstance(body, dict) else {}
            error = self._operation(0, op)
            return (400, meta_error(error["message"])) if error else (200, {})
        return 404, meta_error(f"{method} {path} is not served")

    # -- the store (called with the lock held) ----------------------------------------------

    def _key(self, ident: str) -> str:
        return ident.strip().lower() if self.identify_by == "email" else ident

    def _invalid(self, ident: Any) -> tuple[str, str] | None:
        """(reason, message) when `ident` cannot identify a person in this workspace."""
        if not isinstance(ident, str) or not ident:
            return "required", f"identifiers.{self.identify_by} is required"
        if len(ident.encode()) > MAX_ID_BYTES:
            return "invalid", f"{self.identify_by} is longer than {MAX_ID_BYTES} bytes"
        if self.identify_by == "email" and not _EMAIL.match(ident.strip()):
            return "invalid", "email is not a valid email address"
        return None

    def _operation(self, index: int, op: Any) -> dict[str, Any] | None:
        """Apply one v2 operation; its error entry (`batch_index`, `reason`, `field`, `message`) or None."""

        def error(reason: str, field: str, message: str) -> dict[str, Any]:
            return {"batch_index": index, "reason": reason, "field": field, "message": message}

        if not isinstance(op, dict) or op.get("type") != "person":
            return error("invalid", "type", "only person operations are served by this emulator")
        action = op.get("action")
        if action not in PERSON_ACTIONS:
            return error("invalid", "action", f"unknown action {action!r}")
        if action not in ("identify", "delete"):
            return error("invalid", "action", f"action {action!r} is not served by this emulator")
        identifiers = op.get("identifiers")
        if not isinstance(identifiers, dict) or self.identify_by not in identifiers:
            other = sorted(identifiers) if isinstance(identifiers, dict) else []
            why = f"this workspace identifies people by {self.identify_by}" + (f", not {', '.join(other)}" if other else "")
            return error("required", f"identifiers.{self.identify_by}", why)
        ident = identifiers[self.identify_by]
        if (bad := self._invalid(ident)) is not None:
            return error(bad[0], f"identifiers.{self.identify_by}", bad[1])
        key = self._key(ident)
        if action == "delete":
            self._people.pop(key, None)
            for segment in self._segments.values():
                segment["members"].discard(key)
            return None
        attributes = op.get("attributes") or {}
        if not isinstance(attributes, dict):
            return error("invalid", "attributes", "attributes must be an object")
        for name, value in attributes.items():
            if len(name.encode()) > MAX_NAME_BYTES:
                return error("invalid", f"attributes.{name[:40]}", f"attribute names are limited to {MAX_NAME_BYTES} bytes")
            if len(json.dumps(value).encode() if not isinstance(value, str) else value.encode()) > MAX_VALUE_BYTES:
                return error("invalid", f"attributes.{name}", f"attribute values are limited to {MAX_VALUE_BYTES} bytes")
        person = self._people.get(key)
        held = dict(person["attributes"]) if person else {}
        for name, value in attributes.items():
            if value is None or value == "":
                held.pop(name, None)  # null or an empty string removes the attribute
            else:
                held[name] = value
        if len(held) > MAX_ATTRIBUTES:
            return error("invalid", "attributes", f"a person has at most {MAX_ATTRIBUTES} attributes")
        self._people[key] = {self.identify_by: ident.strip() if self.identify_by == "email" else ident, "attributes": held}
        return None

    def _membership(self, raw_id: str, action: str, id_type: str, body: Any) -> Reply:
        segment = self._segments.get(int(raw_id)) if raw_id.isdigit() else None
        if segment is None:
            return 404, meta_error("segment not found")
        if segment["type"] != "manual":
            return 400, meta_error("only manual segments can be changed through the API")
        if id_type not in ("id", "email", "cio_id"):
            return 400, meta_error(f"unknown id_type {id_type!r}")
        if id_type != self.identify_by:
            return 400, meta_error(f"this workspace identifies people by {self.identify_by}: use id_type={self.identify_by}")
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            return 400, meta_error("ids is required")
        if len(ids) > MAX_SEGMENT_IDS:
            return 400, meta_error(f"at most {MAX_SEGMENT_IDS} ids per request")
        for ident in ids:
            key = self._key(str(ident))
            if action == "add_customers":
                if key in self._people:  # an id of nobody is ignored (no person is created)
                    segment["members"].add(key)
            else:
                segment["members"].discard(key)
        return 200, {}


def _error_body(status: int) -> tuple[bytes, str]:
    message = {401: "Unauthorized request", 429: "Too many requests", 400: "bad request"}.get(status, f"injected HTTP {status}")
    return json.dumps(meta_error(message)).encode(), JSON


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_emulators.customerio", description="Serve a local Customer.io Track API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--site-id", default="emulator-site")
    parser.add_argument("--api-key", default="emulator-key")
    parser.add_argument("--identify-by", choices=["id", "email"], default="id")
    parser.add_argument("--segment", action="append", default=[], metavar="NAME", help="create a manual segment (repeatable)")
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    emu = CustomerioEmulator(
        args.host,
        args.port,
        credentials={(args.site_id, args.api_key)},
        identify_by=args.identify_by,
        rate_limits=not args.no_rate_limits,
        verbose=args.verbose,
    )
    for name in args.segment:
        print(f"manual segment {name!r}: id {emu.create_segment(name)}", flush=True)
    emu.serve_until_signal("Customer.io Track API emulator on {url} (Ctrl-C to stop)")
    return 0
