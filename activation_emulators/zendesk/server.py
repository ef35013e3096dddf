"""The Zendesk Support API emulator: users, organizations, custom fields, tags and background
jobs over real HTTP, with Zendesk's auth, errors, job limit and fault injection."""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before

JSON = "application/json; charset=utf-8"
PREFIX = "/api/v2/"
BATCH_LIMIT = 100  # users/organizations per *_many call
JOB_LIMIT = 30  # background jobs queued or running per account
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_IDS = re.compile(r"/[0-9a-f]{24}|/\d+")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
USER_ATTRS = frozenset(
    {"name", "email", "external_id", "phone", "alias", "details", "notes", "locale", "time_zone", "role", "organization_id"}
    | {"verified", "tags", "signature", "shared_phone_number", "moderator", "only_private_comments", "suspended", "default_group_id"}
)
ORG_ATTRS = frozenset({"name", "external_id", "details", "notes", "domain_names", "tags", "group_id", "shared_tickets", "shared_comments"})


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error"))
        self.status, self.body, self.headers = status, body, headers or {}


def error_body(status: int) -> dict[str, Any]:
    """Zendesk's error documents (`error` and, mostly, `description`)."""
    return {
        401: {"error": "Couldn't authenticate you"},
        403: {
            "error": "Forbidden",
            "description": "You do not have access to this page. Please contact the account owner of this help desk for further help.",
        },
        404: {"error": "RecordNotFound", "description": "Not found"},
        429: {"error": "TooManyRequests", "description": "Rate limit exceeded"},
        503: {"error": "ServiceUnavailable", "description": "Zendesk is temporarily unavailable"},
    }.get(status, {"error": "InternalError", "description": "Something went wrong"})


@dataclass
class Job:
    id: str
    job_type: str
    total: int
    results: list[dict[str, Any]]
    created: float = field(default_factory=time.monotonic)
    polls: int = 0
    done: bool = False


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int  # 0: the connection was dropped by a fault
    body: Any = None


