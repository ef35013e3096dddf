"""The HTTP side of the Mailchimp emulator: routing, Basic auth, the simultaneous-connection
limit, problem+json errors, fault injection and inspection."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before

from .store import Account, MemberError, Problem, subscriber_hash

ERRORS_URL = "https://mailchimp.com/developer/marketing/docs/errors/"
JSON = "application/json; charset=utf-8"
PROBLEM = "application/problem+json; charset=utf-8"
_TITLES = {
    400: ("Invalid Resource", "The resource submitted could not be validated."),
    401: ("API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter."),
    403: ("Forbidden", "You don't have permission to access this resource."),
    404: ("Resource Not Found", "The requested resource could not be found."),
    405: ("Method Not Allowed", "The requested method and resource are not compatible."),
    429: ("Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."),
    500: ("Internal Server Error", "An unexpected internal error has occurred. Please contact Support for more information."),
    503: ("Service Unavailable", "The service is temporarily unavailable. Please try again later."),
}

Reply = tuple[int, Any]  # status, JSON body (None: no body)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    status: int  # 0 when the connection was dropped by a fault
    body: Any = None


def problem_body(status: int, title: str | None = None, detail: str | None = None, errors: list[dict[str, str]] | None = None) -> bytes:
    default_title, default_detail = _TITLES.get(status, ("Error", "An error occurred."))
    doc: dict[str, Any] = {
        "type": ERRORS_URL,
        "title": title or default_title,
        "status": status,
        "detail": detail or default_detail,
        "instance": str(uuid.uuid4()),
    }
    if errors:
        doc["errors"] = errors
    return json.dumps(doc).encode()


class _Server(QuietHTTPServer):
    owner: MailchimpEmulator


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        raw = self.read_body()  # always drain, even to refuse
        self.server.owner._serve(self, raw)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class MailchimpEmulator(BackgroundServer):
    """A local Mailchimp Marketing API 3.0; the SDK reaches it at ``emu.url``::

    client = Client()
    client.set_config({"api_key": emu.api_key, "server": emu.dc})
    client.api_client.host = emu.url
    """

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        dc: str = "us1",
        connection_limit: int = 10,
        latency: float = 0.0,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.dc = dc
        #: Accepted keys (None: any key ending in -<dc>). A key for another data center is refused.
        self.api_keys = api_keys
        self.api_key = next(iter(sorted(api_keys))) if api_keys else f"{'0' * 32}-{dc}"
        #: Simultaneous requests per account (every key of it together) beyond which Mailchimp answers 429.
        self.connection_limit = connection_limit
        #: Seconds each request takes (holding its connection slot), to make concurrency visible.
        self.latency = latency
        self.verbose = verbose
        self.account = Account()
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._inflight = 0
        self._log: list[LoggedRequest] = []
        self.throttled = 0
        self.max_inflight = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/3.0"  # no "server" in it: the SDK replaces that word

    # -- set-up and inspection (thread-safe) ----------------------------------------------

    def create_list(self, name: str, list_id: str | None = None, *, default_merge_fields: bool = True) -> str:
        with self._lock:
            return self.account.create_list(name, list_id, default_merge_fields=default_merge_fields).id

    def add_merge_field(
        self, list_id: str, tag: str, type: str = "text", *, required: bool = False, options: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
            self.account.add_merge_field(list_id, tag, type, required=required, options=options)

    def add_member(self, list_id: str, email: str, status: str = "subscribed", merge_fields: dict[str, Any] | None = None) -> None:
        """Put a member on the list as if it had signed up (e.g. one that since unsubscribed)."""
        with self._lock:
            member, _ = self.account.upsert(
                list_id,
                {"email_address": email, "status": "subscribed", "merge_fields": merge_fields or {}},
                update_existing=True,
                skip_validation=True,
            )
            member.status = status  # any status, cleaned included (the API cannot create those)

    def set_status(self, list_id: str, email: str, status: str) -> None:
        """What a contact does in Mailchimp itself: unsubscribe, bounce (cleaned), confirm."""
        with self._lock:
            self.account.member(list_id, email).status = status

    def forget(self, list_id: str, email: str) -> None:
        """Permanently delete a member (it can never be re-imported)."""
        with self._lock:
            self.account.delete_permanent(list_id, subscriber_hash(email))

    def lists(self) -> dict[str, str]:
        """list id -> audience name."""
        with self._lock:
            return {i: a.name for i, a in self.account.lists.items()}

    def merge_fields(self, list_id: str) -> dict[str, str]:
        """merge tag -> type."""
        with self._lock:
            return {tag: mf.type for tag, mf in self.account.audience(list_id).merge_fields.items()}

    def members(self, list_id: str, *, archived: bool = False) -> dict[str, dict[str, Any]]:
        """email (lower-case) -> member JSON; archived members only with `archived=True`."""
        with self._lock:
            audience = self.account.audience(list_id)
            return {
                m.email_address.lower(): self.account.member_json(audience, m)
                for m in audience.members.values()
                if archived or m.status != "archived"
            }

    def tag_members(self, list_id: str, tag: str) -> set[str]:
        """Lower-case emails of the members carrying `tag`."""
        with self._lock:
            audience = self.account.audience(list_id)
            seg = self.account.segment_by_name(audience, tag)
            return set() if seg is None else {audience.members[h].email_address.lower() for h in seg.members}

    @property
    def request_log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    # -- serving --------------------------------------------------------------------------

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path).rstrip("/") or "/"
        query = dict(parse_qsl(split.query))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        method = handler.command
        fault = self.faults.take(method, path)
        # Recorded before the client can see the answer: a test reading the log right after a
        # call must find it there.
        if fault is not None and fault.before:
            self._record(
                method,
                path,
                query,
                0 if fault.kind in ("drop", "timeout") else {"throttle": 429, "unauthorized": 401}.get(fault.kind, fault.status),
                body,
            )
            serve_before(handler, fault, lambda status: (problem_body(status), PROBLEM))
            return
        key = self._api_key(handler.headers.get("Authorization", ""))
        status, payload, content_type = self._answer(method, path, query, body, key)
        self._record(method, path, query, status, body)
        serve_after(handler, fault, status, payload, content_type)

    def _record(self, method: str, path: str, query: dict[str, str], status: int, body: Any) -> None:
        with self._lock:
            self._log.append(LoggedRequest(method, path, query, status, None if body is ValueError else body))

    @staticmethod
    def _api_key(header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, _, key = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return key or None

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any, key: str | None) -> tuple[int, bytes, str]:
        if key is None:
            return 401, problem_body(401, "API Key Missing", "Your request did not include an API key."), PROBLEM
        if not (key in self.api_keys if self.api_keys is not None else key.endswith(f"-{self.dc}")):
            return 401, problem_body(401), PROBLEM
        with self._lock:
            if self._inflight >= self.connection_limit:
                self.throttled += 1
                return (
                    429,
                    problem_body(429, detail=f"You have exceeded the limit of {self.connection_limit} simultaneous connections."),
                    PROBLEM,
                )
            self._inflight += 1
            self.max_inflight = max(self.max_inflight, self._inflight)
        try:
            if self.latency:
                time.sleep(self.latency)  # holding the connection slot, like a slow real call
            if body is ValueError:
                return 400, problem_body(400, "JSON Schema Error", "We encountered an unspecified JSON parsing error."), PROBLEM
            try:
                with self._lock:
                    status, data = self._route(method, [p for p in path.split("/") if p], query, body)
            except Problem as e:
                return e.status, problem_body(e.status, e.title, e.detail, e.errors), PROBLEM
            except MemberError as e:
                detail = f"{e.error} {e.field}: {e.field_message}".strip() if e.field_message and e.field not in ("status",) else e.error
                errors = [{"field": e.field, "message": e.field_message}] if e.field else None
                return 400, problem_body(400, e.title, detail, errors), PROBLEM
            return status, (json.dumps(data).encode() if data is not None else b""), JSON
        finally:
            with self._lock:
                self._inflight -= 1

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Reply:
        acc = self.account
        if not parts or parts[0] != "3.0":
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        p = parts[1:]
        flag = lambda name: query.get(name, "").lower() == "true"  # noqa: E731
        if p == ["ping"] and method == "GET":
            return 200, {"health_status": "Everything's Chimpy!"}
        if not p and method == "GET":
            return 200, {
                "account_id": "emulated",
                "login_id": "emulated",
                "account_name": "Emulated account",
                "email": "owner@example.org",
                "role": "owner",
                "total_subscribers": sum(len(a.members) for a in acc.lists.values()),
            }
        if p[:1] != ["lists"]:
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        if len(p) == 1:
            if method == "GET":
                lists = list(acc.lists.values())
                offset, count = int(query.get("offset", 0)), int(query.get("count", 10))
                return 200, {"lists": [a.to_json() for a in lists[offset : offset + count]], "total_items": len(lists), "_links": []}
            if method == "POST" and isinstance(body, dict) and body.get("name"):
                return 200, acc.create_list(str(body["name"])).to_json()
            raise Problem(400 if method == "POST" else 405, *_TITLES[400 if method == "POST" else 405])
        audience = acc.audience(p[1])
        rest = p[2:]
        if not rest:
            if method == "GET":
                return 200, audience.to_json()
            if method == "POST":
                return 200, acc.batch_subscribe(audience.id, body, skip_validation=flag("skip_merge_validation"))
        elif rest == ["merge-fields"]:
            if method == "GET":
                fields = [mf.to_json(audience.id) for mf in audience.merge_fields.values()]
                return 200, {"merge_fields": fields, "list_id": audience.id, "total_items": len(fields), "_links": []}
            if method == "POST" and isinstance(body, dict):
                mf = acc.add_merge_field(
                    audience.id,
                    str(body.get("tag", "")),
                    str(body.get("type", "text")),
                    name=body.get("name"),
                    required=bool(body.get("required")),
                    options=body.get("options"),
                )
                return 200, mf.to_json(audience.id)
        elif rest == ["members"]:
            if method == "GET":
                members = [m for m in audience.members.values() if m.status == query.get("status", m.status)]
                offset, count = int(query.get("offset", 0)), int(query.get("count", 10))
                return 200, {
                    "members": [acc.member_json(audience, m) for m in members[offset : offset + count]],
                    "list_id": audience.id,
                    "total_items": len(members),
                    "_links": [],
                }
            if method == "POST" and isinstance(body, dict):
                member, _ = acc.upsert(audience.id, body, update_existing=False, skip_validation=flag("skip_merge_validation"))
                return 200, acc.member_json(audience, member)
        elif rest[0] == "members" and len(rest) >= 2:
            return self._member(method, audience.id, rest[1], rest[2:], body, flag("skip_merge_validation"))
        elif rest[0] == "segments":
            return self._segments(method, audience.id, rest[1:], query, body)
        raise Problem(405, *_TITLES[405])

    def _member(self, method: str, list_id: str, hash_: str, rest: list[str], body: Any, skip: bool) -> Reply:
        acc = self.account
        audience = acc.audience(list_id)
        if not rest:
            if method == "GET":
                return 200, acc.member_json(audience, acc.member(list_id, hash_))
            if method in ("PUT", "PATCH"):
                if not isinstance(body, dict):
                    raise Problem(400, *_TITLES[400])
                if method == "PATCH":  # never creates: 404 for an unknown member
                    email = acc.member(list_id, hash_).email_address
                else:
                    email = str(body.get("email_address") or "")
                    if subscriber_hash(email) != (subscriber_hash(hash_) if "@" in hash_ else hash_.lower()):
                        raise Problem(
                            400,
                            "Invalid Resource",
                            "The resource submitted could not be validated.",
                            [{"field": "email_address", "message": "The email address does not match the subscriber hash."}],
                        )
                member, _ = acc.upsert(list_id, {**body, "email_address": email}, update_existing=True, skip_validation=skip)
                return 200, acc.member_json(audience, member)
            if method == "DELETE":
                acc.archive(list_id, hash_)
                return 204, None
        elif rest == ["tags"]:
            if method == "GET":
                member = acc.member(list_id, hash_)
                tags = [{"id": i, "name": audience.segments[i].name, "date_added": member.last_changed} for i in sorted(member.tags)]
                return 200, {"tags": tags, "total_items": len(tags), "_links": []}
            if method == "POST":
                acc.member_tags(list_id, hash_, (body or {}).get("tags") if isinstance(body, dict) else None)
                return 204, None
        elif rest == ["actions", "delete-permanent"] and method == "POST":
            acc.delete_permanent(list_id, hash_)
            return 204, None
        raise Problem(405, *_TITLES[405])

    def _segments(self, method: str, list_id: str, rest: list[str], query: dict[str, str], body: Any) -> Reply:
        acc = self.account
        audience = acc.audience(list_id)
        if not rest:
            if method == "GET":
                segs = [s for s in audience.segments.values() if query.get("type", "static") == "static"]
                offset, count = int(query.get("offset", 0)), int(query.get("count", 10))
                return 200, {
                    "segments": [acc.segment_json(audience, s) for s in segs[offset : offset + count]],
                    "list_id": list_id,
                    "total_items": len(segs),
                    "_links": [],
                }
            if method == "POST" and isinstance(body, dict):
                seg = acc.create_segment(list_id, str(body.get("name") or ""), list(body.get("static_segment") or []))
                return 200, acc.segment_json(audience, seg)
        elif len(rest) == 1:
            try:
                segment_id = int(rest[0])
            except ValueError:
                raise Problem(404, *_TITLES[404]) from None
            if method == "GET":
                seg = audience.segments.get(segment_id)
                if seg is None:
                    raise Problem(404, *_TITLES[404])
                return 200, acc.segment_json(audience, seg)
            if method == "POST":
                return 200, acc.segment_batch(list_id, segment_id, body)
        raise Problem(405, *_TITLES[405])
