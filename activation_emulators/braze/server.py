"""The Braze emulator: users keyed by external_id (or email-only profiles), Bearer REST API
keys, per-object errors in a 201, 400 for a malformed or oversized call, the /users/track
rate limit with Braze's X-RateLimit-* headers, fault injection and inspection."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import Fault, FaultInjector, send_bytes, serve_after, serve_before

JSON = "application/json"
TRACK_LIMIT = 75  # attribute objects per /users/track call
DELETE_LIMIT = 50  # ids per /users/delete call
PAGE = 50  # custom attributes per /custom_attributes page
ARRAY_LENGTH = 25  # elements Braze keeps in an array attribute by default
IDENTIFIERS = ("external_id", "user_alias", "braze_id", "email", "phone")
NOT_ATTRIBUTES = frozenset({*IDENTIFIERS, "_update_existing_only", "push_token_import", "push_tokens"})
#: Braze's own profile fields: stored on the profile, not listed as custom attributes.
PROFILE_FIELDS = frozenset(
    {"first_name", "last_name", "email", "phone", "country", "dob", "gender", "home_city", "language", "time_zone"}
    | {"email_subscribe", "push_subscribe", "image_url", "current_location", "date_of_first_session", "date_of_last_session"}
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$")
_MESSAGES = {
    400: "Bad Request",
    401: "Invalid API key",
    403: "Forbidden",
    404: "Not Found",
    429: "API rate limit reached",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    status: int  # 0: the connection was dropped by a fault
    body: Any = None


def error_body(status: int, message: str | None = None) -> tuple[bytes, str]:
    """Braze's fatal-error shape: {"message": ..., "errors": [...]}."""
    return json.dumps({"message": message or _MESSAGES.get(status, "Error"), "errors": []}).encode(), JSON


