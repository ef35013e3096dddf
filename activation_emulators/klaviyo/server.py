"""The Klaviyo emulator: routing, the private-key and revision headers, per-endpoint rate
limits, profiles, import jobs, lists, suppressions and deletions, and fault injection (see
`activation_emulators.klaviyo` for what it models)."""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before

JSONAPI = "application/vnd.api+json"
MAX_JOB_PROFILES = 10000
MAX_JOB_BYTES = 5 * 1024 * 1024
MAX_PROFILE_BYTES = 100 * 1024
#: Klaviyo's tiers: (burst per second, steady per minute).
TIERS = {"XS": (1, 15), "S": (3, 60), "M": (10, 150), "L": (75, 700)}
#: (method, path pattern, tier) as the API reference gives each endpoint.
LIMITS: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/accounts$"), "XS"),
    ("POST", re.compile(r"^/api/data-privacy-deletion-jobs$"), "S"),
    ("*", re.compile(r"^/api/profile-bulk-import-jobs"), "M"),
    ("POST", re.compile(r"^/api/lists$"), "M"),
    ("*", re.compile(r"^/api/lists/[^/]+/relationships/profiles$"), "M"),
    ("*", re.compile(r"^/api/lists"), "L"),
    ("*", re.compile(r"^/api/profile-suppression-bulk-(create|delete)-jobs$"), "L"),
    ("GET", re.compile(r"^/api/profiles$"), "L"),
]
IDENTIFIERS = ("email", "external_id", "phone_number")  # the order a profile is matched in
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_FILTER = re.compile(r"^(equals|any)\((\w+),(.*)\)$")

Reply = tuple[int, Any]


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int  # 0: the connection was dropped by a fault
    body: Any = None


def error(status: int, code: str, title: str, detail: str, pointer: str | None = None) -> dict[str, Any]:
    """Klaviyo's JSON:API error document."""
    e: dict[str, Any] = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": title, "detail": detail}
    e["source"] = {"pointer": pointer or "/data/"}
    return {"errors": [e]}


def _id() -> str:
    return uuid.uuid4().hex[:26].upper()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


class _Server(QuietHTTPServer):
    owner: KlaviyoEmulator


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        raw = self.read_body()  # always drained, even to refuse
        self.server.owner._serve(self, raw)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve


