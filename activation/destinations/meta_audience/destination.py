"""Meta Custom Audiences (customer file) through the Graph API, over our shared HTTP client.

- Members are added with ``POST /{version}/{audience_id}/users`` and removed with ``DELETE``
  on the same path; ``payload`` is ``{"schema": [...keys], "data": [[...], ...]}`` with the
  multi-key schema (EMAIL, PHONE, FN, … in Meta's order, ``""`` for unknown), at most 10,000
  rows per add. Removals ride in the query string as the official SDKs send them, at most
  `remove_batch_size` rows and `max_url_bytes` per URL: Meta's front end drops long DELETE
  URLs (reported working at 250 single-key rows, about 18 KB, and failing at 300).
- The audience is found by name in the ad account (or taken by numeric id) and created when
  missing (`create_audiences`); a push never starts with a lookup that finds nothing to do.
- Each push's adds form one upload session (``session_id``, ``batch_seq``,
  ``last_batch_flag``, ``estimated_num_total``); the session ids, ``num_received`` and
  ``num_invalid_entries`` go to the run record. Rows Meta lists among
  ``invalid_entry_samples`` are rejected with its reason.
- Throttling answers (codes 4, 17, 32, 613, 80000-80014, in a 400/403) are retried by the
  HTTP client with backoff, honouring ``X-Business-Use-Case-Usage``'s time to regain access.
  An expired or invalid token (190, 102) or a permission error (10, 200-299) stops the sync;
  any other error rejects the batch's rows with Meta's message.
- A refusal (an error, invalid entries) answering a retry whose earlier attempt may have been
  applied (its answer lost, cut or a 5xx) leaves those rows possibly delivered, as does a
  2xx whose body cannot be read: the members may be in the audience (see `http.Answer`).

The facebook-business SDK is not used: it would hash with its own (partial) normalisation,
reaches a local emulator only by patching a class constant, keeps a process-wide default
session, and does not retry throttling; our `HttpClient` does the retries, redaction and
counting every destination shares.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote_plus, urlencode

import httpx

from activation.destinations.ad_audience import AdAudienceDestination, Member, chunks
from activation.destinations.base import ConfigError, DestinationError, DestinationReport, RowOp, RowResult, SyncTarget, find_or_create
from activation.destinations.http import Answer, HttpClient, RetryPolicy, json_body, unreadable
from activation.destinations.identifiers import META
from activation.project.secrets import MissingSecret, resolve_env

THROTTLING_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
AUTH_CODES = frozenset({102, 190})
MISSING_OBJECT_SUBCODE = 33


_JSON_OF_HASHES = re.compile(r'[A-Za-z0-9_.~{}\[\]",:-]*')
_ESCAPES = (("{", "%7B"), ("}", "%7D"), ("[", "%5B"), ("]", "%5D"), ('"', "%22"), (",", "%2C"), (":", "%3A"))


def _quote(text: str) -> str:
    if not _JSON_OF_HASHES.fullmatch(text):
        return quote_plus(text)
    for char, escape in _ESCAPES:
        text = text.replace(char, escape)
    return text


def form_encode(params: dict[str, str]) -> bytes:
    """application/x-www-form-urlencoded exactly as `urlencode` writes it, several times faster
    for what makes up a 10,000-row request: JSON of hex digests."""
    return "&".join(f"{quote_plus(k)}={_quote(v)}" for k, v in params.items()).encode()


def meta_error(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of a Graph API answer ({} when there is none)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def is_throttled(response: httpx.Response) -> bool:
    return response.status_code in (400, 403) and meta_error(response).get("code") in THROTTLING_CODES


def regain_access_seconds(response: httpx.Response) -> float | None:
    """Meta's own estimate of when calls are allowed again (minutes, in a usage header)."""
    for header in ("X-Business-Use-Case-Usage", "X-Ad-Account-Usage"):
        raw = response.headers.get(header)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        entries = [e for v in usage.values() for e in (v if isinstance(v, list) else [v])] if isinstance(usage, dict) else []
        minutes = max((float(e.get("estimated_time_to_regain_access") or 0) for e in entries if isinstance(e, dict)), default=0)
        if minutes > 0:
            return minutes * 60
    return None


