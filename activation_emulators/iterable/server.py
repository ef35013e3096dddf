"""The Iterable emulator: routing, the Api-Key header, per-project rate limits, users, fields,
static lists and fault injection (see `activation_emulators.iterable` for what it models)."""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before

JSON = "application/json;charset=utf-8"
MAX_BODY = 4 * 1024 * 1024
#: Iterable's documented limits, per project: (method, path pattern) -> calls per second.
RATE_LIMITS: list[tuple[str, re.Pattern[str], float]] = [
    ("POST", re.compile(r"^/api/users/bulkUpdate$"), 5),
    ("GET", re.compile(r"^/api/users/getFields$"), 3),
    ("GET", re.compile(r"^/api/lists$"), 100),
    ("*", re.compile(r"^/api/users/(byUserId/)?[^/]+$"), 100),
]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2} [+-]\d{2}:\d{2})?$")

Reply = tuple[int, Any]


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int  # 0: the connection was dropped by a fault
    body: Any = None


def api_response(code: str, msg: str, params: Any = None) -> dict[str, Any]:
    """Iterable's IterableApiResponse: {msg, code, params}."""
    return {"msg": msg, "code": code, "params": params}


def type_of(value: Any) -> str:
    """The Iterable field type a value sets on first write."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "date" if _DATE.match(value) else "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        inner = {type_of(v) for v in value if v is not None}
        return f"{inner.pop()}[]" if len(inner) == 1 else "string[]" if not inner else "mixed[]"
    return "null"


def _fits(held: str, value: Any) -> bool:
    if value is None:
        return True
    got = type_of(value)
    if got == held or (held == "double" and got == "long") or (held == "string" and got == "date"):
        return True
    return held.endswith("[]") and got in ("string[]", held)  # an empty list fits any array


class _Server(QuietHTTPServer):
    owner: IterableEmulator


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        raw = self.read_body()  # always drained, even to refuse
        self.server.owner._serve(self, raw)

    do_GET = do_POST = do_DELETE = _serve


class IterableEmulator(BackgroundServer):
    """``with IterableEmulator(api_keys={"k"}) as emu:`` then point the destination at ``emu.url``."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        identify_by: str = "email",
        rate_limits: bool = True,
        drop_new_fields: bool = False,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.api_keys = api_keys or {"iterable-emulator-key"}
        self.identify_by = identify_by
        self.rate_limits = rate_limits
        self.drop_new_fields = drop_new_fields
        self.verbose = verbose
        self.faults = FaultInjector()
        self.throttled = 0
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._users: dict[str, dict[str, Any]] = {}  # identity -> {"email"?, "userId"?, "dataFields"}
        self._fields: dict[str, str] = {}  # field -> type
        self._lists: dict[int, dict[str, Any]] = {}
        self._members: dict[int, set[str]] = {}
        self._forgotten: set[str] = set()
        self._calls: dict[int, deque[float]] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- set-up and inspection --------------------------------------------------------------

    def create_list(self, name: str) -> int:
        with self._lock:
            list_id = 1000 + len(self._lists) + 1
            self._lists[list_id] = {"id": list_id, "name": name, "createdAt": int(time.time() * 1000), "listType": "Standard"}
            self._members[list_id] = set()
            return list_id

    def forget(self, ident: str) -> None:
        """GDPR-forget a user: deleted, and never written again."""
        with self._lock:
            key = self._key(ident)
            self._forgotten.add(key)
            self._drop(key)

    def users(self) -> dict[str, dict[str, Any]]:
        """identity (an email lower-cased, or a userId) -> the user (a copy)."""
        with self._lock:
            return {k: json.loads(json.dumps(u)) for k, u in self._users.items()}

    def identities(self) -> list[str]:
        with self._lock:
            return list(self._users)

    def list_members(self, list_id: int) -> set[str]:
        with self._lock:
            return set(self._members.get(list_id, set()))

    def lists(self) -> dict[int, str]:
        with self._lock:
            return {i: x["name"] for i, x in self._lists.items()}

    def fields(self) -> dict[str, str]:
        with self._lock:
            return dict(self._fields)

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
        path = unquote(urlsplit(handler.path).path)
        method = handler.command
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        fault = self.faults.take(method, path)
        if fault is not None and fault.before:
            status = 0 if fault.kind in ("drop", "timeout") else {"throttle": 429, "unauthorized": 401}.get(fault.kind, fault.status)
            self._record(method, path, status, body)
            serve_before(handler, fault, _error_body)
            return
        serve_before(handler, fault, _error_body)  # a stall waits here
        status, data = self._answer(method, path, body, handler.headers.get("Api-Key"), len(raw))
        self._record(method, path, status, body)
        serve_after(handler, fault, status, json.dumps(data).encode(), JSON)

    def _record(self, method: str, path: str, status: int, body: Any) -> None:
        with self._lock:
            self._log.append(LoggedRequest(method, path, status, None if body is ValueError else body))

    def _answer(self, method: str, path: str, body: Any, key: str | None, size: int) -> Reply:
        if not key or key not in self.api_keys:
            return 401, api_response("BadApiKey", "Invalid API key")
        with self._lock:
            if self._limited(method, path):
                self.throttled += 1
                return 429, api_response("RateLimitExceeded", "Rate limit exceeded")
            if size > MAX_BODY:
                return 400, api_response("BatchTooLarge", f"Request body is larger than {MAX_BODY} bytes")
            if body is ValueError:
                return 400, api_response("BadJsonBody", "Could not parse the request body as JSON")
            return self._route(method, path, body)

    def _limited(self, method: str, path: str) -> bool:
        if not self.rate_limits:
            return False
        for i, (m, pattern, rate) in enumerate(RATE_LIMITS):
            if (m == "*" or m == method) and pattern.match(path):
                now, calls = time.monotonic(), self._calls.setdefault(i, deque())
                while calls and calls[0] <= now - 1.0:
                    calls.popleft()
                if len(calls) >= rate:
                    return True
                calls.append(now)
                return False
        return False

    def _route(self, method: str, path: str, body: Any) -> Reply:
        if path == "/api/users/bulkUpdate" and method == "POST":
            users = body.get("users") if isinstance(body, dict) else None
            if not isinstance(users, list):
                return 400, api_response("BadParams", "users is required")
            return 200, self._write_users(users)
        if path == "/api/users/getFields" and method == "GET":
            return 200, {"fields": dict(self._fields)}
        if path == "/api/lists":
            if method == "GET":
                return 200, {"lists": list(self._lists.values())}
            if method == "POST" and isinstance(body, dict) and body.get("name"):
                list_id = 1000 + len(self._lists) + 1
                self._lists[list_id] = {
                    "id": list_id,
                    "name": str(body["name"]),
                    "createdAt": int(time.time() * 1000),
                    "listType": "Standard",
                }
                self._members[list_id] = set()
                return 200, {"listId": list_id}
            return 400, api_response("BadParams", "name is required")
        if path in ("/api/lists/subscribe", "/api/lists/unsubscribe") and method == "POST":
            list_id = body.get("listId") if isinstance(body, dict) else None
            subscribers = body.get("subscribers") if isinstance(body, dict) else None
            if list_id not in self._lists or not isinstance(subscribers, list):
                return 400, api_response("BadParams", f"Invalid list id: {list_id}")
            if path.endswith("/subscribe"):
                return 200, self._write_users(subscribers, list_id=list_id)
            return 200, self._unsubscribe(list_id, subscribers)
        m = re.match(r"^/api/users/(byUserId/)?(.+)$", path)
        if m and method in ("GET", "DELETE"):
            by_user_id, ident = bool(m.group(1)), m.group(2)
            if not by_user_id and self.identify_by == "userId" and method == "DELETE":
                return 400, api_response("BadParams", "this project identifies users by userId: delete by userId")
            key = self._key(ident, by_user_id=by_user_id)
            if method == "GET":
                return 200, ({"user": self._users[key]} if key in self._users else {})
            if key not in self._users:
                return 404, api_response("NotFound", "User does not exist")
            self._drop(key)
            return 200, api_response("Success", "User deleted")
        return 404, api_response("NotFound", f"{method} {path} is not served")

    # -- the store (called with the lock held) ----------------------------------------------

    def _key(self, ident: str, *, by_user_id: bool | None = None) -> str:
        return ident if (self.identify_by == "userId" or by_user_id) else ident.strip().lower()

    def _drop(self, key: str) -> None:
        self._users.pop(key, None)
        for members in self._members.values():
            members.discard(key)

    def _write_users(self, users: list[Any], *, list_id: int | None = None) -> dict[str, Any]:
        failed: dict[str, list[str]] = {}
        succeeded = 0
        created: set[str] = set()
        filtered: set[str] = set()
        field = self.identify_by
        kind = "Emails" if field == "email" else "UserIds"
        for user in users:
            ident = user.get(field) if isinstance(user, dict) else None
            if not isinstance(ident, str) or not ident or (field == "email" and not _EMAIL.match(ident.strip())):
                failed.setdefault(f"invalid{kind}", []).append(str(ident))
                continue
            if field == "userId" and (len(ident) > 512 or ident != ident.rstrip() or not ident.isascii()):
                failed.setdefault("invalidUserIds", []).append(ident)
                continue
            key = self._key(ident)
            if key in self._forgotten:
                failed.setdefault(f"forgotten{kind}", []).append(ident)
                continue
            data = user.get("dataFields") or {}
            if not isinstance(data, dict) or any(k in self._fields and not _fits(self._fields[k], v) for k, v in data.items()):
                failed.setdefault(f"invalidData{kind}", []).append(ident)
                continue
            kept = {}
            for k, v in data.items():
                if k not in self._fields:
                    if self.drop_new_fields:
                        filtered.add(k)
                        continue
                    if v is not None:
                        self._fields[k] = type_of(v)
                        created.add(k)
                kept[k] = v
            record = self._users.setdefault(key, {field: ident.strip() if field == "email" else ident, "dataFields": {}})
            record["dataFields"].update(kept)
            if list_id is not None:
                self._members[list_id].add(key)
            succeeded += 1
        fail_count = sum(len(v) for v in failed.values())
        return {
            "successCount": succeeded,
            "failCount": fail_count,
            "invalidEmails": failed.get("invalidEmails", []),
            "invalidUserIds": failed.get("invalidUserIds", []),
            "failedUpdates": failed,
            "createdFields": sorted(created),
            "filteredOutFields": sorted(filtered),
        }

    def _unsubscribe(self, list_id: int, subscribers: list[Any]) -> dict[str, Any]:
        field = self.identify_by
        kind = "Emails" if field == "email" else "UserIds"
        not_found: list[str] = []
        for s in subscribers:
            ident = s.get(field) if isinstance(s, dict) else None
            key = self._key(str(ident or ""))
            if key not in self._users:
                not_found.append(str(ident))
                continue
            self._members[list_id].discard(key)
        failed = {f"notFound{kind}": not_found} if not_found else {}
        return {"successCount": len(subscribers) - len(not_found), "failCount": len(not_found), "failedUpdates": failed}


def _error_body(status: int) -> tuple[bytes, str]:
    code = {401: "BadApiKey", 429: "RateLimitExceeded", 400: "BadParams"}.get(status, "GenericError")
    return json.dumps(api_response(code, f"injected HTTP {status}")).encode(), JSON


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_emulators.iterable", description="Serve a local Iterable API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--api-key", action="append", help="accepted Api-Key (repeatable; default: iterable-emulator-key)")
    parser.add_argument("--identify-by", choices=["email", "userId"], default="email")
    parser.add_argument("--list", action="append", default=[], metavar="NAME", help="create a static list (repeatable)")
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    emu = IterableEmulator(
        args.host,
        args.port,
        api_keys=set(args.api_key) if args.api_key else None,
        identify_by=args.identify_by,
        rate_limits=not args.no_rate_limits,
        verbose=args.verbose,
    )
    for name in args.list:
        print(f"list {name!r}: id {emu.create_list(name)}", flush=True)
    emu.serve_until_signal("Iterable emulator on {url} (Ctrl-C to stop)")
    return 0
