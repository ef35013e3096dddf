"""The httpx transport shared by the webhook, Meta and Google Ads destinations (and alerts).

Timeouts, what a failed request means and error messages live here; the retry loop itself
(attempts, waits, ambiguity, counters) is `retrying.Retrying`, shared with the destinations
that call through a vendor's SDK. Every httpx destination behaves the same way when an API is
slow, down or throttling:

* connection errors, timeouts, 408, 429 and 5xx are retried with jittered exponential
  backoff (``Retry-After`` is honoured on 429/503, capped at ``max_delay``);
* every other response is returned to the caller, which decides what a 4xx means;
* once retries are exhausted a `DestinationError` is raised whose message names the method,
  the URL without query string or credentials, the status and a short body excerpt;
* `send` also says whether an earlier attempt of the request may have been applied (its
  connection dropped after sending, its answer timed out or was cut, a 5xx other than 503):
  a refusal answering the retry (a per-row error, a 409 for a used idempotency key, a 404
  for a remove already done) may then be the vendor's view of its own earlier write, so
  `Answer.rejected` leaves such rows possibly delivered instead of rejected.

Header values (tokens) never appear in messages or logs: they are redacted even when a
server echoes them back in an error body.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timezone
from types import TracebackType
from typing import Any

import httpx

from activation import __version__
from activation.destinations.base import DestinationError, RowResult

# RetryPolicy lives with the loop; destinations and tests take it from here as before.
from activation.destinations.retrying import Failure, RetryCounters, Retrying, RetryPolicy

log = logging.getLogger(__name__)

USER_AGENT = f"activation/{__version__}"
#: Statuses retried besides every 5xx.
RETRY_STATUSES = frozenset({408, 429})
#: Statuses whose Retry-After header is honoured.
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: Transport errors worth retrying; others (bad URL, unsupported scheme, proxy
#: misconfiguration) fail at once because retrying cannot fix them.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
#: Transport errors that prove the request never reached the server.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


#: Header names whose values are never secret (so they need no redaction).
_PUBLIC_HEADERS = frozenset({"accept", "content-type", "content-length", "user-agent", "idempotency-key"})
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")
_EXCERPT = 200


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns None when absent or unparseable; a date in the past gives 0.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)  # RFC 9110 says integer; some APIs send "1.5"
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are always GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def safe_url(url: str | httpx.URL) -> str:
    """The URL fit for messages: no query string, fragment or user:password@."""
    text = str(url).split("#", 1)[0].split("?", 1)[0]
    return _USERINFO.sub(r"\1", text)


def secret_values(headers: Mapping[str, str]) -> set[str]:
    """Header values that must never be shown (plus the token part of "Bearer xyz")."""
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in _PUBLIC_HEADERS or len(value) < 4:
            continue
        found.add(value)
        found.update(part for part in value.split() if len(part) >= 6)
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: "Bearer x" before "x"
        text = text.replace(secret, "***")
    return text


def response_message(response: httpx.Response, limit: int = _EXCERPT) -> str:
    """A one-line reason for a response: the API's error message, else a body excerpt."""
    try:
        data: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    message: str | None = None
    if isinstance(data, dict):
        for field in ("error", "message", "detail", "title", "error_description"):
            value = data.get(field)
            if isinstance(value, dict):  # {"error": {"message": "..."}}
                value = value.get("message") or value
            if value:
                message = value if isinstance(value, str) else jsonlib.dumps(value, default=str)
                break
    text = " ".join((message or response.text).split()) or response.reason_phrase or "(empty body)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Added to a refusal that answered a retry after an attempt that may have been applied.
AFTER_AMBIGUOUS = "answering a retry of a request that may have been applied"
#: The error of rows whose 2xx answer could not be read.
UNREADABLE = "the answer could not be read (a 2xx whose body is not what the API sends): the request may have been applied"


@dataclass(frozen=True, slots=True)
class Answer:
    """A response and what the attempts before it leave open."""

    response: httpx.Response
    #: An earlier attempt of this request may have been applied (dropped after sending, a
    #: timed-out or cut answer, a 5xx other than 503): a refusal now may be the vendor
    #: refusing to do twice what it already did.
    after_ambiguous: bool = False

    def rejected(self, key: str, error: str) -> RowResult:
        """The result of a row this answer refuses (see `rejected`)."""
        return rejected(key, error, after_ambiguous=self.after_ambiguous)


def rejected(key: str, error: str, *, after_ambiguous: bool) -> RowResult:
    """A refused row: rejected, or possibly delivered when an earlier attempt of the request
    may have applied it (then it is resent next run, and removed by identity if it leaves)."""
    if after_ambiguous:
        return RowResult(key=key, ok=False, unknown=True, error=f"{error} ({AFTER_AMBIGUOUS})")
    return RowResult(key=key, ok=False, error=error)


