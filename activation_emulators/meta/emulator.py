"""A local Meta Marketing API (Graph API) emulator for Custom Audiences, over real HTTP.

Served, under ``/v<major>.<minor>/`` (versions older than `min_version` are refused, code 2635):

- ``GET /act_<id>/customaudiences?fields=id,name&limit=&after=`` (cursor paging) and
  ``POST /act_<id>/customaudiences`` (name, subtype=CUSTOM, customer_file_source, description);
- ``GET /<audience_id>?fields=…`` (id, name, approximate counts, operation_status);
- ``POST`` / ``DELETE /<audience_id>/users`` with ``payload={"schema", "data"}`` and optional
  ``session={"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"}``: at most
  10,000 rows, multi-key (2-D data) or single-key ``EMAIL_SHA256``-style (flat data). Rows
  whose hashed keys are not SHA-256 hex digests are counted in ``num_invalid_entries``, listed
  in ``invalid_entry_samples`` (value → reason) and not applied. Answer: ``{audience_id,
  session_id, num_received, num_invalid_entries, invalid_entry_samples}``.

Parameters are read from the query string and from a form or JSON body alike (the SDKs put
DELETE payloads in the URL, so request lines of many megabytes are accepted). The token comes
from ``Authorization: Bearer|OAuth`` or ``access_token``; with `app_secret` every call must
carry the matching ``appsecret_proof``. Errors have Graph's shape
``{"error": {message, type, code, error_subcode, is_transient, fbtrace_id}}``.

Faults: `throttle_next` (codes 4/17/613/80003 in a 400 or 403, with X-Business-Use-Case-Usage),
`error_next` (any code/status), `expire_token`, a rolling `rate_limit` per ad account (80003),
and the shared `faults` injector (5xx, drops, timeouts, answers lost after applying).
Inspection: `audiences`, `members`, `request_log`, `request_count`, `raw_requests` (every byte
received, for "no raw PII left the process" checks), `sessions`.

    python -m activation_emulators.meta --port 8090 --token demo-token
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from activation_emulators.ad_members import AudienceMembers
from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before
from activation_emulators.recording import RequestRecorder

MAX_ROWS = 10_000
MULTI_KEYS = ("EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST", "ZIP", "MADID", "COUNTRY")
UNHASHED = frozenset({"EXTERN_ID", "MADID"})
STRONG = frozenset({"EMAIL", "PHONE", "MADID", "EXTERN_ID"})
SINGLE_KEYS = {"EMAIL_SHA256": "EMAIL", "PHONE_SHA256": "PHONE", "MOBILE_ADVERTISER_ID": "MADID"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MADID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")  # IDFA / AAID, lower-case
_PATH = re.compile(r"^/v(\d+)\.(\d+)/(.+)$")
THROTTLE_MESSAGES = {
    4: (403, "(#4) Application request limit reached"),
    17: (400, "(#17) User request limit reached"),
    613: (400, "(#613) Calls to this api have exceeded the rate limit."),
    80003: (400, "(#80003) There have been too many calls to this ad-account. Wait a bit and try again."),
}
Reply = tuple[int, dict[str, Any], dict[str, str]]


class GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        kind: str = "OAuthException",
        transient: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.subcode, self.kind = status, code, subcode, kind
        self.transient, self.headers = transient, headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": str(self),
            "type": self.kind,
            "code": self.code,
            "is_transient": self.transient,
            "fbtrace_id": uuid.uuid4().hex[:11],
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": error}


@dataclass(frozen=True)
class MetaRequest:
    method: str
    path: str  # without the query string
    status: int
    rows: int  # rows in the payload (users calls)
    error_code: int | None


class _Server(QuietHTTPServer):
    owner: MetaEmulator


class _Handler(KeepAliveHandler):
    server: _Server
    max_request_line = 64 * 1024 * 1024  # DELETE payloads travel in the URL

    def _serve(self) -> None:
        body = self.read_body()
        owner = self.server.owner
        owner.recorder.raw(self.raw_requestline + str(self.headers).encode() + body)
        fault = owner.faults.take(self.command, urlsplit(self.path).path)
        if serve_before(self, fault, _fault_body):
            owner.recorder.log(MetaRequest(self.command, urlsplit(self.path).path, 0, 0, None))
            return
        status, reply, headers = owner._handle(self.command, self.path, dict(self.headers.items()), body)
        serve_after(self, fault, status, json.dumps(reply).encode(), "application/json", headers)

    do_GET = do_POST = do_DELETE = _serve


def _fault_body(status: int) -> tuple[bytes, str]:
    if status == 429:
        error = GraphError(429, 4, THROTTLE_MESSAGES[4][1], transient=True)
    elif status == 401:
        error = GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")
    elif status >= 500:
        error = GraphError(
            status, 2 if status == 503 else 1, "An unexpected error has occurred. Please retry your request later.", transient=True
        )
    else:
        error = GraphError(status, 100, "(#100) Invalid parameter", kind="GraphMethodException")
    return json.dumps(error.body()).encode(), "application/json"


class MetaEmulator(BackgroundServer):
    """``with MetaEmulator(tokens={"t"}) as meta:`` then ``base_url: meta.url``."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: set[str] | None = None,
        app_secret: str | None = None,
        rate_limit: tuple[int, float] | None = None,
        min_version: int = 19,
        record: bool = True,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.tokens = tokens  # None: any non-empty token
        self.app_secret = app_secret
        self.rate_limit = rate_limit
        self.min_version = min_version
        self.verbose = verbose
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._audiences: dict[str, dict[str, Any]] = {}
        self._members: dict[str, AudienceMembers] = {}
        self._sessions: dict[tuple[str, int], dict[str, Any]] = {}
        self._calls: dict[str, deque[float]] = {}
        self._queued: list[tuple[str | None, GraphError]] = []
        self._expired: set[str] = set()
        self.recorder: RequestRecorder[MetaRequest] = RequestRecorder(keep_raw=record)  # raw: off for benchmarks
        self._next_id = 23850000000000000

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------ set-up and faults

    def create_audience(self, ad_account: str, name: str) -> str:
        with self._lock:
            return self._create(
                ad_account.removeprefix("act_"), {"name": name, "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"}
            )

    def throttle_next(self, n: int = 1, code: int = 17, minutes: int = 0, match: str | None = None) -> None:
        """The next `n` calls (whose "METHOD /path" contains `match`) get Meta's throttling
        error `code`, with its usual HTTP status."""
        status, message = THROTTLE_MESSAGES[code]
        usage = json.dumps(
            {
                "0": [
                    {
                        "type": "custom_audience",
                        "call_count": 100,
                        "total_cputime": 100,
                        "total_time": 100,
                        "estimated_time_to_regain_access": minutes,
                    }
                ]
            }
        )
        self._queue(
            n,
            match,
            GraphError(
                status,
                code,
                message,
                subcode=2446079 if code == 80003 else None,
                transient=True,
                headers={"X-Business-Use-Case-Usage": usage},
            ),
        )

    def error_next(
        self,
        n: int = 1,
        *,
        code: int = 100,
        message: str = "(#100) Invalid parameter",
        status: int = 400,
        subcode: int | None = None,
        match: str | None = None,
    ) -> None:
        self._queue(n, match, GraphError(status, code, message, subcode=subcode))

    def expire_token(self, token: str) -> None:
        with self._lock:
            self._expired.add(token)

    def _queue(self, n: int, match: str | None, error: GraphError) -> None:
        with self._lock:
            self._queued += [(match, error)] * n

    # ------------------------------------------------------------ inspection

    def audiences(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._audiences.items()}

    def audience_named(self, name: str) -> str:
        [aid] = [k for k, v in self.audiences().items() if v["name"] == name]
        return aid

    def members(self, audience_id: str) -> set[frozenset[tuple[str, str]]]:
        """The audience's people, each a set of (schema key, value)."""
        with self._lock:
            return self._members[audience_id].snapshot() if audience_id in self._members else set()

    def sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self._sessions.values()]

    @property
    def request_log(self) -> list[MetaRequest]:
        return self.recorder.entries

    @property
    def request_count(self) -> int:
        return self.recorder.count

    def raw_requests(self) -> bytes:
        return self.recorder.raw_bytes()

    # ------------------------------------------------------------ request handling

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(target)
        params: dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
        ctype = headers.get("Content-Type", "")
        if body and "json" in ctype:
            loaded = json.loads(body)
            params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in loaded.items()})
        elif body:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        rows = 0
        try:
            with self._lock:
                reply, rows = self._route(method, parts.path, params, headers)
            status, out, extra, code = 200, reply, {}, None
        except GraphError as e:
            status, out, extra, code = e.status, e.body(), e.headers, e.code
        self.recorder.log(MetaRequest(method, parts.path, status, rows, code))
        return status, out, extra

    def _route(self, method: str, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[dict[str, Any], int]:
        m = _PATH.match(path)
        if not m:
            raise GraphError(400, 2500, "Unknown path components", kind="OAuthException")
        if int(m.group(1)) < self.min_version:
            raise GraphError(
                400,
                2635,
                f"(#2635) You are calling a deprecated version of the Ads API. Please update to the "
                f"latest version: v{self.min_version}.0 or later.",
            )
        self._authenticate(params, headers)
        for i, (match, error) in enumerate(self._queued):
            if match is None or match in f"{method} {path}":
                del self._queued[i]
                raise error
        node, _, edge = m.group(3).partition("/")
        if node.startswith("act_"):
            self._throttle(node[4:])
            if edge == "customaudiences" and method == "GET":
                return self._list(node[4:], params), 0
            if edge == "customaudiences" and method == "POST":
                return {"id": self._create(node[4:], params)}, 0
        elif node in self._audiences:
            self._throttle(self._audiences[node]["account_id"])
            if edge == "users" and method in ("POST", "DELETE"):
                return self._users(node, method, params)
            if edge == "" and method == "GET":
                return self._read(node, params), 0
        raise GraphError(
            400,
            100,
            f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation. Please read the "
            "Graph API documentation at https://developers.facebook.com/docs/graph-api",
            subcode=33,
            kind="GraphMethodException",
        )

    def _authenticate(self, params: dict[str, str], headers: dict[str, str]) -> None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = auth.split(None, 1)[1].strip() if auth.lower().startswith(("bearer ", "oauth ")) else params.get("access_token", "")
        if not token:
            raise GraphError(400, 104, "An access token is required to request this resource.")
        if token in self._expired:
            raise GraphError(400, 190, "Error validating access token: Session has expired.", subcode=463)
        if self.tokens is not None and token not in self.tokens:
            raise GraphError(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if self.app_secret is not None:
            proof = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if params.get("appsecret_proof") != proof:
                raise GraphError(400, 100, "Invalid appsecret_proof provided in the API argument", kind="GraphMethodException")

    def _throttle(self, account: str) -> None:
        if self.rate_limit is None:
            return
        count, window = self.rate_limit
        now = time.monotonic()
        calls = self._calls.setdefault(account, deque())
        while calls and calls[0] <= now - window:
            calls.popleft()
        if len(calls) >= count:
            regain = max(1, round((calls[0] + window - now) / 60))
            usage = json.dumps(
                {
                    account: [
                        {
                            "type": "custom_audience",
                            "call_count": 100,
                            "total_cputime": 100,
                            "total_time": 100,
                            "estimated_time_to_regain_access": regain,
                        }
                    ]
                }
            )
            status, message = THROTTLE_MESSAGES[80003]
            raise GraphError(status, 80003, message, subcode=2446079, transient=True, headers={"X-Business-Use-Case-Usage": usage})
        calls.append(now)

    def _create(self, account: str, params: dict[str, str]) -> str:
        if not params.get("name"):
            raise GraphError(400, 100, "(#100) The parameter name is required")
        if params.get("subtype", "CUSTOM") != "CUSTOM":
            raise GraphError(400, 100, "(#100) Only subtype CUSTOM is supported by this emulator")
        if params.get("customer_file_source") not in ("USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"):
            raise GraphError(
                400,
                100,
                "(#100) customer_file_source must be one of USER_PROVIDED_ONLY, PARTNER_PROVIDED_ONLY, BOTH_USER_AND_PARTNER_PROVIDED",
            )
        self._next_id += 1
        aid = str(self._next_id)
        self._audiences[aid] = {
            "id": aid,
            "account_id": account,
            "name": params["name"],
            "subtype": "CUSTOM",
            "description": params.get("description", ""),
            "customer_file_source": params["customer_file_source"],
        }
        self._members[aid] = AudienceMembers(STRONG)
        return aid

    def _list(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        fields = [f for f in params.get("fields", "id").split(",") if f]
        mine = [a for a in self._audiences.values() if a["account_id"] == account]
        limit = min(int(params.get("limit") or 25), 500)
        start = int(params["after"]) if params.get("after", "").isdigit() else 0
        page = mine[start : start + limit]
        out: dict[str, Any] = {"data": [self._fields(a, fields) for a in page]}
        if page:
            out["paging"] = {"cursors": {"before": str(start), "after": str(start + len(page))}}
            if start + len(page) < len(mine):
                out["paging"]["next"] = f"{self.url}/v{self.min_version}.0/act_{account}/customaudiences?after={start + len(page)}"
        return out

    def _fields(self, audience: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        size = len(self._members[audience["id"]])
        extra = {
            "approximate_count_lower_bound": size,
            "approximate_count_upper_bound": size,
            "operation_status": {"code": 200, "description": "Normal"},
        }
        return {f: audience.get(f, extra.get(f)) for f in ["id", *fields] if f in audience or f in extra}

    def _read(self, aid: str, params: dict[str, str]) -> dict[str, Any]:
        return self._fields(self._audiences[aid], [f for f in params.get("fields", "id,name").split(",") if f])

    def _users(self, aid: str, method: str, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        try:
            payload = json.loads(params["payload"])
            session = json.loads(params["session"]) if params.get("session") else None
        except (KeyError, ValueError):
            raise GraphError(400, 100, "(#100) param payload must be a JSON object with schema and data") from None
        schema, data = (
            payload.get("schema") if isinstance(payload, dict) else None,
            payload.get("data") if isinstance(payload, dict) else None,
        )
        if isinstance(schema, str) and schema in SINGLE_KEYS:
            keys, rows = [SINGLE_KEYS[schema]], [[v] for v in data] if isinstance(data, list) else None
        elif isinstance(schema, list) and schema and all(k in MULTI_KEYS for k in schema) and len(set(schema)) == len(schema):
            keys, rows = list(schema), data
        else:
            raise GraphError(
                400,
                100,
                f"(#100) Invalid schema: {json.dumps(schema)[:80]}; use one of "
                f"{', '.join(SINGLE_KEYS)} or a list of {', '.join(MULTI_KEYS)}",
            )
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and len(r) == len(keys) for r in rows):
            raise GraphError(400, 100, "(#100) Data is missing or does not match schema")
        if len(rows) > MAX_ROWS:
            raise GraphError(400, 100, f"(#100) Too many users in this request: at most {MAX_ROWS} rows per call")
        members = self._members[aid]
        invalid: dict[str, str] = {}
        bad_rows = 0
        for row in rows:
            problems = {
                str(v): f"Invalid {k}" + ("" if k in UNHASHED else ": not a SHA-256 hash")
                for k, v in zip(keys, row, strict=False)
                if v not in ("", None) and not _valid(k, v)
            }
            if problems or not any(row):
                bad_rows += 1
                for value, reason in list(problems.items())[: max(0, 10 - len(invalid))]:
                    invalid[value] = reason
                continue
            (members.add if method == "POST" else members.remove)(zip(keys, row, strict=False))
        sid = int(session["session_id"]) if isinstance(session, dict) and "session_id" in session else uuid.uuid4().int % 2**53
        if isinstance(session, dict):
            entry = self._sessions.setdefault(
                (aid, sid),
                {
                    "audience_id": aid,
                    "session_id": str(sid),
                    "batches": [],
                    "num_received": 0,
                    "num_invalid_entries": 0,
                    "stage": "uploading",
                },
            )
            entry["batches"].append(int(session.get("batch_seq") or 0))
            entry["num_received"] += len(rows)
            entry["num_invalid_entries"] += bad_rows
            entry["estimated_num_total"] = session.get("estimated_num_total")
            if session.get("last_batch_flag"):
                entry["stage"] = "processed"
        return {
            "audience_id": aid,
            "session_id": str(sid),
            "num_received": len(rows),
            "num_invalid_entries": bad_rows,
            "invalid_entry_samples": invalid,
        }, len(rows)


def _valid(key: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if key == "MADID":
        return bool(_MADID.match(value))
    return key in UNHASHED or bool(_SHA256.match(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation_emulators.meta", description="Serve a local Meta Graph API emulator (Custom Audiences)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--token", action="append", help="accepted access token (repeatable; default: any)")
    parser.add_argument("--app-secret", help="require appsecret_proof made with this secret")
    parser.add_argument("--rate-limit", metavar="N/SECONDS", help="e.g. 600/60: calls per rolling window per ad account")
    parser.add_argument("--no-record", action="store_true", help="do not keep raw requests (long runs)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    rate = None
    if args.rate_limit:
        count, _, seconds = args.rate_limit.partition("/")
        rate = (int(count), float(seconds or 60))
    emu = MetaEmulator(
        args.host,
        args.port,
        tokens=set(args.token) if args.token else None,
        app_secret=args.app_secret,
        rate_limit=rate,
        record=not args.no_record,
        verbose=args.verbose,
    )
    emu.serve_until_signal("Meta Graph API emulator on {url} (Ctrl-C to stop)")
    people = sum(len(emu.members(a)) for a in emu.audiences())
    print(f"{emu.request_count} requests, {len(emu.audiences())} audiences, {people} people", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
