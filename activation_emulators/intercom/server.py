"""The Intercom emulator: contacts (users and leads) keyed by external_id or email, companies
by company_id, tags, data attributes, Bearer tokens, error.list answers, Intercom's rate limit
with its X-RateLimit-* headers, fault injection and inspection."""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import Fault, FaultInjector, send_bytes, serve_after, serve_before

JSON = "application/json"
VERSIONS = frozenset({"1.0", "1.1", "1.2", "1.3", "1.4", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8"} | {"2.9", "2.10"})
VERSIONS = VERSIONS | {"2.11", "2.12", "2.13", "2.14", "2.15", "Unstable"}
CONTACT_FIELDS = ("external_id", "email", "phone", "name", "avatar", "signed_up_at", "last_seen_at", "owner_id", "unsubscribed_from_emails")
COMPANY_FIELDS = ("name", "plan", "size", "website", "industry", "remote_created_at", "monthly_spend")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "float": (int, float), "boolean": (bool,), "date": (int,)}


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    status: int  # 0: the connection was dropped by a fault
    body: Any = None


def error_list(status: int, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    defaults = {
        400: ("parameter_invalid", "Bad Request"),
        401: ("unauthorized", "Access Token Invalid"),
        403: ("forbidden", "Forbidden"),
        404: ("not_found", "Resource Not Found"),
        429: ("rate_limit_exceeded", "Exceeded rate limit"),
        500: ("server_error", "Internal Server Error"),
        502: ("server_error", "Bad Gateway"),
        503: ("service_unavailable", "Service Unavailable"),
    }
    c, m = defaults.get(status, ("error", "Error"))
    return {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [{"code": code or c, "message": message or m}]}


def error_body(status: int) -> tuple[bytes, str]:
    return json.dumps(error_list(status)).encode(), JSON


class _Handler(KeepAliveHandler):
    server: QuietHTTPServer

    def _serve(self) -> None:
        raw = self.read_body()  # always drain, even to refuse
        self.server.owner._serve(self, raw)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class IntercomEmulator(BackgroundServer):
    """A local Intercom REST API at ``emu.url`` (the `base_url`), accepting ``emu.token``."""

    server_class = QuietHTTPServer
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: set[str] | None = None,
        rate_limit: int = 10_000,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.tokens = tokens or {"intercom-emulator-token"}
        self.token = sorted(self.tokens)[0]
        #: calls per minute per app, counted (as Intercom does) in 10-second windows of a sixth each
        self.rate_limit = rate_limit
        self.window = 10.0
        #: seconds a new contact stays invisible to /contacts/search (Intercom's documented delay)
        self.search_lag = 0.0
        self.verbose = verbose
        self.faults = FaultInjector()
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.contacts: dict[str, dict[str, Any]] = {}  # id -> contact
        self.companies: dict[str, dict[str, Any]] = {}  # id -> company
        self.tags: dict[str, str] = {}  # id -> name
        self.attributes: dict[str, dict[str, str]] = {"contact": {}, "company": {}}  # model -> custom name -> data type
        self.versions: set[str] = set()  # Intercom-Version headers seen
        self._log: list[LoggedRequest] = []
        self._window_state = (0.0, 0)
        self.throttled = 0

    @property
    def per_window(self) -> int:
        """Calls allowed in one window: the minute's limit, evenly spread."""
        return max(1, round(self.rate_limit * self.window / 60))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- set-up and inspection ---------------------------------------------------------------

    def add_attribute(self, model: str, name: str, data_type: str = "string") -> None:
        """A custom data attribute (`model` contact or company; string, integer, float, boolean, date)."""
        with self.lock:
            self.attributes[model][name] = data_type

    def live_contacts(self) -> list[dict[str, Any]]:
        """Copies of the contacts that are not archived."""
        with self.lock:
            return [json.loads(json.dumps(c)) for c in self.contacts.values() if not c["archived"]]

    def archived_contacts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(json.dumps(c)) for c in self.contacts.values() if c["archived"]]

    def tagged(self, tag: str) -> set[str]:
        """Ids of live contacts carrying the tag named `tag`."""
        with self.lock:
            ids = {i for i, n in self.tags.items() if n == tag}
            return {c["id"] for c in self.contacts.values() if not c["archived"] and set(c["tags"]) & ids}

    @property
    def request_log(self) -> list[LoggedRequest]:
        with self.lock:
            return list(self._log)

    def request_count(self, path: str | None = None, method: str | None = None) -> int:
        return sum(1 for r in self.request_log if (path is None or r.path == path) and (method is None or r.method == method))

    # -- HTTP --------------------------------------------------------------------------------

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        parts = urlsplit(handler.path)
        path, method = parts.path.rstrip("/") or "/", handler.command
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        # a create is offered to faults as "POST /contacts:create", so a fault can strike it alone
        fault = self.faults.take(method, path + (":create" if (method, path) == ("POST", "/contacts") else ""))
        if fault is not None and fault.kind == "throttle":  # Intercom's way: X-RateLimit-* headers
            self._record(method, path, 429, body)
            self._throttle(handler, fault)
            return
        if fault is not None and serve_before(handler, fault, error_body):
            self._record(method, path, {"error": fault.status, "unauthorized": 401}.get(fault.kind, 0), body)
            return
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:].strip() not in self.tokens:
            self._record(method, path, 401, body)
            serve_after(handler, None, 401, *error_body(401))
            return
        limits = self._count()
        if limits is None:
            self._record(method, path, 429, body)
            self._throttle(handler, None)
            return
        version = handler.headers.get("Intercom-Version")
        if version is not None and version not in VERSIONS:
            status, reply = 400, error_list(400, "intercom_version_invalid", f"Requested version {version} is not valid")
        else:
            if version:
                with self.lock:
                    self.versions.add(version)
            status, reply = self._route(method, path, dict(parse_qsl(parts.query)), body)
        self._record(method, path, status, body)
        serve_after(handler, fault, status, json.dumps(reply).encode(), JSON, limits)

    def _record(self, method: str, path: str, status: int, body: Any) -> None:
        with self.lock:
            self._log.append(LoggedRequest(method, path, status, None if body is ValueError else body))
        if self.verbose:
            print(f"{method} {path} -> {status}", flush=True)

    def _count(self) -> dict[str, str] | None:
        """The rate-limit headers of a request, or None when it is over the limit."""
        per_window = self.per_window
        now = time.time()
        with self.lock:
            start, used = self._window_state
            if now - start >= self.window:
                start, used = math.floor(now / self.window) * self.window, 0
            used += 1
            self._window_state = (start, used)
            over = used > per_window
            if over:
                self.throttled += 1
        headers = {
            "X-RateLimit-Limit": str(per_window),
            "X-RateLimit-Remaining": str(max(0, per_window - used)),
            "X-RateLimit-Reset": str(math.ceil(start + self.window)),
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
            reset = math.ceil(self._window_state[0] + self.window)
        limit = str(self.per_window)
        headers = {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
        send_bytes(handler, 429, *error_body(429), headers)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if body is ValueError:
            return 400, error_list(400, "parameter_invalid", "The body is not valid JSON")
        segments = [unquote(s) for s in path.strip("/").split("/")]
        with self.lock:
            match (method, segments):
                case ("GET", ["data_attributes"]):
                    return self._data_attributes(query.get("model", "contact"))
                case ("GET", ["tags"]):
                    return 200, {"type": "list", "data": [{"type": "tag", "id": i, "name": n} for i, n in self.tags.items()]}
                case ("POST", ["tags"]):
                    return self._tag_create(body or {})
                case ("POST", ["contacts", "search"]):
                    return self._search(body or {})
                case ("POST", ["contacts"]):
                    return self._create(body or {})
                case ("GET", ["contacts", cid]):
                    contact = self._live(cid)
                    return (200, self._out(contact)) if contact else (404, error_list(404, "not_found", "User Not Found"))
                case ("PUT", ["contacts", cid]):
                    return self._update(cid, body or {})
                case ("DELETE", ["contacts", cid]):
                    contact = self.contacts.pop(cid, None)
                    if contact is None:
                        return 404, error_list(404, "not_found", "User Not Found")
                    return 200, {"id": cid, "external_id": contact.get("external_id"), "type": "contact", "deleted": True}
                case ("POST", ["contacts", cid, ("archive" | "unarchive") as action]):
                    contact = self.contacts.get(cid)
                    if contact is None:
                        return 404, error_list(404, "not_found", "User Not Found")
                    contact["archived"] = action == "archive"
                    return 200, {"id": cid, "external_id": contact.get("external_id"), "type": "contact", "archived": contact["archived"]}
                case ("POST", ["contacts", cid, "tags"]):
                    return self._tag_contact(cid, str((body or {}).get("id")), add=True)
                case ("DELETE", ["contacts", cid, "tags", tid]):
                    return self._tag_contact(cid, tid, add=False)
                case ("POST", ["companies"]):
                    return self._company(body or {})
                case ("GET", ["companies"]):
                    found = [c for c in self.companies.values() if c["company_id"] == query.get("company_id")]
                    return (200, found[0]) if found else (404, error_list(404, "company_not_found", "Company Not Found"))
                case ("DELETE", ["companies", cid]):
                    if self.companies.pop(cid, None) is None:
                        return 404, error_list(404, "company_not_found", "Company Not Found")
                    return 200, {"id": cid, "object": "company", "deleted": True}
        return 404, error_list(404, "not_found", "Resource Not Found")

    # -- the endpoints (under the lock) ------------------------------------------------------

    def _next_id(self) -> str:
        return f"{0x6762F0000000000000000000 + next(self._ids):x}"

    @staticmethod
    def _out(contact: dict[str, Any]) -> dict[str, Any]:
        """A contact as Intercom answers it (tags as a list object; no emulator bookkeeping)."""
        out = {k: v for k, v in contact.items() if not k.startswith("_")}
        out["tags"] = {"type": "list", "data": [{"type": "tag", "id": t} for t in contact["tags"]], "total_count": len(contact["tags"])}
        return out

    def _live(self, cid: str) -> dict[str, Any] | None:
        contact = self.contacts.get(cid)
        return contact if contact is not None and not contact["archived"] else None

    def _data_attributes(self, model: str) -> tuple[int, Any]:
        if model not in self.attributes:
            return 400, error_list(400, "parameter_invalid", f"model {model!r} is not contact or company")
        standard = CONTACT_FIELDS if model == "contact" else COMPANY_FIELDS
        data = [
            {"type": "data_attribute", "name": n, "full_name": n, "model": model, "custom": False, "api_writable": True} for n in standard
        ]
        data += [
            {"type": "data_attribute", "name": n, "full_name": f"custom_attributes.{n}", "model": model, "data_type": t}
            | {"custom": True, "archived": False, "api_writable": True}
            for n, t in self.attributes[model].items()
        ]
        return 200, {"type": "list", "data": data}

    def _invalid(self, model: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """The refusal of a write whose email or custom attributes Intercom would not take."""
        email = body.get("email")
        if email is not None and not (isinstance(email, str) and _EMAIL.match(email)):
            return 400, error_list(400, "parameter_invalid", "Email is invalid")
        custom = body.get("custom_attributes") or {}
        if not isinstance(custom, dict):
            return 400, error_list(400, "parameter_invalid", "custom_attributes must be an object")
        for name, value in custom.items():
            data_type = self.attributes[model].get(name)
            if data_type is None:
                return 400, error_list(400, "parameter_not_found", f"Custom attribute '{name}' does not exist")
            ok = _TYPES.get(data_type, (str,))
            if value is not None and (not isinstance(value, ok) or (isinstance(value, bool) and data_type != "boolean")):
                return 400, error_list(400, "parameter_invalid", f"Custom attribute '{name}' must be of type {data_type}")
        return None

    def _holder(self, body: dict[str, Any], role: str) -> dict[str, Any] | None:
        """The contact a create with these details would duplicate (leads may share an email)."""
        if body.get("external_id"):
            return next((c for c in self.contacts.values() if c.get("external_id") == body["external_id"]), None)
        email = str(body.get("email") or "").lower()
        if role == "user" and email:
            return next((c for c in self.contacts.values() if c["role"] == "user" and str(c.get("email") or "").lower() == email), None)
        return None

    def _apply(self, contact: dict[str, Any], body: dict[str, Any]) -> None:
        for f in CONTACT_FIELDS:
            if f in body:
                contact[f] = body[f]
        for name, value in (body.get("custom_attributes") or {}).items():
            if value is None:
                contact["custom_attributes"].pop(name, None)
            else:
                contact["custom_attributes"][name] = value
        contact["updated_at"] = int(time.time())

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        role = body.get("role") or "user"
        if role not in ("user", "lead"):
            return 400, error_list(400, "parameter_invalid", "role must be user or lead")
        if not (body.get("email") or body.get("external_id") or body.get("role")):
            return 400, error_list(400, "parameter_invalid", "email, external_id or role is required")
        if (problem := self._invalid("contact", body)) is not None:
            return problem
        if (holder := self._holder(body, role)) is not None:
            which = "An archived contact" if holder["archived"] else "A contact"
            return 409, error_list(409, "conflict", f"{which} matching those details already exists with id={holder['id']}")
        cid = self._next_id()
        now = int(time.time())
        contact = {"type": "contact", "id": cid, "role": role, "archived": False, "created_at": now, "custom_attributes": {}, "tags": []}
        contact |= {f: None for f in CONTACT_FIELDS}
        self._apply(contact, body)
        contact["_searchable_at"] = time.monotonic() + self.search_lag
        self.contacts[cid] = contact
        return 200, self._out(contact)

    def _update(self, cid: str, body: dict[str, Any]) -> tuple[int, Any]:
        contact = self._live(cid)
        if contact is None:
            return 404, error_list(404, "not_found", "User Not Found")
        if (problem := self._invalid("contact", body)) is not None:
            return problem
        external_id = body.get("external_id")
        if external_id and any(c.get("external_id") == external_id and c["id"] != cid for c in self.contacts.values()):
            return 409, error_list(409, "conflict", "A contact matching those details already exists")
        self._apply(contact, body)
        return 200, self._out(contact)

    def _matches(self, contact: dict[str, Any], query: dict[str, Any]) -> bool:
        if query.get("operator") in ("AND", "OR"):
            parts = [self._matches(contact, q) for q in query.get("value") or []]
            return all(parts) if query["operator"] == "AND" else any(parts)
        field, op, value = query.get("field"), query.get("operator"), query.get("value")
        held = contact.get(str(field))
        if field == "email":
            held, value = str(held or "").lower(), str(value or "").lower()
        if op == "=":
            return held == value
        if op == "!=":
            return held != value
        if op == "IN":
            return held in (value or [])
        return False

    def _search(self, body: dict[str, Any]) -> tuple[int, Any]:
        query = body.get("query")
        if not isinstance(query, dict):
            return 400, error_list(400, "parameter_invalid", "query is required")
        paging = body.get("pagination") or {}
        per_page = max(1, min(int(paging.get("per_page") or 50), 150))
        now = time.monotonic()
        found = [c for c in self.contacts.values() if not c["archived"] and c["_searchable_at"] <= now and self._matches(c, query)]
        start = int(paging["starting_after"]) if str(paging.get("starting_after") or "").isdigit() else 0
        page = found[start : start + per_page]
        pages: dict[str, Any] = {"type": "pages", "page": start // per_page + 1, "per_page": per_page}
        pages["total_pages"] = math.ceil(len(found) / per_page)
        if start + per_page < len(found):
            pages["next"] = {"per_page": per_page, "starting_after": str(start + per_page)}
        return 200, {"type": "list", "data": [self._out(c) for c in page], "total_count": len(found), "pages": pages}

    def _tag_create(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return 400, error_list(400, "parameter_invalid", "invalid tag parameters")
        tid = next((i for i, n in self.tags.items() if n == name), None)
        if tid is None:
            tid = str(100 + len(self.tags))
            self.tags[tid] = name
        for user in body.get("users") or []:  # "tag contacts": {name, users: [{id}]}
            contact = self._live(str(user.get("id")))
            if contact is None:
                return 404, error_list(404, "not_found", "User Not Found")
            if tid not in contact["tags"]:
                contact["tags"].append(tid)
        return 200, {"type": "tag", "id": tid, "name": name}

    def _tag_contact(self, cid: str, tid: str, *, add: bool) -> tuple[int, Any]:
        contact = self._live(cid)
        if contact is None:
            return 404, error_list(404, "not_found", "User Not Found")
        if tid not in self.tags:
            return 404, error_list(404, "not_found", "Resource Not Found")
        if add and tid not in contact["tags"]:
            contact["tags"].append(tid)
        elif not add and tid in contact["tags"]:
            contact["tags"].remove(tid)
        return 200, {"type": "tag", "id": tid, "name": self.tags[tid], "applied_at": int(time.time())}

    def _company(self, body: dict[str, Any]) -> tuple[int, Any]:
        company_id = body.get("company_id")
        if not isinstance(company_id, str) or not company_id:
            return 400, error_list(400, "bad_request", "company_id is required")
        if (problem := self._invalid("company", {k: v for k, v in body.items() if k != "email"})) is not None:
            return problem
        company = next((c for c in self.companies.values() if c["company_id"] == company_id), None)
        if company is None:
            cid = self._next_id()
            company = {"type": "company", "id": cid, "company_id": company_id, "custom_attributes": {}, "created_at": int(time.time())}
            company |= {f: None for f in COMPANY_FIELDS}
            self.companies[cid] = company
        for f in COMPANY_FIELDS:
            if f in body:
                company[f] = body[f]
        for name, value in (body.get("custom_attributes") or {}).items():
            if value is None:
                company["custom_attributes"].pop(name, None)
            else:
                company["custom_attributes"][name] = value
        return 200, company
