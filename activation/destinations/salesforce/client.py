"""Salesforce API access for the Salesforce destination, through simple-salesforce.

`SalesforceClient.call` is the one place that decides what a failure means:

* REQUEST_LIMIT_EXCEEDED, 5xx, dropped connections, timeouts and failed Bulk jobs are retried
  with jittered backoff (the shared loop, `retrying.Retrying`), then raise a retryable
  `DestinationError`;
* 401 INVALID_SESSION_ID logs in again once when credentials are configured, else it raises a
  non-retryable `DestinationError` (a session id cannot renew itself);
* every other refusal (403, 404, 400) propagates to the caller, which knows what it means.

On top of it: sObject Collections (≤ 200 records a call, allOrNone false, one result per record
in order), Bulk API 2.0 ingest jobs (CSV; results mapped back to rows by a key column) and SOQL
look-ups by a field, chunked so each query stays well under URL limits.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_soql

from activation.destinations.base import DAILY_RETRY_SECONDS, DestinationError
from activation.destinations.retrying import Attempts, Failure, Retrying, RetryPolicy
from activation.destinations.salesforce.fields import csv_cell
from activation.project.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

COLLECTION_SIZE = 200  # sObject Collections refuse more records per call
SOQL_IN_VALUES, SOQL_IN_CHARS = 200, 10_000  # keeps a GET query URL far below ~16 kB
TRANSIENT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE"})
#: REQUEST_LIMIT_EXCEEDED's message when the org's daily requests are used up (the same code
#: also says "ConcurrentPerOrgLongTxn Limit exceeded": that one passes in seconds, and is retried).
DAILY_LIMIT = "TotalRequests Limit exceeded"


@dataclass(slots=True)
class Outcome:
    """One record's result from any write API."""

    ok: bool
    id: str | None = None
    created: bool = False
    code: str | None = None
    message: str | None = None
    #: refused by an attempt that followed one Salesforce may have applied (its answer was
    #: lost, cut or a 5xx): the record may hold the write all the same
    after_ambiguous: bool = False

    @property
    def error(self) -> str:
        return f"{self.code}: {self.message}" if self.code else (self.message or "rejected by Salesforce")


# ---------------------------------------------------------------- transport


class RoutingAdapter(HTTPAdapter):
    """Applies a default timeout, counts requests and, with `base_url`, routes every request there.

    simple-salesforce always builds ``https://{instance}/...`` (and logs in at
    ``https://{domain}.salesforce.com``), so reaching a local emulator means rewriting URLs
    below the SDK. The original host goes along as `Host`, and the response keeps the original
    URL so SDK error messages show the Salesforce one.
    """

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(max_retries=0)  # retries are ours: the SDK's calls must not double them
        self.base = urlsplit(base_url.rstrip("/")) if base_url else None
        self.timeout = timeout
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent += 1
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.base is None:
            return super().send(request, **kwargs)
        parts = urlsplit(request.url or "")
        routed = request.copy()
        routed.url = urlunsplit((self.base.scheme, self.base.netloc, self.base.path + parts.path, parts.query, ""))
        routed.headers["Host"] = parts.netloc
        kwargs["proxies"] = {}
        response = super().send(routed, **kwargs)
        response.url, response.request = request.url or "", request
        return response


