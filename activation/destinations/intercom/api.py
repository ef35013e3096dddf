"""The Intercom REST API through the official SDK (python-intercom, Fern-generated over httpx):
one client, retries and typed failures.

The SDK raises `ApiError(status_code, headers, body)` for any answer that is not a 2xx (its
subclasses `UnauthorizedError`, `NotFoundError`… alike), and also for a 2xx whose body is not
JSON; transport failures come through as httpx's own exceptions. Its own retry loop is off
(`max_retries` 0, the SDK's default): this module's `Retrying` decides, and counts, every retry.
Intercom's errors are `{"type": "error.list", "errors": [{"code", "message"}]}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from activation.destinations.base import ConfigError, DestinationError
from activation.destinations.http import NOT_SENT_ERRORS, TRANSIENT_ERRORS, parse_retry_after, redact, secret_values
from activation.destinations.intercom.spec import REGIONS
from activation.destinations.retrying import Attempts, Failure, RetryCounters, Retrying, RetryPolicy
from activation.project.secrets import MissingSecret, resolve_env

#: Calls made with the SDK's own retries off: every retry is ours.
NO_SDK_RETRIES: dict[str, Any] = {"max_retries": 0}


@dataclass
class Refused(Exception):
    """A 4xx other than auth and throttling: Intercom refused this request."""

    status: int
    code: str
    message: str
    # An earlier attempt of this call may have been applied (its answer was lost or a 5xx):
    # the refusal may be Intercom answering the retry of something it already did.
    after_ambiguous: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


def error_of(body: Any) -> tuple[str, str]:
    """(code, message) of Intercom's error.list, however the SDK handed the body over."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("code") or ""), "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))
        return "", str(body.get("message") or body)[:300]
    if hasattr(body, "errors"):  # the SDK's Error model (401 answers)
        errors = [e for e in (body.errors or [])]
        if errors:
            return str(getattr(errors[0], "code", "") or ""), "; ".join(
                str(getattr(e, "message", "") or getattr(e, "code", "")) for e in errors
            )
    return "", " ".join(str(body).split())[:300]


def until_reset(headers: Any, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait after a 429: Intercom's X-RateLimit-Reset is a UNIX time (seconds)."""
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in dict(headers).items()}
    try:
        return max(0.0, float(lowered["x-ratelimit-reset"]) - now())
    except (KeyError, TypeError, ValueError):
        return parse_retry_after(lowered.get("retry-after"))


class IntercomApi(RetryCounters):
    """Thread-safe (httpx's client is); built on first use, so an unchanged run makes no client."""

    def __init__(self, name: str, spec: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.spec = name, spec
        self._client: Any = None
        self._http: httpx.Client | None = None
        self._secrets: set[str] = set()
        self.retrying = Retrying(RetryPolicy(max_retries=spec.max_retries, max_delay=60.0), sleep=sleep, exhausted=self._still_failing)
        self.rate_limit: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            from intercom import Intercom

            try:
                token = resolve_env(self.spec.token)
                base = resolve_env(self.spec.base_url) if self.spec.base_url else REGIONS[self.spec.region]
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            self._secrets = secret_values({"Authorization": f"Bearer {token}"})
            hooks = {"response": [self._observe]}
            self._http = httpx.Client(timeout=self.spec.timeout_seconds, follow_redirects=False, event_hooks=hooks)
            self._client = Intercom(
                token=token, base_url=base.rstrip("/"), headers={"Intercom-Version": self.spec.api_version}, httpx_client=self._http
            )
        return self._client

    def _observe(self, response: httpx.Response) -> None:
        seen = {
            h: response.headers[h] for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset") if h in response.headers
        }
        if seen:
            self.rate_limit = seen

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _still_failing(self, what: str, attempts: Attempts, failure: Failure) -> BaseException:
        landed = " (an attempt may have been applied)" if attempts.maybe_applied else ""
        return DestinationError(f"Intercom {what} still failing after {attempts.made} attempt(s): {failure.problem}{landed}")

    def _failure(self, status: int | None, headers: Any, body: Any) -> Failure:
        code, message = error_of(body)
        problem = self.redact(f"HTTP {status} {code}: {message}" if code else f"HTTP {status}: {message}")
        if status in (401, 403):
            auth = DestinationError(
                f"Intercom refused the access token ({problem}); check `token` and that the app has the permissions this sync needs",
                retryable=False,
            )
            return Failure(problem, status=status, fatal=lambda _: auth)
        if status == 429:
            return Failure(problem, status=status, throttled=True, wait=until_reset(headers))
        if status is not None and 200 <= status < 300:  # a 2xx the SDK could not read: applied, maybe
            return Failure(f"HTTP {status}: an answer that is not Intercom's JSON", status=status, maybe_applied=True)
        if status is not None and status < 500 and status != 408:
            return Failure(problem, status=status, fatal=lambda applied: Refused(status, code, self.redact(message), applied))
        return Failure(problem, status=status, maybe_applied=status is None or status != 503)

    def call(self, what: str, fn: Callable[..., Any], *args: Any, idempotent: bool = True, **kwargs: Any) -> tuple[Any, bool]:
        """`fn(*args, **kwargs)` with retries: its result and whether an earlier attempt may have
        been applied. Raises DestinationError (auth; still failing), Refused (another 4xx) or
        AmbiguousOutcome (`idempotent=False` and an attempt may have been applied)."""
        from intercom.core.api_error import ApiError

        def attempt() -> Any:
            try:
                return fn(*args, **kwargs, request_options=NO_SDK_RETRIES)
            except ApiError as e:
                return self._failure(e.status_code, e.headers, e.body)

        def classify(exc: Exception) -> Failure | None:
            if isinstance(exc, TRANSIENT_ERRORS):  # sent, then dropped, timed out or cut: unless never sent
                return Failure(self.redact(f"{type(exc).__name__}: {exc}"), maybe_applied=not isinstance(exc, NOT_SENT_ERRORS))
            if isinstance(exc, httpx.HTTPError):
                text = self.redact(f"{type(exc).__name__}: {exc}")
                return Failure(text, fatal=lambda _: DestinationError(f"Intercom {what} failed: {text}", retryable=False))
            return None

        return self.retrying.call(what, attempt, classify, idempotent=idempotent)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._client = self._http = None