class MetaAudienceDestination(AdAudienceDestination):
    type: ClassVar[str] = "meta_audience"
    max_batch_size: ClassVar[int] = 10_000
    #: Meta does not deliver to a custom audience of fewer than 100 matched people.
    min_audience_size: ClassVar[int | None] = 100
    identifiers = META
    platform_name = "Meta"
    audience_noun = "custom audience"

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self._sleep = sleep
        self._http: HttpClient | None = None
        self._token = ""
        self._proof: str | None = None
        self._base = self._account = ""
        self._audiences: dict[str, str] = {}  # name -> id
        self.details: dict[str, Any] = {"num_received": 0, "num_invalid_entries": 0}

    # -- set-up ------------------------------------------------------------------------

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            try:
                self._token = resolve_env(self.spec.token)
                secret = resolve_env(self.spec.app_secret) if self.spec.app_secret else None
                self._base = resolve_env(self.spec.base_url).rstrip("/") + "/" + self.spec.api_version
                self._account = "act_" + resolve_env(self.spec.ad_account).removeprefix("act_")
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            if secret:  # proves the token was issued to our app (required by apps that enable it)
                self._proof = hmac.new(secret.encode(), self._token.encode(), hashlib.sha256).hexdigest()
            self._http = HttpClient(
                timeout=self.spec.timeout_seconds,
                headers={"Authorization": f"Bearer {self._token}"},
                retry=RetryPolicy(max_retries=self.spec.max_retries, base_delay=self.spec.retry_backoff_seconds),
                sleep=self._sleep,
                throttled=is_throttled,
                retry_after=regain_access_seconds,
            )
        return self._http

    def open(self, target: SyncTarget) -> None:
        self.http  # noqa: B018 - a missing token fails before any batch (and makes no call)

    def _params(self, **params: Any) -> dict[str, str]:
        out = {k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for k, v in params.items()}
        if self._proof:
            out["appsecret_proof"] = self._proof
        return out

    def _audiences_named(self, name: str) -> list[str]:
        found: list[str] = []
        after: str | None = None
        while True:  # every page: a name is not unique at Meta, so look at all of them
            query: dict[str, Any] = {"fields": "id,name", "limit": "500"}
            if after:
                query["after"] = after
            page = self._call("GET", f"{self._account}/customaudiences", **query)
            found += [str(a["id"]) for a in page.get("data", []) if a.get("name") == name]
            after = ((page.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (page.get("paging") or {}).get("next"):
                return found

    def _call(self, method: str, path: str, *, idempotent: bool = True, **params: Any) -> dict[str, Any]:
        """A Graph API call whose failure fails the whole push (lookups, creation)."""
        response = self._request(method, path, self._params(**params), idempotent=idempotent)
        if response.status_code >= 400:
            raise self._fatal(response) or DestinationError(f"Meta refused {method} {path}: {self._message(response)}", retryable=False)
        body = response.json()
        return body if isinstance(body, dict) else {}

    def _request(self, method: str, path: str, params: dict[str, str], idempotent: bool = True) -> httpx.Response:
        return self._send_request(method, path, params, idempotent).response

    def _send_request(self, method: str, path: str, params: dict[str, str], idempotent: bool = True) -> Answer:
        http = self.http  # first: it resolves the base URL
        url = f"{self._base}/{path}"
        if method == "POST":
            return http.send(
                method,
                url,
                content=form_encode(params),
                idempotent=idempotent,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        return http.send(method, url, params=params)  # GET, DELETE: in the query string, like the SDKs

    def _message(self, response: httpx.Response) -> str:
        error = meta_error(response)
        if not error:
            return self.http.describe(response)
        text = error.get("error_user_msg") or error.get("message") or "error"
        code = f" (code {error.get('code')}" + (f", subcode {error['error_subcode']}" if error.get("error_subcode") else "") + ")"
        return self.http.redact(f"{text}{code}")

    def _fatal(self, response: httpx.Response) -> DestinationError | None:
        """An answer no other batch will fare better with: stop the sync."""
        error = meta_error(response)
        code = error.get("code")
        if code in AUTH_CODES or response.status_code == 401:
            return DestinationError(
                f"Meta refused the access token: {self._message(response)} (use a system-user token with the ads_management permission)",
                retryable=False,
            )
        if code == 10 or (isinstance(code, int) and 200 <= code <= 299):
            return DestinationError(
                f"Meta refused the call: {self._message(response)} (the token needs ads_management on {self._account})", retryable=False
            )
        if error.get("error_subcode") == MISSING_OBJECT_SUBCODE:
            return DestinationError(f"Meta: {self._message(response)}", retryable=False)
        return None

    def check_remote(self, target: SyncTarget) -> list[str]:
        """The token reaches the ad account, and the audience exists or may be created."""
        try:
            self.http  # noqa: B018 - resolves the account
            name = target.audience or ""
            if name.isdigit():
                self._call("GET", name, fields="id,name")
            else:
                self._call("GET", f"{self._account}/customaudiences", fields="id,name", limit="1")
                if not self.spec.create_audiences:
                    self._audience_id(target)
        except DestinationError as e:
            return [str(e)]
        return []

    # -- the audience ----------------------------------------------------------------------

    def _audience_id(self, target: SyncTarget) -> str:
        name = target.audience or ""
        if name.isdigit():
            return name
        if name not in self._audiences:
            self._audiences[name] = find_or_create(
                lambda: self._audience_named(name), lambda: self._create_audience(target, name), attempts=self.spec.max_retries + 1
            )
        self.details["audience_id"] = self._audiences[name]
        return self._audiences[name]

    def _audience_named(self, name: str) -> str | None:
        found = self._audiences_named(name)
        if len(found) > 1:
            raise DestinationError(
                f"{self._account} has {len(found)} custom audiences named {name!r} "
                f"(ids {', '.join(found)}); set the sync's audience: to one id",
                retryable=False,
            )
        if not found and not self.spec.create_audiences:
            raise DestinationError(
                f"{self._account} has no custom audience named {name!r} (create it, or set create_audiences: true)", retryable=False
            )
        return found[0] if found else None

    def _create_audience(self, target: SyncTarget, name: str) -> str:
        # names are not unique at Meta: a create retried blindly could make two
        created = self._call(
            "POST",
            f"{self._account}/customaudiences",
            idempotent=False,
            name=name,
            subtype="CUSTOM",
            description=f"Synced by activation (sync {target.sync})",
            customer_file_source=self.spec.customer_file_source,
        )
        self.details["created_audience"] = str(created["id"])
        return str(created["id"])

    # -- members ---------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        removes, adds, refused = self.split(target, ops)
        failed: dict[str, RowResult] = {r.key: r for r in refused}
        if not removes and not adds:
            return refused
        audience = self._audience_id(target)
        fields = self.fields(target)
        schema = [META.by_name[f].key for f in fields]
        for chunk in self._url_sized(audience, schema, fields, removes):
            failed.update(self._send("DELETE", audience, schema, fields, chunk, None))
        adds = [m for m in adds if m.key not in failed]  # a failed removal keeps its row's old identity: retry both
        session_id = random.randrange(1, 2**53)  # JSON-safe integer
        add_chunks = chunks(adds, self.spec.batch_size)
        for seq, chunk in enumerate(add_chunks, 1):
            session = {
                "session_id": session_id,
                "batch_seq": seq,
                "last_batch_flag": seq == len(add_chunks),
                "estimated_num_total": len(adds),
            }
            failed.update(self._send("POST", audience, schema, fields, chunk, session))
        if add_chunks:
            self.details["session_id"] = str(session_id)
            self.details["sessions"] = self.details.get("sessions", 0) + 1
        return [failed.get(op.key) or RowResult(op.key, True) for op in ops]

    def _url_sized(self, audience: str, schema: list[str], fields: list[str], members: list[Member]) -> list[list[Member]]:
        """Removal batches whose DELETE URL stays within `max_url_bytes` (and `remove_batch_size` rows)."""
        empty = self._params(payload={"schema": schema, "data": []})
        base = len(f"{self._base}/{audience}/users?") + len(urlencode(empty))
        out: list[list[Member]] = [[]]
        size = base
        for m in members:
            row = json.dumps([str(m.values.get(f) or "") for f in fields], separators=(",", ":"))
            cost = len(urlencode({"": row})) + 2  # the row, percent-encoded, and its comma (%2C) less "="
            if out[-1] and (size + cost > self.spec.max_url_bytes or len(out[-1]) >= self.spec.remove_batch_size):
                out.append([])
                size = base
            out[-1].append(m)
            size += cost
        return [c for c in out if c]

    def _send(
        self, method: str, audience: str, schema: list[str], fields: list[str], members: list[Member], session: dict[str, Any] | None
    ) -> dict[str, RowResult]:
        """One users call; the results of the rows it did not take for sure (rejected, or
        possibly taken when a refusal answers a retry after an attempt that may have landed)."""
        data = [[str(m.values.get(f) or "") for f in fields] for m in members]
        params = self._params(payload={"schema": schema, "data": data}, **({"session": session} if session else {}))
        answer = self._send_request(method, f"{audience}/users", params)
        response = answer.response
        if response.status_code >= 400:
            if fatal := self._fatal(response):
                raise fatal
            reason = f"Meta refused the batch: {self._message(response)}"
            return {m.key: answer.rejected(m.key, reason) for m in members}
        try:
            body = json_body(response)
        except ValueError:
            body = None
        if not isinstance(body, dict):  # a 2xx we cannot read: Meta may have taken any of them
            return {m.key: unreadable(m.key, f"Meta answered HTTP {response.status_code} with a body that is not JSON") for m in members}
        self.details["num_received"] += int(body.get("num_received") or 0)
        self.details["num_invalid_entries"] += int(body.get("num_invalid_entries") or 0)
        samples = body.get("invalid_entry_samples") or {}
        if not isinstance(samples, dict) or not samples:
            return {}
        bad: dict[str, RowResult] = {}
        for m, row in zip(members, data, strict=False):
            for value in row:
                if value and value in samples:
                    bad[m.key] = answer.rejected(m.key, f"Meta counted this row invalid: {samples[value]}")
        return bad

    def report(self) -> DestinationReport:
        http = self._http
        details = dict(self.details) if http is not None and http.requests else {}
        return DestinationReport(
            requests=http.requests if http else 0,
            retries=http.retries if http else 0,
            throttled=http.throttled if http else 0,
            details=details,
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