class KlaviyoEmulator(BackgroundServer):
    """``with KlaviyoEmulator(api_keys={"pk_x"}) as emu:`` then point the SDK's host at ``emu.url``."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        rate_limits: bool = True,
        polls_to_complete: int = 1,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.api_keys = api_keys or {"pk_klaviyo_emulator"}
        self.rate_limits = rate_limits
        self.polls_to_complete = polls_to_complete  # GETs of an import job that see it processing
        self.verbose = verbose
        self.faults = FaultInjector()
        self.throttled = 0
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._profiles: dict[str, dict[str, Any]] = {}  # id -> {"id", "attributes", "suppressed": reason | None}
        self._lists: dict[str, dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._windows: dict[tuple[str, str], list[float]] = {}  # (tier pattern, window) -> [start, count]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- set-up and inspection --------------------------------------------------------------

    def create_list(self, name: str) -> str:
        with self._lock:
            return self._new_list(name)

    def suppress(self, email: str, reason: str = "UNSUBSCRIBE") -> None:
        """Suppress a profile as a person would (unsubscribed, bounced): no API lifts it."""
        with self._lock:
            self._profile_for({"email": email})["suppressed"] = reason

    def profiles(self) -> dict[str, dict[str, Any]]:
        """Lower-cased email -> the profile's attributes (a copy), for profiles with an email."""
        with self._lock:
            return {
                p["attributes"]["email"].lower(): json.loads(json.dumps(p["attributes"]))
                for p in self._profiles.values()
                if p["attributes"].get("email")
            }

    def held(self) -> list[str]:
        """The emails of profiles that can be marketed to (not suppressed), lower-cased."""
        with self._lock:
            return [
                p["attributes"]["email"].lower() for p in self._profiles.values() if p["attributes"].get("email") and not p["suppressed"]
            ]

    def suppressed(self) -> dict[str, str]:
        with self._lock:
            return {p["attributes"]["email"].lower(): p["suppressed"] for p in self._profiles.values() if p["suppressed"]}

    def lists(self) -> dict[str, str]:
        with self._lock:
            return {i: x["attributes"]["name"] for i, x in self._lists.items()}

    def list_members(self, list_id: str) -> set[str]:
        """The lower-cased emails of a list's members."""
        with self._lock:
            return {str(self._profiles[p]["attributes"].get("email", "")).lower() for p in self._members.get(list_id, set())}

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
        path, query = unquote(parts.path).rstrip("/"), {k: v[-1] for k, v in parse_qs(parts.query).items()}
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
        status, data, headers = self._answer(method, path, query, body, handler.headers, len(raw))
        self._record(method, path, status, body)
        payload = b"" if data is None else json.dumps(data).encode()
        serve_after(handler, fault, status, payload, JSONAPI, headers)

    def _record(self, method: str, path: str, status: int, body: Any) -> None:
        with self._lock:
            self._log.append(LoggedRequest(method, path, status, None if body is ValueError else body))

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any, headers: Any, size: int) -> tuple[int, Any, dict[str, str]]:
        auth = str(headers.get("Authorization") or "")
        scheme, _, key = auth.partition(" ")
        if scheme != "Klaviyo-API-Key" or key not in self.api_keys:
            detail = "Missing or invalid private key." if auth else "Authentication credentials were not provided."
            return 401, error(401, "not_authenticated", "Authentication credentials were not provided.", detail), {}
        if not headers.get("revision"):
            return 400, error(400, "invalid", "Invalid input.", "The revision header is required."), {}
        with self._lock:
            limited, extra = self._limited(method, path)
            if limited:
                self.throttled += 1
                return (
                    429,
                    error(
                        429,
                        "throttled",
                        "Request was throttled.",
                        f"Request was throttled. Expected available in {extra['Retry-After']} second.",
                    ),
                    extra,
                )
            if body is ValueError:
                return 400, error(400, "invalid", "Invalid input.", "Malformed JSON body."), extra
            status, data = self._route(method, path, query, body, size)
            return status, data, extra

    def _limited(self, method: str, path: str) -> tuple[bool, dict[str, str]]:
        """Fixed burst (1 s) and steady (60 s) windows of the endpoint's tier; RateLimit-* on
        answers that are not a 429, Retry-After (only) on a 429."""
        if not self.rate_limits:
            return False, {}
        for m, pattern, tier in LIMITS:
            if (m == "*" or m == method) and pattern.match(path):
                burst, steady = TIERS[tier]
                now = time.monotonic()
                waits = []
                for span, most in ((1.0, burst), (60.0, steady)):
                    window = self._windows.setdefault((pattern.pattern + method, str(span)), [now, 0])
                    if now - window[0] >= span:
                        window[0], window[1] = now, 0
                    if window[1] >= most:
                        waits.append(max(1, int(window[0] + span - now + 0.999)))
                if waits:
                    return True, {"Retry-After": str(max(waits))}
                for span in ("1.0", "60.0"):
                    self._windows[(pattern.pattern + method, span)][1] += 1
                steady_window = self._windows[(pattern.pattern + method, "60.0")]
                return False, {
                    "RateLimit-Limit": str(steady),
                    "RateLimit-Remaining": str(max(0, steady - int(steady_window[1]))),
                    "RateLimit-Reset": str(max(0, int(steady_window[0] + 60 - now))),
                }
        return False, {}

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, size: int) -> Reply:
        if path == "/api/accounts" and method == "GET":
            return 200, {"data": [{"type": "account", "id": "EMULATOR", "attributes": {"contact_information": {}}}], "links": {}}
        if path == "/api/profile-bulk-import-jobs" and method == "POST":
            return self._create_job(body, size)
        if m := re.match(r"^/api/profile-bulk-import-jobs/([^/]+)(/import-errors)?$", path):
            job = self._jobs.get(m.group(1))
            if job is None or method != "GET":
                return 404, error(404, "not_found", "Not found.", f"A job with id {m.group(1)} was not found.")
            if m.group(2):
                return 200, self._page(job["errors"], query, path)
            return 200, {"data": self._poll(job)}
        if path == "/api/profiles" and method == "GET":
            return self._find_profiles(query, path)
        if path == "/api/lists":
            if method == "GET":
                found = list(self._lists.values())
                if f := _FILTER.match(query.get("filter", "")):
                    values = _filter_values(f.group(3))
                    found = [x for x in found if x["attributes"].get(f.group(2)) in values or x["id"] in values and f.group(2) == "id"]
                return 200, self._page(found, query, path, size_max=10)
            name = ((body or {}).get("data") or {}).get("attributes", {}).get("name") if isinstance(body, dict) else None
            if method == "POST" and isinstance(name, str) and name:
                list_id = self._new_list(name)
                return 201, {"data": self._lists[list_id]}
            return 400, error(400, "invalid", "Invalid input.", "A list name is required.", "/data/attributes/name")
        if m := re.match(r"^/api/lists/([^/]+)(/relationships/profiles)?$", path):
            list_id = m.group(1)
            if list_id not in self._lists:
                return 404, error(404, "not_found", "Not found.", f"A list with id {list_id} does not exist.")
            if not m.group(2):
                return (
                    (200, {"data": self._lists[list_id]})
                    if method == "GET"
                    else (405, error(405, "method_not_allowed", "Method not allowed.", method))
                )
            return self._membership(method, list_id, body)
        if path in ("/api/profile-suppression-bulk-create-jobs", "/api/profile-suppression-bulk-delete-jobs") and method == "POST":
            return self._suppression(path.endswith("create-jobs"), body)
        if path == "/api/data-privacy-deletion-jobs" and method == "POST":
            return self._deletion(body)
        return 404, error(404, "not_found", "Not found.", f"{method} {path} is not served.")

    # -- the store (called with the lock held) ----------------------------------------------

    def _new_list(self, name: str) -> str:
        list_id = _id()[:6]
        self._lists[list_id] = {
            "type": "list",
            "id": list_id,
            "attributes": {"name": name, "created": _now(), "updated": _now(), "opt_in_process": "single_opt_in"},
        }
        self._members[list_id] = set()
        return list_id

    def _find(self, attrs: dict[str, Any]) -> dict[str, Any] | None:
        for ident in IDENTIFIERS:
            value = attrs.get(ident)
            if not value:
                continue
            for p in self._profiles.values():
                held = p["attributes"].get(ident)
                if held and (held.lower() == str(value).lower() if ident == "email" else held == value):
                    return p
        return None

    def _profile_for(self, attrs: dict[str, Any]) -> dict[str, Any]:
        found = self._find(attrs)
        if found is None:
            pid = _id()
            found = self._profiles[pid] = {
                "type": "profile",
                "id": pid,
                "attributes": {"properties": {}, "created": _now()},
                "suppressed": None,
            }
        return found

    def _page(self, items: list[dict[str, Any]], query: dict[str, str], path: str, size_max: int = 100) -> dict[str, Any]:
        size = min(int(query.get("page[size]") or (10 if size_max == 10 else 20)), size_max)
        start = int(query.get("page[cursor]") or 0)
        links: dict[str, Any] = {"self": f"{self.url}{path}", "next": None, "prev": None}
        if start + size < len(items):
            links["next"] = f"{self.url}{path}?page%5Bsize%5D={size}&page%5Bcursor%5D={start + size}"
        return {"data": items[start : start + size], "links": links}

    def _create_job(self, body: Any, size: int) -> Reply:
        data = body.get("data") if isinstance(body, dict) else None
        profiles = (((data or {}).get("attributes") or {}).get("profiles") or {}).get("data") if isinstance(data, dict) else None
        if not isinstance(profiles, list) or (data or {}).get("type") != "profile-bulk-import-job":
            return 400, error(
                400, "invalid", "Invalid input.", "A profile-bulk-import-job with profiles is required.", "/data/attributes/profiles"
            )
        if len(profiles) > MAX_JOB_PROFILES:
            return 400, error(
                400, "invalid", "Invalid input.", f"At most {MAX_JOB_PROFILES} profiles per job.", "/data/attributes/profiles/data"
            )
        if size > MAX_JOB_BYTES:
            return 413, error(413, "request_too_large", "Request too large.", "The payload is larger than 5 MB.")
        lists = [str(x.get("id")) for x in (((data.get("relationships") or {}).get("lists") or {}).get("data") or [])]
        if missing := [x for x in lists if x not in self._lists]:
            return 400, error(400, "invalid", "Invalid input.", f"List {missing[0]} does not exist.", "/data/relationships/lists")
        job_id = _id()
        self._jobs[job_id] = {
            "id": job_id,
            "profiles": profiles,
            "lists": lists,
            "polls": 0,
            "status": "queued",
            "errors": [],
            "created_at": _now(),
            "completed_at": None,
        }
        if self.polls_to_complete <= 0:
            self._run(self._jobs[job_id])
        return 202, {"data": self._resource(self._jobs[job_id]), "links": {"self": f"{self.url}/api/profile-bulk-import-jobs/{job_id}"}}

    def _resource(self, job: dict[str, Any]) -> dict[str, Any]:
        failed = len(job["errors"])
        done = job["status"] == "complete"
        attrs = {"status": job["status"], "created_at": job["created_at"], "total_count": len(job["profiles"]),
                 "completed_count": len(job["profiles"]) - failed if done else 0, "failed_count": failed,
                 "completed_at": job["completed_at"], "expires_at": None, "started_at": job["created_at"]}  # fmt: skip
        return {"type": "profile-bulk-import-job", "id": job["id"], "attributes": attrs}

    def _poll(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["status"] != "complete":
            job["polls"] += 1
            if job["polls"] > self.polls_to_complete:
                self._run(job)
            else:
                job["status"] = "processing"
        return self._resource(job)

    def _run(self, job: dict[str, Any]) -> None:
        """Apply the job: each profile upserted by identity, or one import error naming it."""
        for i, item in enumerate(job["profiles"]):
            attrs = item.get("attributes") if isinstance(item, dict) else None
            problem = _invalid(attrs)
            if problem is not None:
                field, detail = problem
                pointer = f"/data/attributes/profiles/data/{i}/attributes/{field}"
                attributes = {
                    "code": "invalid",
                    "title": "Invalid input.",
                    "detail": detail,
                    "source": {"pointer": pointer},
                    "original_payload": attrs,
                }
                job["errors"].append({"type": "import-error", "id": str(uuid.uuid4()), "attributes": attributes})
                continue
            assert isinstance(attrs, dict)
            profile = self._profile_for(attrs)
            held = profile["attributes"]
            for k, v in attrs.items():
                if k == "properties":
                    for pk, pv in (v or {}).items():
                        if pv is None:
                            held["properties"].pop(pk, None)
                        else:
                            held["properties"][pk] = pv
                elif v is None:
                    held.pop(k, None)
                else:
                    held[k] = v
            held["updated"] = _now()
            for list_id in job["lists"]:
                self._members[list_id].add(profile["id"])
        job["status"], job["completed_at"] = "complete", _now()

    def _find_profiles(self, query: dict[str, str], path: str) -> Reply:
        found = list(self._profiles.values())
        if raw := query.get("filter"):
            f = _FILTER.match(raw)
            if f is None or f.group(2) not in ("id", *IDENTIFIERS):
                return 400, error(400, "invalid", "Invalid filter.", f"Invalid filter: {raw}", None)
            values = {v.lower() if f.group(2) == "email" else v for v in _filter_values(f.group(3))}
            key = f.group(2)
            found = [
                p
                for p in found
                if (p["id"] if key == "id" else str(p["attributes"].get(key) or "").lower() if key == "email" else p["attributes"].get(key))
                in values
            ]
        view = [{"type": "profile", "id": p["id"], "attributes": {k: v for k, v in p["attributes"].items()}} for p in found]
        return 200, self._page(view, query, path)

    def _membership(self, method: str, list_id: str, body: Any) -> Reply:
        data = body.get("data") if isinstance(body, dict) else None
        if method not in ("POST", "DELETE") or not isinstance(data, list):
            return 400, error(400, "invalid", "Invalid input.", "A list of profile identifiers is required.", "/data")
        if len(data) > 1000:
            return 400, error(400, "invalid", "Invalid input.", "At most 1000 profiles per call.", "/data")
        ids = [str(x.get("id")) for x in data if isinstance(x, dict)]
        if method == "POST":
            if unknown := [i for i in ids if i not in self._profiles]:
                return 404, error(404, "not_found", "Not found.", f"Profile {unknown[0]} does not exist.", "/data")
            self._members[list_id].update(ids)
        else:
            self._members[list_id].difference_update(ids)
        return 204, None

    def _suppression(self, create: bool, body: Any) -> Reply:
        attrs = ((body or {}).get("data") or {}).get("attributes") or {} if isinstance(body, dict) else {}
        items = (attrs.get("profiles") or {}).get("data") if isinstance(attrs, dict) else None
        if not isinstance(items, list) or not items:
            return 400, error(400, "invalid", "Invalid input.", "Profiles (by email) are required.", "/data/attributes/profiles")
        if len(items) > 100:
            return 400, error(
                400, "invalid", "Invalid input.", "At most 100 email addresses per request.", "/data/attributes/profiles/data"
            )
        emails = [str((x.get("attributes") or {}).get("email") or "") for x in items if isinstance(x, dict)]
        if bad := [i for i, e in enumerate(emails) if not _EMAIL.match(e.strip())]:
            return 400, error(
                400, "invalid", "Invalid input.", "Invalid email address.", f"/data/attributes/profiles/data/{bad[0]}/attributes/email"
            )
        for email in emails:
            if create:  # a profile not found is created, then suppressed
                profile = self._profile_for({"email": email})
                profile["attributes"].setdefault("email", email)
                profile["suppressed"] = profile["suppressed"] or "USER_SUPPRESSED"
            elif (profile := self._find({"email": email})) is not None and profile["suppressed"] == "USER_SUPPRESSED":
                profile["suppressed"] = None  # only manual suppressions are lifted
        kind = "profile-suppression-bulk-create-job" if create else "profile-suppression-bulk-delete-job"
        return 202, {
            "data": {"type": kind, "id": _id(), "attributes": {"status": "completed", "created": _now(), "total_count": len(emails)}}
        }

    def _deletion(self, body: Any) -> Reply:
        try:
            attrs = body["data"]["attributes"]["profile"]["data"]["attributes"]
            assert isinstance(attrs, dict)
        except (KeyError, TypeError, AssertionError):
            return 400, error(400, "invalid", "Invalid input.", "A profile identifier is required.", "/data/attributes/profile")
        given = {k: v for k, v in attrs.items() if v and k in ("email", "phone_number", "id")}
        if len(given) != 1:
            return 400, error(
                400, "invalid", "Invalid input.", "Exactly one of email, phone_number or id is required.", "/data/attributes/profile"
            )
        [(key, value)] = given.items()
        for pid, p in list(self._profiles.items()):
            held = pid if key == "id" else p["attributes"].get(key)
            if held and (str(held).lower() == str(value).lower() if key == "email" else held == value):
                del self._profiles[pid]
                for members in self._members.values():
                    members.discard(pid)
        return 202, None


def _filter_values(text: str) -> list[str]:
    """The value(s) of a filter's argument: "a" or ["a","b"]."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def _invalid(attrs: Any) -> tuple[str, str] | None:
    """Why Klaviyo would refuse this profile of an import job (the field, the detail), or None."""
    if not isinstance(attrs, dict):
        return "", "A profile must be an object."
    if not any(attrs.get(i) for i in IDENTIFIERS):
        return "email", "One of email, phone_number or external_id is required."
    if attrs.get("email") is not None and not _EMAIL.match(str(attrs["email"]).strip()):
        return "email", f"Invalid email address: {attrs['email']}"
    if attrs.get("phone_number") and not _PHONE.match(str(attrs["phone_number"])):
        return "phone_number", f"Invalid phone number (E.164 expected): {attrs['phone_number']}"
    if "properties" in attrs and not isinstance(attrs["properties"], (dict, type(None))):
        return "properties", "properties must be an object."
    if len(json.dumps(attrs)) > MAX_PROFILE_BYTES:
        return "properties", "The profile is larger than 100 KB."
    return None


def _error_body(status: int) -> tuple[bytes, str]:
    code = {401: "not_authenticated", 403: "permission_denied", 429: "throttled", 400: "invalid"}.get(status, "error")
    return json.dumps(error(status, code, f"injected HTTP {status}", f"injected HTTP {status}")).encode(), JSONAPI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation_emulators.klaviyo", description="Serve a local Klaviyo API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--api-key", action="append", help="accepted private key (repeatable; default: pk_klaviyo_emulator)")
    parser.add_argument("--list", action="append", default=[], metavar="NAME", help="create a list (repeatable)")
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    emu = KlaviyoEmulator(
        args.host,
        args.port,
        api_keys=set(args.api_key) if args.api_key else None,
        rate_limits=not args.no_rate_limits,
        verbose=args.verbose,
    )
    for name in args.list:
        print(f"list {name!r}: id {emu.create_list(name)}", flush=True)
    emu.serve_until_signal("Klaviyo emulator on {url} (Ctrl-C to stop)")
    return 0
