"""The Zendesk Support API through the official SDK (zenpy): one client, retries, typed
failures, background jobs.

zenpy calls `requests` through a session we hand it. It builds URLs as
``{protocol}://{subdomain}.{domain}/api/v2/…``: a `base_url` (the emulator) is served by
setting those parts on every API object of the client. Its own 429 loop (whole seconds of
`Retry-After`, unbounded) is bypassed: our session turns a 429 into `Throttled` before zenpy
sees it, so the shared retry loop waits, counts and gives up like every other destination's.
Other non-2xx answers come out of zenpy as `APIException` (a JSON body) or `requests.HTTPError`,
both carrying the response. zenpy's object cache is off: a job's status must be read afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from activation.destinations.base import ConfigError, DestinationError
from activation.destinations.http import parse_retry_after
from activation.destinations.retrying import Failure, RetryCounters, Retrying, RetryPolicy
from activation.project.secrets import MissingSecret, redact, resolve_env

#: Job states after which a job does no more work.
FINISHED = frozenset({"completed", "failed", "killed"})


class Throttled(Exception):
    """A 429, raised by our session before zenpy's own wait loop sees it."""

    def __init__(self, response: Any) -> None:
        super().__init__("HTTP 429")
        self.response = response


@dataclass
class Refused(Exception):
    """A 4xx other than auth and throttling: Zendesk refused the request itself."""

    status: int
    message: str
    after_ambiguous: bool = False  # an earlier attempt of this call may have been applied

    def __str__(self) -> str:
        return self.message


class Unfinished(Exception):
    """A job did not complete in time, or failed: its rows may or may not have been written."""


def reason(response: Any) -> str:
    """Zendesk's `error: description (details)` of an error answer, redacted."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return redact(" ".join(str(getattr(response, "text", "") or "").split())[:200] or f"HTTP {response.status_code}")
    error = doc.get("error")
    text = error.get("message") or error.get("title") if isinstance(error, dict) else error
    parts = [str(text or f"HTTP {response.status_code}")]
    if doc.get("description"):
        parts.append(str(doc["description"]))
    details = doc.get("details")
    if isinstance(details, dict):
        parts += [str(d.get("description")) for ds in details.values() if isinstance(ds, list) for d in ds if isinstance(d, dict)]
    return redact(": ".join(parts))[:400]


class ZendeskApi(RetryCounters):
    def __init__(self, name: str, spec: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.spec = name, spec
        self._client: Any = None
        self._sleep = sleep
        self.retry = RetryPolicy(max_retries=spec.max_retries, max_delay=60.0)
        self.retrying = Retrying(self.retry, sleep=sleep)
        self.jobs: list[str] = []

    @property
    def client(self) -> Any:
        """The zenpy client (built on first use: no secret, no request before)."""
        if self._client is None:
            import requests
            from zenpy import Zenpy

            class Session(requests.Session):
                def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
                    response = super().request(method, url, *args, **kwargs)
                    if response.status_code == 429:
                        raise Throttled(response)
                    return response

            spec = self.spec
            try:
                subdomain = resolve_env(spec.subdomain)
                auth: dict[str, Any] = (
                    {"email": resolve_env(spec.email or ""), "token": resolve_env(spec.token)}
                    if spec.token
                    else {"oauth_token": resolve_env(spec.oauth_token or "")}
                )
                base = resolve_env(spec.base_url) if spec.base_url else None
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            client = Zenpy(subdomain=subdomain, session=Session(), timeout=spec.timeout_seconds, disable_cache=True, **auth)
            if base:
                _point_at(client, base)
            self._client = client
        return self._client

    def call(self, fn: Callable[..., Any], *args: Any, expect: type | None = None, **kwargs: Any) -> tuple[Any, bool]:
        """`fn(*args, **kwargs)` retrying 429 (after Retry-After), 5xx and lost answers; its
        result and whether an earlier attempt may have been applied. `expect`: the type a
        readable answer has (a 2xx zenpy could not parse comes back as a bare Response).

        Raises DestinationError (auth: terminal; still failing after retries) or Refused (other 4xx)."""
        import requests
        from zenpy.lib.exception import APIException

        def attempt() -> Any:
            try:
                result = fn(*args, **kwargs)
            except Throttled as e:
                wait = parse_retry_after(e.response.headers.get("Retry-After"))
                return Failure(f"HTTP 429: {reason(e.response)}", status=429, throttled=True, wait=wait)
            except (APIException, requests.HTTPError) as e:
                if e.response is None:
                    raise
                return _failure(e.response)
            if expect is not None and not isinstance(result, expect):
                return Failure("a 2xx answer that could not be read", maybe_applied=True)
            return result

        def classify(exc: Exception) -> Failure | None:
            if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
                never_sent = isinstance(exc, requests.ConnectTimeout) or "NewConnectionError" in repr(exc)
                return Failure(redact(f"{type(exc).__name__}: {exc}")[:300], maybe_applied=not never_sent)
            if isinstance(exc, requests.exceptions.ChunkedEncodingError):
                return Failure(f"the answer was cut: {type(exc).__name__}", maybe_applied=True)
            return None

        return self.retrying.call("Zendesk", attempt, classify)

    def run_job(self, fn: Callable[..., Any], *args: Any) -> tuple[list[dict[str, Any]], bool]:
        """Queue a background job (`fn(*args)` answers a JobStatus) and wait for it: its results
        and whether an earlier attempt to queue it may have been applied. A retry queues the
        job again: every job we queue upserts or deletes by identity, so twice is harmless."""
        from zenpy.lib.api_objects import JobStatus

        job, ambiguous = self.call(fn, *args, expect=JobStatus)
        self.jobs.append(str(job.id))
        deadline = time.monotonic() + self.spec.job_timeout_seconds
        while str(job.status) not in FINISHED:
            if time.monotonic() > deadline:
                raise Unfinished(f"Zendesk job {job.id} still {job.status} after {self.spec.job_timeout_seconds:g}s")
            self._sleep(self.spec.job_poll_seconds)
            try:
                job, _ = self.call(self.client.job_status, id=job.id, expect=JobStatus)
            except DestinationError as e:
                if not e.retryable:
                    raise
                raise Unfinished(f"Zendesk job {job.id}: its status could not be read: {e}") from None
        if job.status != "completed":
            raise Unfinished(redact(f"Zendesk job {job.id} {job.status}: {job.message or ''}"))
        results = job.results if isinstance(job.results, list) else []
        return [r if isinstance(r, dict) else getattr(r, "to_dict", lambda: {})() for r in results], ambiguous

    def fields(self, kind: str) -> dict[str, str]:
        """key -> type of the account's custom user or organization fields (`kind`: user_fields, organization_fields)."""
        result, _ = self.call(lambda: list(getattr(self.client, kind)()))
        return {str(f.key): str(f.type) for f in result if getattr(f, "active", True) is not False}

    def find_user_id(self, match: str, value: str) -> int | None:
        """A user's id by email or external_id (None: no such user)."""
        query = {"external_id": value} if match == "external_id" else {"query": f'email:"{value}"'}
        found, _ = self.call(lambda: list(self.client.users.search(**query)))
        return int(found[0].id) if found else None