def unreadable(key: str, why: str = "") -> RowResult:
    """The result of a row whose request got a 2xx we cannot read: possibly delivered."""
    return RowResult(key=key, ok=False, unknown=True, error=f"{UNREADABLE}{f': {why}' if why else ''}")


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON body; ValueError when it is not JSON (cut, garbled, an HTML page)."""
    return jsonlib.loads(response.content)


class HttpClient(RetryCounters):
    """One keep-alive `httpx.Client` with retries; thread-safe like httpx itself.

    `retries` (retry attempts made) and `throttled` (429s received) are for metrics.
    """

    def __init__(
        self,
        *,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        throttled: Callable[[httpx.Response], bool] | None = None,
        retry_after: Callable[[httpx.Response], float | None] | None = None,
    ) -> None:
        """`throttled`: the API's own way of saying "slow down" in a 4xx other than 429
        (Meta's error codes 4/17/613/80003 in a 400); such answers are retried like a 429.
        `retry_after`: seconds to wait read from a throttled answer's body or headers, when
        there is no Retry-After header."""
        self.retry = retry or RetryPolicy()
        self._throttled = throttled
        self._retry_after = retry_after
        self._secrets = secret_values(headers or {})
        self._client = httpx.Client(
            timeout=timeout,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            transport=transport,
            follow_redirects=False,  # a redirected POST may silently lose its body
        )
        self.retrying = Retrying(self.retry, sleep=sleep, rng=rng or random.Random(), log=log)

    def redact(self, text: str, extra: Iterable[str] = ()) -> str:
        """`text` with every known header value replaced by ***."""
        return redact(text, self._secrets.union(extra))

    def describe(self, response: httpx.Response) -> str:
        """Redacted one-line reason for `response` (for error messages)."""
        return self.redact(response_message(response))

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        display_url: str | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send with retries; return the first response that is not worth retrying (see
        `send` for the arguments)."""
        return self.send(
            method, url, json=json, content=content, headers=headers, params=params, display_url=display_url, idempotent=idempotent
        ).response

    def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        display_url: str | None = None,
        idempotent: bool = True,
    ) -> Answer:
        """Send with retries; the first response that is not worth retrying, and whether an
        earlier attempt may have been applied (`Answer.after_ambiguous`).

        `display_url` is what messages show (e.g. the URL as written, with ``${ENV}``
        placeholders still in it); by default `url` minus query string and credentials.
        `idempotent=False` (a create that must not happen twice): a failure after which the
        server may have acted (a lost or cut answer, a 500/502/504) is not retried but raised
        as `AmbiguousOutcome`, so the caller can look before trying again; failures that
        prove nothing was done (no connection, 429, 503) are still retried.
        """
        shown = display_url or safe_url(url)
        secrets = self._secrets | secret_values(headers or {})

        def attempt() -> httpx.Response | Failure:
            response = self._client.request(method, url, json=json, content=content, headers=headers, params=params)
            return self._failure(response, secrets) or response

        def classify(exc: Exception) -> Failure | None:
            if isinstance(exc, TRANSIENT_ERRORS):  # sent, then dropped, timed out or cut: unless never sent
                return Failure(redact(_exc_text(exc, url, shown), secrets), maybe_applied=not isinstance(exc, NOT_SENT_ERRORS))
            if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL)):  # a bad URL or scheme: retrying cannot fix it
                text = redact(_exc_text(exc, url, shown), secrets)
                return Failure(text, fatal=lambda _: DestinationError(f"{method} {shown} failed: {text}", retryable=False))
            return None

        response, ambiguous = self.retrying.call(f"{method} {shown}", attempt, classify, idempotent=idempotent)
        return Answer(response, ambiguous)

    def _failure(self, response: httpx.Response, secrets: Iterable[str]) -> Failure | None:
        """The failure `response` is (408, 429, 5xx, the API's own throttling), or None: the
        caller decides what any other answer means."""
        status = response.status_code
        throttled = status == 429 or (self._throttled is not None and status < 500 and self._throttled(response))
        if status < 500 and status not in RETRY_STATUSES and not throttled:
            return None
        wait = parse_retry_after(response.headers.get("Retry-After")) if status in RETRY_AFTER_STATUSES else None
        if wait is None and throttled and self._retry_after is not None:
            wait = self._retry_after(response)
        problem = redact(f"HTTP {status}: {response_message(response)}", secrets)
        response.close()
        # 503 says it was not served; other 5xx may have been
        return Failure(problem, status=status, throttled=throttled, wait=wait, maybe_applied=status >= 500 and status != 503)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _exc_text(exc: Exception, url: str, shown: str) -> str:
    """Exception name and message, with the raw URL (query string!) replaced."""
    text = str(exc).replace(str(url), shown)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