def data_type(value: Any) -> str:
    """The type Braze gives a custom attribute from a value written to it."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return "Time" if isinstance(value, str) and _TIME.match(value) else "String"


class _Handler(KeepAliveHandler):
    server: QuietHTTPServer

    def _serve(self) -> None:
        raw = self.read_body()  # always drain, even to refuse
        self.server.owner._serve(self, raw)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class BrazeEmulator(BackgroundServer):
    """A local Braze REST API at ``emu.url`` (the `rest_endpoint`), accepting ``emu.api_key``."""

    server_class = QuietHTTPServer
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        track_limit: int = 3000,
        track_window: float = 3.0,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.api_keys = api_keys or {"braze-emulator-key"}
        self.api_key = sorted(self.api_keys)[0]
        #: /users/track: `track_limit` requests per `track_window` seconds per workspace, then 429
        self.track_limit, self.track_window = track_limit, track_window
        self.verbose = verbose
        self.faults = FaultInjector()
        self.lock = threading.Lock()
        self.users: dict[str, dict[str, Any]] = {}  # external_id -> profile (attributes)
        self.email_users: dict[str, dict[str, Any]] = {}  # email-only profiles: email -> profile
        self.attribute_types: dict[str, str] = {}  # custom attribute -> data type (first write)
        self.blocklisted: set[str] = set()
        self._log: list[LoggedRequest] = []
        self._window = (0.0, 0)  # (start, requests in it)
        self.throttled = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- set-up and inspection ---------------------------------------------------------------

    def blocklist(self, attribute: str) -> None:
        """Blocklist a custom attribute (Braze then drops what is written to it)."""
        with self.lock:
            self.blocklisted.add(attribute)
            self.attribute_types.setdefault(attribute, "String")

    def add_user(self, external_id: str, **attributes: Any) -> None:
        with self.lock:
            self.users.setdefault(external_id, {}).update(attributes)

    def profiles(self) -> dict[str, dict[str, Any]]:
        """external_id -> a copy of its profile."""
        with self.lock:
            return {k: dict(v) for k, v in self.users.items()}

    @property
    def request_log(self) -> list[LoggedRequest]:
        with self.lock:
            return list(self._log)

    def request_count(self, path: str | None = None) -> int:
        return sum(1 for r in self.request_log if path is None or r.path == path)

    # -- HTTP --------------------------------------------------------------------------------

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        parts = urlsplit(handler.path)
        path, method = parts.path.rstrip("/") or "/", handler.command
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        fault = self.faults.take(method, path)
        if fault is not None and fault.kind == "throttle":  # Braze's way: X-RateLimit-* headers, no Retry-After
            self._record(method, path, 429, body)
            self._throttle(handler, fault)
            return
        if fault is not None and serve_before(handler, fault, error_body):
            self._record(method, path, {"error": fault.status, "unauthorized": 401}.get(fault.kind, 0), body)
            return
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:].strip() not in self.api_keys:
            self._record(method, path, 401, body)
            serve_after(handler, None, 401, *error_body(401))
            return
        limits = self._count(path)
        if limits is None:
            self._record(method, path, 429, body)
            self._throttle(handler, None)
            return
        status, reply = self._route(method, path, dict(parse_qsl(parts.query)), body)
        self._record(method, path, status, body)
        headers = dict(limits)
        if path == "/custom_attributes" and isinstance(reply, dict) and reply.pop("_next", None) is not None:
            headers["Link"] = f'<{self.url}/custom_attributes?cursor={reply.pop("_cursor")}>; rel="next"'
        serve_after(handler, fault, status, json.dumps(reply).encode(), JSON, headers)

    def _record(self, method: str, path: str, status: int, body: Any) -> None:
        with self.lock:
            self._log.append(LoggedRequest(method, path, status, None if body is ValueError else body))

    def _count(self, path: str) -> dict[str, str] | None:
        """The rate-limit headers of a request to `path`, or None when it is over the limit."""
        if path != "/users/track":
            return {}
        now = time.time()
        with self.lock:
            start, used = self._window
            if now - start >= self.track_window:
                start, used = math.floor(now / self.track_window) * self.track_window, 0
            used += 1
            self._window = (start, used)
            reset = start + self.track_window
            over = used > self.track_limit
            if over:
                self.throttled += 1
        headers = {
            "X-RateLimit-Limit": str(self.track_limit),
            "X-RateLimit-Remaining": str(max(0, self.track_limit - used)),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
        return None if over else headers

    def _throttle(self, handler: _Handler, fault: Fault | None) -> None:
        now = time.time()
        if fault is not None:
            with self.lock:
                self.throttled += 1
            wait = fault.retry_after or 0.0
            reset = math.ceil(now + wait) if wait > 0 else math.floor(now)
        else:
            reset = math.ceil(self._window[0] + self.track_window)
        headers = {"X-RateLimit-Limit": str(self.track_limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
        send_bytes(handler, 429, *error_body(429), headers)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/custom_attributes"):
            return self._attributes(query.get("cursor"))
        if method != "POST" or path not in ("/users/track", "/users/delete"):
            return 404, {"message": "Not Found", "errors": []}
        if not isinstance(body, dict):
            return 400, {"message": "Bad Request: the body is not a JSON object", "errors": []}
        return self._track(body) if path == "/users/track" else self._delete(body)

    # -- the endpoints -----------------------------------------------------------------------

    def _track(self, body: dict[str, Any]) -> tuple[int, Any]:
        attributes = body.get("attributes") or []
        if not isinstance(attributes, list):
            return 400, {"message": "Bad Request: attributes must be an array", "errors": []}
        if len(attributes) > TRACK_LIMIT or len(body.get("events") or []) > TRACK_LIMIT or len(body.get("purchases") or []) > TRACK_LIMIT:
            return 400, {"message": "Max Input Length Exceeded", "errors": []}
        errors: list[dict[str, Any]] = []
        processed = 0
        with self.lock:
            for index, obj in enumerate(attributes):
                problem = self._apply(obj)
                if problem is None:
                    processed += 1
                else:
                    errors.append({"type": problem, "input_array": "attributes", "index": index})
        reply: dict[str, Any] = {"message": "success"}
        if attributes:
            reply["attributes_processed"] = processed
        if errors:
            reply["errors"] = errors
        return 201, reply

    def _apply(self, obj: Any) -> str | None:
        """Write one attributes object (under the lock); Braze's minor error, or None."""
        if not isinstance(obj, dict):
            return "attributes object is not an object"
        if not any(obj.get(k) for k in IDENTIFIERS):
            return "'external_id' or 'braze_id' or 'user_alias' or 'email' or 'phone' is required"
        email = obj.get("email")
        if email is not None and not (isinstance(email, str) and _EMAIL.match(email)):
            return "Invalid email"  # the user is neither created nor updated
        for name, value in obj.items():
            if name in NOT_ATTRIBUTES:
                continue
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                return f"'{name}' is an array whose values are not all strings"
        external_id = obj.get("external_id")
        if external_id is not None and not isinstance(external_id, str):
            return "'external_id' must be a string"
        if external_id:
            store, key = self.users, external_id
        elif email:
            store, key = self.email_users, email.lower()
        else:
            return None  # aliases and braze_ids: accepted, not kept by this emulator
        if obj.get("_update_existing_only") is True and key not in store:
            return None  # update only: an unknown user is not created (no error)
        profile = store.setdefault(key, {})
        for name, value in obj.items():
            if name in NOT_ATTRIBUTES and name != "email" or name in self.blocklisted:
                continue
            if value is None:
                profile.pop(name, None)  # null removes the attribute
                continue
            if isinstance(value, dict) and set(value) <= {"add", "remove", "inc"}:
                value = self._operation(profile.get(name), value)
            elif isinstance(value, list):
                value = list(dict.fromkeys(value))[-ARRAY_LENGTH:]
            profile[name] = value
            if name not in PROFILE_FIELDS:
                self.attribute_types.setdefault(name, data_type(value))
        if email and external_id:
            profile["email"] = email
        return None

    @staticmethod
    def _operation(current: Any, op: dict[str, Any]) -> Any:
        if "inc" in op:
            return (current if isinstance(current, (int, float)) else 0) + op["inc"]
        items = [v for v in (current if isinstance(current, list) else []) if v not in (op.get("remove") or [])]
        for v in op.get("add") or []:
            items = [x for x in items if x != v] + [v]
        return items[-ARRAY_LENGTH:]

    def _delete(self, body: dict[str, Any]) -> tuple[int, Any]:
        kinds = [k for k in ("external_ids", "user_aliases", "braze_ids", "email_addresses") if body.get(k)]
        if len(kinds) != 1:
            return 400, {"message": "Bad Request: exactly one of external_ids, user_aliases, braze_ids, email_addresses", "errors": []}
        ids = body[kinds[0]]
        if not isinstance(ids, list) or len(ids) > DELETE_LIMIT:
            return 400, {"message": "The max number of external_ids and aliases per request was exceeded", "errors": []}
        deleted = 0
        with self.lock:
            for i in ids:
                store, key = (self.users, i) if kinds[0] == "external_ids" else (self.email_users, str(i).lower())
                if isinstance(key, str) and store.pop(key, None) is not None:
                    deleted += 1
        return 201, {"deleted": deleted, "message": "success"}

    def _attributes(self, cursor: str | None) -> tuple[int, Any]:
        with self.lock:
            names = sorted(self.attribute_types)
            start = int(cursor) if cursor and cursor.isdigit() else 0
            page = [
                {
                    "name": n,
                    "data_type": self.attribute_types[n],
                    "array_length": ARRAY_LENGTH if self.attribute_types[n] == "Array" else None,
                    "description": None,
                    "status": "Blocklisted" if n in self.blocklisted else "Active",
                    "tag_names": [],
                }
                for n in names[start : start + PAGE]
            ]
        reply: dict[str, Any] = {"message": "success", "attributes": page}
        if start + PAGE < len(names):
            reply["_next"], reply["_cursor"] = True, str(start + PAGE)
        return 200, reply