def _failure(response: Any) -> Failure:
    status = int(response.status_code)
    text = reason(response)
    if status in (401, 403):
        auth = DestinationError(
            f"Zendesk refused the credentials ({status} {text}); check subdomain, email and token (or oauth_token)", retryable=False
        )
        return Failure(str(auth), status=status, fatal=lambda _: auth)
    if status < 500 and status != 408:
        return Failure(f"HTTP {status}: {text}", status=status, fatal=lambda applied: Refused(status, text, applied))
    wait = parse_retry_after(response.headers.get("Retry-After")) if status == 503 else None  # maintenance: Zendesk says when
    return Failure(f"HTTP {status}: {text}", status=status, maybe_applied=status != 503, wait=wait)


def _point_at(client: Any, base_url: str) -> None:
    """Send every request of `client` to `base_url` (an emulator) instead of
    https://<subdomain>.zendesk.com: zenpy joins `{subdomain}.{domain}` into the host, so the
    host is split at its first dot (the emulator listens on 127.0.0.1)."""
    from zenpy.lib.api import BaseApi

    parts = urlsplit(base_url)
    head, dot, rest = parts.netloc.partition(".")
    if not (parts.scheme and dot and head and rest):
        raise ConfigError(f"base_url {base_url!r}: use scheme://host.with.dots[:port] (e.g. http://127.0.0.1:8093)")
    prefix = "/".join(p for p in (parts.path.strip("/"), "api/v2") if p)
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        obj.protocol, obj.subdomain, obj.domain, obj.api_prefix = parts.scheme, head, rest, prefix
        for value in vars(obj).values():
            if isinstance(value, BaseApi):
                visit(value)

    for value in vars(client).values():
        if isinstance(value, BaseApi):
            visit(value)