def http_session(base_url: str | None, timeout: float) -> tuple[requests.Session, RoutingAdapter]:
    session = requests.Session()
    adapter = RoutingAdapter(base_url, timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if base_url:
        session.trust_env = False  # an emulator must not be reached through an environment proxy
    return session, adapter


# ---------------------------------------------------------------- errors


def error_text(exc: BaseException) -> str:
    """'CODE: message' from an SDK exception (its body is a list of {errorCode, message})."""
    if isinstance(exc, SalesforceAuthenticationFailed):
        return f"{exc.code}: {exc.auth_message}" if exc.code else exc.auth_message
    if isinstance(exc, SalesforceError):
        content = exc.content
        if isinstance(content, list) and content and isinstance(content[0], dict):
            first = content[0]
            return f"{first.get('errorCode', 'ERROR')}: {first.get('message', '')}"
        text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
        return f"HTTP {exc.status}: {' '.join(text.split())[:300]}"
    return f"{type(exc).__name__}: {exc}"


def _failed_after(what: str, attempts: Attempts, failure: Failure) -> BaseException:
    # No "(an attempt may have been applied)" here, unlike HttpClient's: kept as Salesforce's
    # loop had it (its callers read `Attempts.maybe_applied` when they need to know).
    return DestinationError(f"{what} failed after {attempts.made} attempt(s): {failure.problem}")


def _transient(exc: BaseException) -> bool:
    # ChunkedEncodingError: the answer was cut mid-body (IncompleteRead)
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    if isinstance(exc, SalesforceAuthenticationFailed):  # a login endpoint answering 5xx
        return isinstance(exc.code, int) and exc.code >= 500
    if isinstance(exc, SalesforceRefusedRequest):
        return error_text(exc).split(":")[0] in TRANSIENT_CODES
    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    if isinstance(exc, SalesforceOperationError):  # a Bulk job ended Failed
        return "InvalidBatch" not in str(exc) and "InvalidJob" not in str(exc)
    return False


def _refused_unprocessed(exc: BaseException) -> bool:
    """Salesforce said it did not do it: over the request limit, or unavailable (503)."""
    if isinstance(exc, SalesforceRefusedRequest):
        return True
    return isinstance(exc, SalesforceGeneralError) and exc.status == 503


def parse_save_result(result: dict[str, Any] | None) -> Outcome:
    if not isinstance(result, dict):
        return Outcome(False, code="NOT_REPORTED", message="Salesforce sent no result for this record")
    if result.get("success"):
        return Outcome(True, result.get("id"), bool(result.get("created")))
    errors = result.get("errors") or [{}]
    first = errors[0]
    return Outcome(
        False, result.get("id"), code=first.get("statusCode", "ERROR"), message="; ".join(str(e.get("message", "")) for e in errors)
    )


def parse_bulk_error(text: str) -> tuple[str, str]:
    """'CODE:message:Field1,Field2 --' (a Bulk sf__Error) → (CODE, message)."""
    code, _, rest = text.partition(":")
    rest = rest.strip().removesuffix("--").strip()
    head, sep, fields = rest.rpartition(":")
    if sep and all(part.strip().replace("_", "").isalnum() for part in fields.split(",") if part):
        rest = head
    return code.strip(), rest.strip()


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def in_chunks(values: Sequence[str]) -> Iterator[list[str]]:
    """Values for `IN (...)` lists, bounded in count and characters."""
    chunk: list[str] = []
    chars = 0
    for v in values:
        if chunk and (len(chunk) >= SOQL_IN_VALUES or chars + len(v) + 3 > SOQL_IN_CHARS):
            yield chunk
            chunk, chars = [], 0
        chunk.append(v)
        chars += len(v) + 3
    if chunk:
        yield chunk


# ---------------------------------------------------------------- client


class SalesforceClient:
    """A logged-in simple-salesforce client with retries; created lazily, logs in on first use."""

    def __init__(
        self,
        login: Callable[[bool], Salesforce],
        *,
        can_relogin: bool,
        retry: RetryPolicy,
        adapter: RoutingAdapter,
        bulk_wait: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._login = login  # login(fresh): fresh=True ignores a configured session id
        self._sf: Salesforce | None = None
        self.can_relogin = can_relogin
        self.retry = retry
        self.adapter = adapter
        self.bulk_wait = bulk_wait
        # REQUEST_LIMIT_EXCEEDED is retried but not counted as throttled (it never was)
        self.retrying = Retrying(retry, sleep=sleep, rng=random.Random(), exhausted=_failed_after, log=log)
        self.api_usage: tuple[int, int] | None = None  # (used, limit) from Sforce-Limit-Info

    @property
    def requests(self) -> int:
        return self.adapter.sent

    @property
    def retries(self) -> int:
        return self.retrying.retries

    def call(
        self,
        what: str,
        fn: Callable[[Salesforce], T],
        passthrough: tuple[type[Exception], ...] = (),
        idempotent: bool = True,
        attempts: Attempts | None = None,
    ) -> T:
        """`fn(sf)` with retries; `passthrough` errors reach the caller, any other refusal
        becomes a non-retryable DestinationError. `idempotent=False` (a create that must not
        happen twice): a transient failure after which Salesforce may have acted raises
        `AmbiguousOutcome` instead of being retried, so the caller can look first.
        `attempts` learns whether an attempt before the last may have been applied."""
        relogged = False

        def attempt() -> T:
            nonlocal relogged
            try:
                return self._once(fn, fresh=relogged)
            except SalesforceExpiredSession as e:
                if isinstance(e, passthrough) or relogged or not self.can_relogin:
                    raise  # classified below: a session id cannot renew itself
                relogged, self._sf = True, None
                log.info("%s: session expired; logging in again", what)
            # Logged in afresh inside the same attempt: the re-login is not a retry, and only
            # the first expiry of a call is forgiven.
            return self._once(fn, fresh=True)

        def classify(e: Exception) -> Failure | None:
            if isinstance(e, passthrough):
                return None
            if isinstance(e, SalesforceExpiredSession):
                expired = DestinationError(
                    f"{what}: Salesforce answered 401 INVALID_SESSION_ID (the session expired or was "
                    "revoked); configure username/password or JWT so activation can log in again, or "
                    "supply a fresh session_id",
                    retryable=False,
                )
                return Failure(str(expired), fatal=lambda _: expired)
            if isinstance(e, SalesforceAuthenticationFailed):  # a login, which writes nothing
                if not _transient(e):
                    failed = DestinationError(f"Salesforce login failed: {redact(error_text(e))}", retryable=False)
                    return Failure(str(failed), fatal=lambda _: failed)
                return Failure(redact(error_text(e)))
            if isinstance(e, SalesforceRefusedRequest) and DAILY_LIMIT in error_text(e):
                # The org's API requests of the last 24 hours are used up: retrying within the
                # run only spends the next ones. Not terminal (it passes by itself): try hourly.
                daily = DestinationError(
                    f"{what}: the org's daily API request limit is reached ({redact(error_text(e))}); it is a rolling "
                    "24-hour window: the daemon tries again hourly",
                    retry_after=DAILY_RETRY_SECONDS,
                )
                return Failure(str(daily), throttled=True, fatal=lambda _: daily)
            if isinstance(e, (SalesforceError, SalesforceOperationError, requests.RequestException)):
                if not _transient(e):
                    refused = DestinationError(f"{what}: {redact(error_text(e))}", retryable=False)
                    return Failure(str(refused), fatal=lambda _: refused)
                # Only a connect timeout proves nothing was sent (a refused connection counts as
                # maybe applied here, unlike HttpClient's connect errors)
                maybe_applied = not isinstance(e, requests.exceptions.ConnectTimeout) and not _refused_unprocessed(e)
                return Failure(redact(error_text(e)), maybe_applied=maybe_applied)
            return None

        return self.retrying.call(what, attempt, classify, idempotent=idempotent, attempts=attempts)[0]

    def _once(self, fn: Callable[[Salesforce], T], *, fresh: bool) -> T:
        """One attempt: log in if needed (`fresh`: not with a configured session id), then `fn`."""
        if self._sf is None:
            self._sf = self._login(fresh)
        result = fn(self._sf)
        usage = self._sf.api_usage.get("api-usage")
        if usage is not None:  # cheap: parsed by the SDK from every REST response
            self.api_usage = (usage.used, usage.total)
        return result

    # ------------------------------------------------------------ reads

    def describe(self, sobject: str) -> dict[str, Any] | None:
        """The sObject's describe, or None when the org has no such object."""
        path = f"sobjects/{quote(sobject, safe='')}/describe"  # restful: keeps sf.api_usage current
        try:
            return self.call(f"describe {sobject}", lambda sf: sf.restful(path), (SalesforceResourceNotFound,))
        except SalesforceResourceNotFound:
            return None

    def object_names(self) -> list[str]:
        described = self.call("describe", lambda sf: sf.describe())
        if described is None:  # simple_salesforce's answer to an empty body
            raise DestinationError("Salesforce answered the describe of all objects with nothing")
        return [s["name"] for s in described["sobjects"]]

    def query(self, soql: str) -> list[dict[str, Any]]:
        return list(self.call("query", lambda sf: sf.query_all(soql))["records"])

    def find(
        self, sobject: str, field: str, values: Sequence[str], select: Sequence[str] = ("Id",), where: str = ""
    ) -> list[dict[str, Any]]:
        """Records whose `field` is one of `values`: one query per chunk of values."""
        columns = ", ".join(dict.fromkeys(["Id", field, *select]))
        found: list[dict[str, Any]] = []
        for chunk in in_chunks(list(dict.fromkeys(values))):
            found += self.query(format_soql(f"SELECT {columns} FROM {sobject} WHERE {field} IN {{}}{where}", chunk))
        return found

    # ------------------------------------------------------------ writes

    def collection(self, op: str, sobject: str, records: Sequence[dict[str, Any]], ext: str | None = None) -> list[Outcome]:
        """insert | update | upsert through sObject Collections, 200 records a call."""
        method, path = {
            "insert": ("POST", "composite/sobjects"),
            "update": ("PATCH", "composite/sobjects"),
            "upsert": ("PATCH", f"composite/sobjects/{sobject}/{ext}"),
        }[op]
        out: list[Outcome] = []
        for chunk in chunks(records, COLLECTION_SIZE):
            body = {"allOrNone": False, "records": [{"attributes": {"type": sobject}, **r} for r in chunk]}
            out += self._collection_call(f"{method} {path}", len(chunk), lambda sf, b=body: sf.restful(path, method=method, json=b))  # type: ignore[misc]
        return out

    def delete(self, ids: Sequence[str]) -> list[Outcome]:
        out: list[Outcome] = []
        for chunk in chunks(ids, COLLECTION_SIZE):
            params = {"ids": ",".join(chunk), "allOrNone": "false"}
            out += self._collection_call(
                "DELETE composite/sobjects",
                len(chunk),
                lambda sf, p=params: sf.restful("composite/sobjects", method="DELETE", params=p),  # type: ignore[misc]
            )
        return out

    def _collection_call(self, what: str, n: int, fn: Callable[[Salesforce], Any]) -> list[Outcome]:
        attempts = Attempts()
        try:
            results = self.call(what, fn, (SalesforceMalformedRequest,), attempts=attempts) or []
        except SalesforceMalformedRequest as e:
            # The whole request was refused (e.g. a value the JSON reader cannot take): each of
            # its records is rejected with that reason, and resent next run.
            code, _, message = error_text(e).partition(": ")
            return [Outcome(False, code=code, message=message, after_ambiguous=attempts.maybe_applied) for _ in range(n)]
        outcomes = [parse_save_result(results[i] if i < len(results) else None) for i in range(n)]
        if attempts.maybe_applied:  # a refusal now does not undo what the lost attempt may have done
            outcomes = [o if o.ok else dataclasses.replace(o, after_ambiguous=True) for o in outcomes]
        return outcomes

    def bulk(self, op: str, sobject: str, records: Sequence[dict[str, Any]], key: str, ext: str | None = None) -> list[Outcome]:
        """One Bulk API 2.0 ingest job; results are matched to `records` by their `key` column."""
        rows = [{k: csv_cell(v) for k, v in r.items()} for r in records]

        def run(sf: Salesforce) -> list[str]:
            handler = getattr(sf.bulk2, sobject)
            kwargs: dict[str, Any] = {"records": rows, "wait": self.bulk_wait}
            if op == "upsert":
                kwargs["external_id_field"] = ext
            return [job["job_id"] for job in getattr(handler, op)(**kwargs)]

        job_ids = self.call(f"Bulk API 2.0 {op} of {len(rows)} {sobject} records", run)
        pending: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            pending.setdefault(row.get(key, ""), []).append(i)
        out: list[Outcome | None] = [None] * len(rows)

        def take(value: str) -> int | None:
            slots = pending.get(value)
            return slots.pop(0) if slots else None

        for job_id in job_ids:
            for kind in ("successful", "failed"):
                text = self.call(
                    f"Bulk API 2.0 {kind} results of job {job_id}",
                    lambda sf, k=kind, j=job_id: getattr(getattr(sf.bulk2, sobject), f"get_{k}_records")(j),  # type: ignore[misc]
                )
                for result in csv.DictReader(io.StringIO(text)):
                    slot = take(result.get(key, ""))
                    if slot is None:
                        continue
                    if kind == "successful":
                        out[slot] = Outcome(True, result.get("sf__Id") or None, result.get("sf__Created") == "true")
                    else:
                        code, message = parse_bulk_error(result.get("sf__Error", ""))
                        out[slot] = Outcome(False, result.get("sf__Id") or None, code=code, message=message)
        missing = Outcome(False, code="NOT_PROCESSED", message="the Bulk API job did not process this record")
        return [o if o is not None else missing for o in out]
