"""A local Google Ads API (REST) emulator for Customer Match, plus the OAuth token endpoint.

Served, under ``/v<N>/`` (JSON, camelCase, int64 as strings, like googleads.googleapis.com):

- ``customers/{cid}/googleAds:search`` with GAQL ``SELECT … FROM user_list|offline_user_data_job
  WHERE <resource>.name|resource_name = '…'`` (the queries a sync makes);
- ``customers/{cid}/userLists:mutate`` (create CRM-based lists);
- ``customers/{cid}/offlineUserDataJobs:create`` → ``{resourceName}``;
  ``…/offlineUserDataJobs/{id}:addOperations`` (``create`` / ``remove`` / ``removeAll``
  operations of ``userIdentifiers``; ``enablePartialFailure`` → 200 with
  ``partialFailureError`` pointing at ``operations[i]``, else 400 for any bad operation);
  ``…:run`` → a long-running operation; ``GET customers/{cid}/operations/{id}``.
  A job applies its operations in order once `job_seconds` after it started (PENDING →
  RUNNING → SUCCESS, or FAILED with `fail_next_job`). Mixing create and remove operations in
  one job fails them with CONFLICTING_OPERATION, as Google documents.
- ``POST /token``: the OAuth refresh-token grant (``invalid_grant`` once revoked).

Checked per request: ``Authorization: Bearer`` (a token this endpoint issued and that has not
expired), ``developer-token``, and ``login-customer-id`` for customers reached through a
manager (`managers`). Errors have Google's shape ``{"error": {code, message, status,
details: [{"@type": "…GoogleAdsFailure", errors: [{errorCode, message, location}]}]}}``.
Hashed identifiers must be 64 lower-case hex digits, country codes real ISO 3166-1 codes.
Per-request limits (unconfirmed names): at most 100,000 identifiers per addOperations, 20
per member.

Faults: `throttle_next` (429 RESOURCE_EXHAUSTED with ``quotaErrorDetails.retryDelay``),
`expire_access_tokens`, `revoke_refresh_tokens`, `fail_next_job`, and the shared `faults`.
Inspection: `user_lists`, `members`, `jobs`, `request_log`, `raw_requests`, `token_requests`.

    python -m activation_emulators.google_ads --port 8091
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import phonenumbers

from activation_emulators.ad_members import AudienceMembers
from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before
from activation_emulators.recording import RequestRecorder

FAILURE_TYPE = "type.googleapis.com/google.ads.googleads.{v}.errors.GoogleAdsFailure"
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
MAX_IDENTIFIERS_PER_REQUEST = 100_000
MAX_IDENTIFIERS_PER_MEMBER = 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PATH = re.compile(r"^/(v\d+)/customers/(\d+)/(.+)$")
COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)  # ISO 3166-1 alpha-2 regions
HASHED = ("hashedEmail", "hashedPhoneNumber")
KEY_TYPE = {
    "hashedEmail": "CONTACT_INFO",
    "hashedPhoneNumber": "CONTACT_INFO",
    "addressInfo": "CONTACT_INFO",
    "thirdPartyUserId": "CRM_ID",
    "mobileId": "MOBILE_ADVERTISING_ID",
}


class ApiError(Exception):
    def __init__(self, status: int, code: dict[str, str], message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra or {}

    def failure(self, version: str) -> dict[str, Any]:
        error = {"errorCode": self.code, "message": str(self), **self.extra}
        return {"@type": FAILURE_TYPE.format(v=version), "errors": [error], "requestId": secrets.token_hex(8)}

    def body(self, version: str) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": str(self) if self.status != 400 else "Request contains an invalid argument.",
                "status": STATUS.get(self.status, "UNKNOWN"),
                "details": [self.failure(version)],
            }
        }


@dataclass
class Job:
    resource: str
    customer: str
    user_list: str
    status: str = "PENDING"
    operations: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (kind, identifiers)
    operation_name: str | None = None
    due: float = 0.0
    fail: str | None = None


@dataclass(frozen=True)
class GoogleRequest:
    method: str
    path: str
    status: int
    operations: int


class _Server(QuietHTTPServer):
    owner: GoogleAdsEmulator


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        body = self.read_body()
        owner = self.server.owner
        owner.recorder.raw(self.raw_requestline + str(self.headers).encode() + body)
        path = urlsplit(self.path).path
        fault = owner.faults.take(self.command, path)
        if serve_before(self, fault, owner._fault_body):
            return
        status, reply = owner._handle(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
        serve_after(self, fault, status, json.dumps(reply).encode(), "application/json")

    do_GET = do_POST = _serve


class GoogleAdsEmulator(BackgroundServer):
    """``with GoogleAdsEmulator() as g:`` then ``base_url: g.url``, ``token_url: g.token_url``."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        developer_tokens: set[str] | None = None,
        client_id: str = "client-id",
        client_secret: str = "client-secret",
        refresh_tokens: set[str] | None = None,
        managers: dict[str, str] | None = None,
        job_seconds: float = 0.0,
        version: str = "v24",
        record: bool = True,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.developer_tokens = developer_tokens  # None: any non-empty
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = refresh_tokens  # None: any non-empty
        self.managers = dict(managers or {})  # customer id -> manager id that must be login-customer-id
        self.job_seconds, self.version = job_seconds, version
        self.verbose = verbose
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self._revoked = False
        self._lists: dict[str, dict[str, Any]] = {}
        self._members: dict[str, AudienceMembers] = {}
        self._jobs: dict[str, Job] = {}
        self._ops: dict[str, Job] = {}
        self._throttles: list[float] = []
        self._fail_jobs: list[str] = []
        self._expire_after: int | None = None
        self.recorder: RequestRecorder[GoogleRequest] = RequestRecorder(keep_raw=record)
        self.token_requests = 0
        self._next = 1000

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    # ------------------------------------------------------------ faults and inspection

    def throttle_next(self, n: int = 1, retry_seconds: float = 0.01) -> None:
        with self._lock:
            self._throttles += [retry_seconds] * n

    def expire_access_tokens(self, after: int = 0) -> None:
        """Expire every access token issued so far: now, or once `after` more API calls were served."""
        with self._lock:
            if after:
                self._expire_after = after
            else:
                self._tokens = dict.fromkeys(self._tokens, 0.0)

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._revoked = True
            self._tokens.clear()

    def fail_next_job(self, reason: str = "UNKNOWN") -> None:
        with self._lock:
            self._fail_jobs.append(reason)

    def user_lists(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._lists.items()}

    def list_named(self, name: str) -> str:
        [resource] = [k for k, v in self.user_lists().items() if v["name"] == name]
        return resource

    def members(self, user_list: str) -> set[frozenset[tuple[str, str]]]:
        with self._lock:
            self._advance()
            return self._members[user_list].snapshot() if user_list in self._members else set()

    def jobs(self) -> list[Job]:
        with self._lock:
            self._advance()
            return list(self._jobs.values())

    @property
    def request_log(self) -> list[GoogleRequest]:
        return self.recorder.entries

    @property
    def request_count(self) -> int:
        return self.recorder.count

    def raw_requests(self) -> bytes:
        return self.recorder.raw_bytes()

    def _fault_body(self, status: int) -> tuple[bytes, str]:
        code, message = {
            429: ({"quotaError": "RESOURCE_EXHAUSTED"}, "Too many requests."),
            401: ({"authenticationError": "OAUTH_TOKEN_EXPIRED"}, "Request had invalid authentication credentials."),
        }.get(status, ({"internalError": "INTERNAL_ERROR"}, "Internal error encountered."))
        return json.dumps(ApiError(status, code, message).body(self.version)).encode(), "application/json"

    # ------------------------------------------------------------ requests

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        ops = 0
        with self._lock:
            self._advance()
            try:
                if path == "/token" and method == "POST":
                    status, reply = self._token(dict(parse_qsl(raw.decode())))
                else:
                    body = json.loads(raw) if raw else {}
                    ops = len(body.get("operations") or []) if isinstance(body, dict) else 0
                    status, reply = 200, self._route(method, path, headers, body)
            except ApiError as e:
                status, reply = e.status, e.body(self.version)
            except ValueError:
                status, reply = 400, {"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}}
        self.recorder.log(GoogleRequest(method, path, status, ops))
        return status, reply

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
        token = form.get("refresh_token", "")
        if self._revoked or not token or (self.refresh_tokens is not None and token not in self.refresh_tokens):
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        access = "ya29." + secrets.token_urlsafe(24)
        self._tokens[access] = time.monotonic() + 3599
        return 200, {"access_token": access, "expires_in": 3599, "scope": "https://www.googleapis.com/auth/adwords", "token_type": "Bearer"}

    def _route(self, method: str, path: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
        m = _PATH.match(path)
        if self._expire_after is not None:
            self._expire_after -= 1
            if self._expire_after < 0:
                self._tokens, self._expire_after = dict.fromkeys(self._tokens, 0.0), None
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if self._tokens.get(token, 0.0) <= time.monotonic():
            raise ApiError(
                401,
                {"authenticationError": "OAUTH_TOKEN_INVALID" if token not in self._tokens else "OAUTH_TOKEN_EXPIRED"},
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                "other valid authentication credential.",
            )
        dev = headers.get("developer-token", "")
        if not dev or (self.developer_tokens is not None and dev not in self.developer_tokens):
            raise ApiError(401, {"authenticationError": "DEVELOPER_TOKEN_INVALID"}, "The developer token is not valid.")
        if not m:
            raise ApiError(404, {"requestError": "RESOURCE_NAME_MISSING"}, f"Unknown path {path}")
        version, customer, rest = m.groups()
        if customer in self.managers and headers.get("login-customer-id") != self.managers[customer]:
            raise ApiError(
                403,
                {"authorizationError": "USER_PERMISSION_DENIED"},
                "User doesn't have permission to access customer. Note: If you're accessing a client customer, "
                "the manager's customer id must be set in the 'login-customer-id' header.",
            )
        if self._throttles:
            delay = self._throttles.pop(0)
            raise ApiError(
                429,
                {"quotaError": "RESOURCE_EXHAUSTED"},
                f"Too many requests. Retry in {delay:g} seconds.",
                extra={
                    "details": {
                        "quotaErrorDetails": {
                            "rateScope": "DEVELOPER",
                            "retryDelay": f"{delay:g}s",
                            "rateName": "Number of operations for basic access",
                        }
                    }
                },
            )
        if method == "GET" and rest.startswith("operations/"):
            return self._operation(f"customers/{customer}/{rest}")
        if method != "POST":
            raise ApiError(404, {"requestError": "UNKNOWN"}, f"Method {method} not found for {path}")
        if rest == "googleAds:search":
            return self._search(customer, str(body.get("query", "")))
        if rest == "userLists:mutate":
            return self._mutate_lists(customer, body.get("operations") or [])
        if rest == "offlineUserDataJobs:create":
            return self._create_job(customer, body.get("job") or {})
        job_path, _, verb = rest.partition(":")
        job = self._jobs.get(f"customers/{customer}/{job_path}")
        if job is None:
            raise ApiError(404, {"mutateError": "RESOURCE_NOT_FOUND"}, "The resource was not found.")
        if verb == "addOperations":
            return self._add_operations(job, body)
        if verb == "run":
            return self._run(job)
        raise ApiError(404, {"requestError": "UNKNOWN"}, f"Unknown method {verb!r}")

    def _search(self, customer: str, query: str) -> dict[str, Any]:
        m = re.match(
            r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(\w+)\.(\w+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\d+)))?\s*$", query, re.I | re.S
        )
        if not m:
            raise ApiError(400, {"queryError": "UNEXPECTED_INPUT"}, "Error in query: unexpected input.")
        _, resource, _, field_name, text, number = m.groups()
        value = number if number is not None else re.sub(r"\\(.)", r"\1", text or "")
        if resource == "user_list":
            if field_name not in (None, "name", "resource_name", "id"):
                raise ApiError(400, {"queryError": "UNRECOGNIZED_FIELD"}, f"Unrecognized field in the query: 'user_list.{field_name}'.")
            rows = [
                {"userList": {"resourceName": k, "name": v["name"], "id": k.rsplit("/", 1)[1]}}
                for k, v in self._lists.items()
                if v["customer"] == customer
                and (field_name is None or {"name": v["name"], "resource_name": k, "id": k.rsplit("/", 1)[1]}[field_name] == value)
            ]
        elif resource == "offline_user_data_job":
            rows = [
                {"offlineUserDataJob": {"resourceName": j.resource, "status": j.status, "id": j.resource.rsplit("/", 1)[1]}}
                for j in self._jobs.values()
                if j.customer == customer and (field_name is None or j.resource == value)
            ]
        else:
            raise ApiError(400, {"queryError": "INVALID_RESOURCE_NAME_IN_FROM_CLAUSE"}, f"Unsupported resource {resource!r}")
        return {"results": rows, "fieldMask": m.group(1).replace(" ", "")}

    def _mutate_lists(self, customer: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        results = []
        for op in operations:
            create = op.get("create") or {}
            name = create.get("name")
            if not name:
                raise ApiError(400, {"fieldError": "REQUIRED"}, "The required field was not present.")
            if any(v["name"] == name and v["customer"] == customer for v in self._lists.values()):
                raise ApiError(
                    400, {"userListError": "NAME_ALREADY_USED"}, "Name is already being used for another user list for the account."
                )
            key_type = (create.get("crmBasedUserList") or {}).get("uploadKeyType")
            if key_type not in ("CONTACT_INFO", "CRM_ID", "MOBILE_ADVERTISING_ID"):
                raise ApiError(400, {"userListError": "INVALID_UPLOAD_KEY_TYPE"}, "crmBasedUserList.uploadKeyType is required.")
            self._next += 1
            resource = f"customers/{customer}/userLists/{self._next}"
            self._lists[resource] = {
                "resource": resource,
                "customer": customer,
                "name": name,
                "uploadKeyType": key_type,
                "membershipLifeSpan": create.get("membershipLifeSpan"),
            }
            self._members[resource] = AudienceMembers(frozenset(KEY_TYPE))
            results.append({"resourceName": resource})
        return {"results": results}

    def _create_job(self, customer: str, job: dict[str, Any]) -> dict[str, Any]:
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST":
            raise ApiError(400, {"offlineUserDataJobError": "INVALID_USER_LIST_TYPE"}, "Only CUSTOMER_MATCH_USER_LIST jobs are emulated.")
        user_list = (job.get("customerMatchUserListMetadata") or {}).get("userList", "")
        if user_list not in self._lists or self._lists[user_list]["customer"] != customer:
            raise ApiError(400, {"offlineUserDataJobError": "INVALID_USER_LIST_ID"}, "The user list ID provided for the job is invalid.")
        self._next += 1
        resource = f"customers/{customer}/offlineUserDataJobs/{self._next}"
        self._jobs[resource] = Job(resource, customer, user_list)
        return {"resourceName": resource}

    def _check_member(self, job: Job, kind: str, data: Any) -> list[dict[str, Any]] | ApiError:
        ids = data.get("userIdentifiers") if isinstance(data, dict) else None
        if not ids:
            return ApiError(400, {"offlineUserDataJobError": "MISSING_USER_IDENTIFIER"}, "User identifiers are required.")
        if len(ids) > MAX_IDENTIFIERS_PER_MEMBER:
            return ApiError(400, {"offlineUserDataJobError": "TOO_MANY_USER_IDENTIFIERS"}, "Too many user identifiers for one member.")
        first = next((k for k, _ in job.operations), kind)
        if first != kind:
            return ApiError(
                400, {"offlineUserDataJobError": "CONFLICTING_OPERATION"}, "Create and remove operations cannot be mixed in the same job."
            )
        key_type = self._lists[job.user_list]["uploadKeyType"]
        for ident in ids:
            if not isinstance(ident, dict) or len(ident) != 1:
                return ApiError(400, {"fieldError": "ONE_OF_VIOLATION"}, "A user identifier sets exactly one of its fields.")
            [(name, value)] = ident.items()
            if KEY_TYPE.get(name) != key_type:
                return ApiError(
                    400,
                    {"offlineUserDataJobError": "INCOMPATIBLE_UPLOAD_KEY_TYPE"},
                    f"The identifier {name} is incompatible with the list's upload key type {key_type}.",
                )
            if name in HASHED and not (isinstance(value, str) and _SHA256.match(value)):
                return ApiError(400, {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"}, "The SHA256 encoded value is malformed.")
            if name == "addressInfo":
                parts = value if isinstance(value, dict) else {}
                if not all(parts.get(k) for k in ("hashedFirstName", "hashedLastName", "countryCode", "postalCode")):
                    return ApiError(400, {"fieldError": "REQUIRED"}, "Address matching needs first and last name, country and postal code.")
                if not all(_SHA256.match(str(parts[k])) for k in ("hashedFirstName", "hashedLastName")):
                    return ApiError(400, {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"}, "The SHA256 encoded value is malformed.")
                if parts["countryCode"] not in COUNTRIES:
                    return ApiError(400, {"offlineUserDataJobError": "INVALID_COUNTRY_CODE"}, "The country code is invalid.")
        return ids

    def _add_operations(self, job: Job, body: dict[str, Any]) -> dict[str, Any]:
        if job.status != "PENDING":
            raise ApiError(400, {"offlineUserDataJobError": "JOB_ALREADY_STARTED"}, "The job has already been run.")
        operations = body.get("operations") or []
        total = sum(
            len((op.get("create") or op.get("remove") or {}).get("userIdentifiers") or []) for op in operations if isinstance(op, dict)
        )
        if not operations or total > MAX_IDENTIFIERS_PER_REQUEST:
            raise ApiError(
                400,
                {"offlineUserDataJobError": "TOO_MANY_USER_IDENTIFIERS" if operations else "MISSING_USER_IDENTIFIER"},
                f"Between 1 operation and {MAX_IDENTIFIERS_PER_REQUEST} user identifiers per request.",
            )
        failures: list[dict[str, Any]] = []
        accepted: list[tuple[str, list[dict[str, Any]]]] = []
        for i, op in enumerate(operations):
            kinds = [k for k in ("create", "remove", "removeAll") if isinstance(op, dict) and k in op]
            if len(kinds) != 1:
                checked: Any = ApiError(
                    400, {"fieldError": "ONE_OF_VIOLATION"}, "An operation sets exactly one of create, remove, removeAll."
                )
            elif kinds[0] == "removeAll":
                checked = []
            else:
                checked = self._check_member(job, kinds[0], op[kinds[0]])
            if isinstance(checked, ApiError):
                error = checked.failure(self.version)["errors"][0]
                error["location"] = {"fieldPathElements": [{"fieldName": "operations", "index": i}]}
                failures.append(error)
                continue
            accepted.append((kinds[0], checked))
            job.operations.append((kinds[0], checked))  # later operations of the request see the job's kind
        if failures and not body.get("enablePartialFailure"):
            del job.operations[len(job.operations) - len(accepted) :]
            raise ApiError(400, failures[0]["errorCode"], failures[0]["message"], extra={"location": failures[0]["location"]})
        if not failures:
            return {}
        return {
            "partialFailureError": {
                "code": 3,
                "message": f"Multiple errors in ‘details’. First error: {failures[0]['message']}",
                "details": [{"@type": FAILURE_TYPE.format(v=self.version), "errors": failures, "requestId": secrets.token_hex(8)}],
            }
        }

    def _run(self, job: Job) -> dict[str, Any]:
        if job.status != "PENDING":
            raise ApiError(400, {"offlineUserDataJobError": "JOB_ALREADY_STARTED"}, "The job has already been run.")
        self._next += 1
        job.status, job.due = "RUNNING", time.monotonic() + self.job_seconds
        job.operation_name = f"customers/{job.customer}/operations/{self._next}"
        job.fail = self._fail_jobs.pop(0) if self._fail_jobs else None
        self._ops[job.operation_name] = job
        return {"name": job.operation_name}

    def _advance(self) -> None:
        """Finish the running jobs whose time has come, in the order they were run."""
        now = time.monotonic()
        for job in sorted((j for j in self._jobs.values() if j.status == "RUNNING" and j.due <= now), key=lambda j: j.due):
            if job.fail:
                job.status = "FAILED"
                continue
            members = self._members[job.user_list]
            for kind, ids in job.operations:
                pairs = [identifier_pair(i) for i in ids]
                if kind == "create":
                    members.add(pairs)
                elif kind == "remove":
                    members.remove(pairs)
                else:
                    members.clear()
            job.status = "SUCCESS"

    def _operation(self, name: str) -> dict[str, Any]:
        job = self._ops.get(name)
        if job is None:
            raise ApiError(404, {"requestError": "RESOURCE_NAME_MALFORMED"}, f"Operation {name} not found.")
        meta = {
            "@type": f"type.googleapis.com/google.ads.googleads.{self.version}.resources.OfflineUserDataJobMetadata",
            "matchRateRange": "MATCH_RANGE_LESS_THAN_20",
        }
        out: dict[str, Any] = {"name": name, "metadata": meta, "done": job.status in ("SUCCESS", "FAILED")}
        if job.status == "SUCCESS":
            out["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        elif job.status == "FAILED":
            out["error"] = {"code": 13, "message": f"The job failed: {job.fail}"}
        return out


def identifier_pair(identifier: dict[str, Any]) -> tuple[str, str]:
    """How a member's UserIdentifier is held: (field, value); an address as its four parts."""
    [(name, value)] = identifier.items()
    if name == "addressInfo":
        value = "|".join(str(value[k]) for k in ("hashedFirstName", "hashedLastName", "countryCode", "postalCode"))
    return name, str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation_emulators.google_ads", description="Serve a local Google Ads API (REST) emulator for Customer Match."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--developer-token", action="append", help="accepted developer token (repeatable; default: any)")
    parser.add_argument("--client-id", default="client-id")
    parser.add_argument("--client-secret", default="client-secret")
    parser.add_argument("--job-seconds", type=float, default=0.0, help="how long a job runs before it succeeds")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    emu = GoogleAdsEmulator(
        args.host,
        args.port,
        developer_tokens=set(args.developer_token) if args.developer_token else None,
        client_id=args.client_id,
        client_secret=args.client_secret,
        job_seconds=args.job_seconds,
        record=False,
        verbose=args.verbose,
    )
    emu.serve_until_signal("Google Ads API emulator on {url} (token endpoint {url}/token; Ctrl-C to stop)")
    print(f"{len(emu.request_log)} requests, {len(emu.user_lists())} user lists, {len(emu.jobs())} jobs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