class _Server(QuietHTTPServer):
    owner: ZendeskEmulator


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        self.server.owner._serve(self, self.read_body())

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class ZendeskEmulator(BackgroundServer):
    """A local Zendesk Support account at ``emu.url`` (``http://127.0.0.1:PORT``)."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: set[str] | None = None,
        oauth_tokens: set[str] | None = None,
        job_polls: int = 1,
        job_limit: int = JOB_LIMIT,
        verbose: bool = False,
    ) -> None:
        self.host, self.port, self.verbose = host, port, verbose
        self.tokens = tokens if tokens is not None else {"zendesk-token"}  # API tokens (email/token:TOKEN)
        self.oauth_tokens = oauth_tokens or set()  # Bearer tokens
        self.job_polls = job_polls  # polls of a job before it says completed
        self.job_limit = job_limit
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._ids = itertools.count(1001)
        self.users: dict[int, dict[str, Any]] = {}
        self.deleted_users: dict[int, dict[str, Any]] = {}
        self.orgs: dict[int, dict[str, Any]] = {}
        self.user_fields: dict[str, dict[str, Any]] = {}  # key -> field
        self.org_fields: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self._log: list[LoggedRequest] = []
        self.throttled = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- set-up and inspection --------------------------------------------------------------

    def add_user_field(self, key: str, type: str = "text", options: list[str] | None = None) -> None:
        with self._lock:
            self.user_fields[key] = _field(next(self._ids), key, type, options)

    def add_organization_field(self, key: str, type: str = "text", options: list[str] | None = None) -> None:
        with self._lock:
            self.org_fields[key] = _field(next(self._ids), key, type, options)

    def people(self) -> dict[str, dict[str, Any]]:
        """Active users by identity: lower-case email, else external_id."""
        with self._lock:
            return {str(u.get("email") or u.get("external_id")).lower(): dict(u) for u in self.users.values()}

    def organizations(self) -> dict[str, dict[str, Any]]:
        """Organizations by lower-case external_id."""
        with self._lock:
            return {str(o.get("external_id")).lower(): dict(o) for o in self.orgs.values()}

    def tagged(self, tag: str) -> set[str]:
        return {k for k, u in self.people().items() if tag in u["tags"]}

    @property
    def request_log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    def counts(self) -> dict[str, int]:
        """Requests per "METHOD /path" (ids folded into {id})."""
        out: dict[str, int] = {}
        for r in self.request_log:
            key = f"{r.method} {_IDS.sub('/{id}', r.path)}"
            out[key] = out.get(key, 0) + 1
        return out

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        split = urlsplit(handler.path)
        path, query = unquote(split.path), dict(parse_qsl(split.query))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        method = handler.command
        fault = self.faults.take(method, path)
        if fault is not None and fault.before:
            status = 0 if fault.kind in ("drop", "timeout") else {"throttle": 429, "unauthorized": 401}.get(fault.kind, fault.status)
            self._record(method, path, query, status, body)
            serve_before(handler, fault, lambda s: (json.dumps(error_body(s)).encode(), JSON))
            return
        headers: dict[str, str] = {}
        try:
            self._auth(handler.headers.get("Authorization", ""))
            if body is ValueError:
                raise ApiError(400, {"error": "Unprocessable Entity", "description": "Invalid JSON"})
            with self._lock:
                status, data = self._route(method, path, query, body)
        except ApiError as e:
            status, data, headers = e.status, e.body, e.headers
        self._record(method, path, query, status, body)
        serve_after(handler, fault, status, json.dumps(data).encode(), JSON, {"X-Rate-Limit": "700", **headers})

    def _record(self, method: str, path: str, query: dict[str, str], status: int, body: Any) -> None:
        with self._lock:
            self._log.append(LoggedRequest(method, path, query, status, None if body is ValueError else body))

    def _auth(self, header: str) -> None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value in self.oauth_tokens:
            return
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = secret = ""
            if user.endswith("/token") and "@" in user and secret in self.tokens:
                return
        raise ApiError(401, error_body(401))

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not path.startswith(PREFIX):
            raise ApiError(404, error_body(404))
        p = path[len(PREFIX) :].removesuffix(".json").strip("/").split("/")
        if p == ["users", "me"] and method == "GET":
            return 200, {"user": {"id": 1, "name": "API agent", "role": "admin", "active": True}}
        if p in (["user_fields"], ["organization_fields"]) and method == "GET":
            fields = list((self.user_fields if p[0] == "user_fields" else self.org_fields).values())
            return 200, {p[0]: fields, "next_page": None, "previous_page": None, "count": len(fields)}
        if p[0] == "job_statuses" and len(p) == 2 and method == "GET":
            return self._job(p[1])
        if p == ["users", "create_or_update_many"] and method == "POST":
            users = _items(body, "users")
            return 200, self._queue("bulk_create_or_update_users", [self._upsert_user(i, u) for i, u in enumerate(users)])
        if p == ["users", "destroy_many"] and method == "DELETE":
            return 200, self._queue("bulk_delete_users", [self._delete(self.users, "user", i, q) for i, q in _targets(query)])
        if p == ["users", "search"] and method == "GET":
            found = self._search(query)
            return 200, {"users": found, "count": len(found), "next_page": None, "previous_page": None}
        if len(p) == 3 and p[0] == "users" and p[2] == "tags" and method in ("PUT", "POST", "DELETE"):
            user = self.users.get(int(p[1])) if p[1].isdigit() else None
            if user is None:
                raise ApiError(404, error_body(404))
            tags = [_tag(t) for t in (body or {}).get("tags") or []]
            if method == "POST":
                user["tags"] = sorted(set(tags))
            elif method == "PUT":
                user["tags"] = sorted(set(user["tags"]) | set(tags))
            else:
                user["tags"] = [t for t in user["tags"] if t not in tags]
            return 200, {"tags": user["tags"]}
        if p == ["organizations", "create_or_update"] and method == "POST":
            return self._upsert_org((body or {}).get("organization") if isinstance(body, dict) else None)
        if p == ["organizations", "destroy_many"] and method == "DELETE":
            return 200, self._queue(
                "bulk_delete_organizations", [self._delete(self.orgs, "organization", i, q) for i, q in _targets(query)]
            )
        raise ApiError(404, error_body(404))

    # -- jobs -------------------------------------------------------------------------------

    def _queue(self, job_type: str, results: list[dict[str, Any]]) -> dict[str, Any]:
        """The work is done now (so a lost answer leaves it applied); the job reports it."""
        open_jobs = [j for j in self.jobs.values() if not j.done and time.monotonic() - j.created < 60]
        if len(open_jobs) >= self.job_limit:
            self.throttled += 1
            raise ApiError(
                429,
                {"error": "TooManyJobs", "description": f"Number of allowed background jobs ({self.job_limit}) exceeded"},
                {"Retry-After": "1"},
            )
        job = Job(uuid.uuid4().hex[:24], job_type, len(results), results)
        self.jobs[job.id] = job
        return {"job_status": self._job_json(job)}

    def _job(self, job_id: str) -> tuple[int, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, error_body(404))
        job.polls += 1
        job.done = job.done or job.polls >= self.job_polls
        return 200, {"job_status": self._job_json(job)}

    def _job_json(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "job_type": job.job_type,
            "url": f"{self.url}{PREFIX}job_statuses/{job.id}.json",
            "total": job.total,
            "progress": job.total if job.done else 0,
            "status": "completed" if job.done else ("working" if job.polls else "queued"),
            "message": "Completed" if job.done else None,
            "results": job.results if job.done else None,
        }

    # -- users ------------------------------------------------------------------------------

    def _find(self, email: str | None, external_id: str | None) -> dict[str, Any] | None:
        for u in self.users.values():
            if email and str(u.get("email") or "").lower() == email.strip().lower():
                return u
            if external_id and str(u.get("external_id") or "").lower() == external_id.strip().lower():
                return u
        return None

    def _upsert_user(self, index: int, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            return _failed(index, "UserCreateError", "Invalid user")
        email, ext = data.get("email"), data.get("external_id")
        user = self._find(email, None if ext is None else str(ext)) if (email or ext is not None) else None
        error = "UserUpdateError" if user else "UserCreateError"
        if email is not None and not _EMAIL.match(str(email).strip()):
            return _failed(index, error, f"Email: {email} is not properly formatted")
        if user is None and not str(data.get("name") or "").strip():
            return _failed(index, error, "Name: is too short (minimum one character)")
        custom = data.get("user_fields") or {}
        problem = _check_custom(self.user_fields, custom)
        if problem:
            return _failed(index, error, problem)
        now = _now()
        if user is None:
            user = {"id": next(self._ids), "email": None, "external_id": None, "tags": [], "user_fields": {}, "role": "end-user"}
            user.update({"active": True, "created_at": now})
            user["user_fields"] = {k: None for k in self.user_fields}
            self.users[user["id"]] = user
            status = "Created"
        else:
            status = "Updated"
        for key, value in data.items():
            if key == "user_fields":
                user["user_fields"].update({k: v for k, v in custom.items() if k in self.user_fields})  # unknown keys: ignored
            elif key == "tags":
                user["tags"] = sorted({_tag(t) for t in value or []})
            elif key == "email" and value is not None:
                user["email"] = str(value).strip().lower()
            elif key in USER_ATTRS:
                user[key] = value
        user["updated_at"] = now
        return {"id": user["id"], "status": status, "email": user["email"], "external_id": user["external_id"]}

    def _search(self, query: dict[str, str]) -> list[dict[str, Any]]:
        if "external_id" in query:
            found = self._find(None, query["external_id"])
        else:
            text = query.get("query", "")
            found = self._find(text.partition(":")[2].strip().strip('"'), None) if text.startswith("email:") else None
        return [dict(found)] if found else []

    def _delete(self, store: dict[int, dict[str, Any]], kind: str, ident: str, by: str) -> dict[str, Any]:
        record = None
        if by == "ids":
            record = store.get(int(ident)) if ident.isdigit() else None
        else:
            record = next((r for r in store.values() if str(r.get("external_id") or "").lower() == ident.lower()), None)
        if record is None:
            return {
                "id": ident,
                "action": "delete",
                "success": False,
                "status": "Failed",
                "error": "RecordNotFound",
                "details": f"{kind.title()} not found",
            }
        del store[record["id"]]
        if kind == "user":  # soft-deleted: kept for 30 days, its identities freed
            self.deleted_users[record["id"]] = {**record, "active": False}
        return {"id": record["id"], "action": "delete", "success": True, "status": "Deleted"}

    # -- organizations ------------------------------------------------------------------------

    def _upsert_org(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict):
            raise ApiError(400, {"error": "InvalidParameter", "description": "organization parameter is missing"})
        ext = data.get("external_id")
        org = None
        if data.get("id") is not None:
            org = self.orgs.get(int(data["id"]))
        elif ext is not None:
            org = next((o for o in self.orgs.values() if str(o.get("external_id") or "").lower() == str(ext).lower()), None)
        name = data.get("name", org["name"] if org else None)
        details: dict[str, Any] = {}
        if not str(name or "").strip():
            details["name"] = [{"description": "Name: cannot be blank", "error": "BlankValue"}]
        elif any(o["name"].lower() == str(name).lower() and o is not org for o in self.orgs.values()):
            details["name"] = [{"description": "Name: has already been taken", "error": "DuplicateValue"}]
        problem = _check_custom(self.org_fields, data.get("organization_fields") or {})
        if problem:
            details["organization_fields"] = [{"description": problem, "error": "InvalidValue"}]
        if details:
            raise ApiError(422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details})
        created = org is None
        if org is None:
            org = {"id": next(self._ids), "external_id": None, "tags": [], "domain_names": [], "created_at": _now()}
            org["organization_fields"] = {k: None for k in self.org_fields}
            self.orgs[org["id"]] = org
        for key, value in data.items():
            if key == "organization_fields":
                org["organization_fields"].update({k: v for k, v in value.items() if k in self.org_fields})
            elif key in ORG_ATTRS:
                org[key] = value
        org["updated_at"] = _now()
        return (201 if created else 200), {"organization": dict(org)}


def _field(id_: int, key: str, type_: str, options: list[str] | None) -> dict[str, Any]:
    field: dict[str, Any] = {"id": id_, "key": key, "type": type_, "title": key.replace("_", " ").title(), "active": True}
    if options is not None:
        field["custom_field_options"] = [{"id": id_ * 100 + i, "name": o, "value": o} for i, o in enumerate(options)]
    return field


def _check_custom(fields: dict[str, dict[str, Any]], values: dict[str, Any]) -> str | None:
    """Zendesk's type rules for custom field values; None when all pass."""
    for key, value in values.items():
        f = fields.get(key)
        if f is None or value is None:
            continue
        t = f["type"]
        options = {o["value"] for o in f.get("custom_field_options") or []}
        ok = {
            "checkbox": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "decimal": isinstance(value, (int, float)) and not isinstance(value, bool),
            "date": isinstance(value, str) and bool(_DATE.match(value)),
            "dropdown": isinstance(value, str) and value in options,
            "multiselect": isinstance(value, list) and all(v in options for v in value),
        }.get(t, isinstance(value, str))
        if not ok:
            return f"{f['title']}: {value!r} is not a valid {t} value"
    return None


def _items(body: Any, key: str) -> list[Any]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ApiError(400, {"error": "InvalidParameter", "description": f"{key} parameter is missing"})
    if len(items) > BATCH_LIMIT:
        raise ApiError(400, {"error": "TooManyValues", "description": f"{key} may contain at most {BATCH_LIMIT} items"})
    return items


def _targets(query: dict[str, str]) -> list[tuple[str, str]]:
    by = "ids" if "ids" in query else "external_ids" if "external_ids" in query else None
    if by is None:
        raise ApiError(400, {"error": "InvalidParameter", "description": "ids or external_ids parameter is missing"})
    values = [v for v in query[by].split(",") if v]
    if len(values) > BATCH_LIMIT:
        raise ApiError(400, {"error": "TooManyValues", "description": f"{by} may contain at most {BATCH_LIMIT} values"})
    return [(v, by) for v in values]


def _failed(index: int, error: str, details: str) -> dict[str, Any]:
    return {"index": index, "error": error, "details": details, "status": "Failed"}


def _tag(value: Any) -> str:
    """Zendesk keeps tags lower-case, spaces turned into underscores."""
    return re.sub(r"\s+", "_", str(value).strip().lower())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
