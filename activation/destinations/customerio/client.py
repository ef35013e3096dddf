"""Customer.io's Track API: `POST /api/v2/batch` through the official SDK (customerio 3.x,
`CustomerIO.batch`), and the calls the SDK lacks (manual segments, the account's region)
through the shared HTTP client.

The SDK builds the URL (`https://{host}[:{port}]/api/v2/batch`), Basic auth (site id : API
key), the JSON body and its `requests` session; it raises `CustomerIOException` on any answer
other than 2xx, with a message quoting the request body (personal data) and no status or
headers. So the session it builds gets one more adapter of ours: without retries (the retry
loop is `retrying.Retrying`, shared with every destination), keeping each thread's last
answer (its status, `Retry-After` and body are read there, never in the SDK's message) and,
when `url` is plain http (a local emulator), sending there what the SDK addresses with https.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from activation.destinations.base import ConfigError, DestinationError
from activation.destinations.http import HttpClient, parse_retry_after
from activation.destinations.pacing import Pacer
from activation.destinations.retrying import Failure, Retrying, RetryPolicy
from activation.project.secrets import MissingSecret, redact, resolve_env

HOSTS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # the decoded JSON; ValueError when it could not be read
    after_ambiguous: bool  # an earlier attempt of this call may have been applied


def _decode(content: bytes) -> Any:
    import json

    if not content.strip():
        return {}
    try:
        return json.loads(content)
    except ValueError:
        return ValueError


def error_text(body: Any, fallback: str = "") -> str:
    """Customer.io's reason in an error body (`{"meta": {"error": ...}}`, `{"errors": [...]}`)."""
    if isinstance(body, dict):
        meta = body.get("meta")
        if isinstance(meta, dict) and meta.get("error"):
            return str(meta["error"])[:300]
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e.get("message") or e) if isinstance(e, dict) else str(e) for e in errors[:3])[:300]
        for key in ("message", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return fallback


class TrackClient:
    """One workspace's Track API (thread-safe)."""

    def __init__(self, name: str, spec: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.spec = name, spec
        self.pacer = Pacer(spec.requests_per_second, sleep)
        self.retrying = Retrying(RetryPolicy(max_retries=spec.max_retries, max_delay=30.0), sleep=sleep)
        self._sleep = sleep
        self._sdk: Any = None
        self._http: HttpClient | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self.base = ""

    # -- set-up -----------------------------------------------------------------------------

    def _credentials(self) -> tuple[str, str, str]:
        try:
            site, key = resolve_env(self.spec.site_id), resolve_env(self.spec.api_key)
            base = resolve_env(self.spec.url) if self.spec.url else HOSTS[self.spec.region]
        except MissingSecret as e:
            raise ConfigError(f"destination {self.name!r}: {e}") from None
        redact.add(base64.b64encode(f"{site}:{key}".encode()).decode())
        return site, key, base.rstrip("/")

    @property
    def sdk(self) -> Any:
        """The SDK's track client (built on first use: no credentials, no request before)."""
        with self._lock:
            if self._sdk is None:
                self._sdk = self._build_sdk()
            return self._sdk

    def _build_sdk(self) -> Any:
        from customerio import CustomerIO, Regions
        from requests.adapters import HTTPAdapter

        site, key, base = self._credentials()
        self.base = base
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"destination {self.name!r}: url must be http(s)://host[:port], got {self.spec.url!r}")
        local, timeout = self._local, self.spec.timeout_seconds
        plain = parts.scheme == "http"

        class Adapter(HTTPAdapter):
            def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                local.response = None
                if plain and request.url and request.url.startswith("https://"):
                    p = urlsplit(request.url)
                    request = request.copy()
                    request.url = urlunsplit(("http", p.netloc, p.path, p.query, ""))
                    kwargs["proxies"] = {}
                kwargs["timeout"] = timeout
                response = super().send(request, **kwargs)
                response.content  # noqa: B018 - read here: a cut body must fail as no answer, not leave one half-read
                local.response = response
                return response

        class Client(CustomerIO):
            def _build_session(self) -> Any:
                session = super()._build_session()  # Basic auth, User-Agent, TCP keep-alive
                adapter = Adapter(max_retries=0)  # retries are ours: the SDK's would double them
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                if plain:
                    session.trust_env = False  # an emulator is not reached through a proxy
                return session

        port = parts.port or (80 if plain else 443)
        region = Regions.EU if self.spec.region == "eu" else Regions.US
        return Client(site, key, host=parts.hostname, port=port, region=region, retries=0, timeout=timeout)

    @property
    def http(self) -> HttpClient:
        """For the Track API calls the SDK lacks (segments, region)."""
        with self._lock:
            if self._http is None:
                site, key, base = self._credentials()
                self.base = base
                token = base64.b64encode(f"{site}:{key}".encode()).decode()
                self._http = HttpClient(
                    timeout=self.spec.timeout_seconds,
                    retry=RetryPolicy(max_retries=self.spec.max_retries, max_delay=30.0),
                    headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
                    sleep=self._sleep,
                )
            return self._http

    # -- calls ------------------------------------------------------------------------------

    def batch(self, operations: list[dict[str, Any]]) -> Reply:
        """`POST /api/v2/batch` through the SDK: 200 (all applied) or 207 (`errors` per
        `batch_index`), or another 4xx that names no operation (returned, not raised)."""
        from customerio import CustomerIOException

        sdk = self.sdk

        def attempt() -> Reply | Failure:
            self.pacer.wait()
            try:
                response = sdk.batch(operations)
            except CustomerIOException as e:
                response = getattr(self._local, "response", None)
                if response is None:  # no answer: refused, dropped, timed out, cut
                    cause = e.__cause__ or e
                    return Failure(
                        redact(f"POST /api/v2/batch: {type(cause).__name__}: {str(cause)[:200]}"),
                        maybe_applied=not _never_sent(cause),
                    )
            return self._classify(response, "POST /api/v2/batch")

        reply, ambiguous = self.retrying.call("Customer.io POST /api/v2/batch", attempt)
        return Reply(reply.status, reply.body, ambiguous)

    def _classify(self, response: Any, what: str) -> Reply | Failure:
        status = int(response.status_code)
        body = _decode(response.content)
        if status in (401, 403):
            error = auth_error(status, body, what)
            return Failure(str(error), status=status, fatal=lambda _: error)
        if status == 429 or status == 408 or status >= 500:
            reason = redact(f"{what}: HTTP {status} {error_text(body, response_message_text(response))}")
            wait = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
            return Failure(reason, status=status, throttled=status == 429, wait=wait, maybe_applied=status >= 500 and status != 503)
        return Reply(status, body, False)

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        """A Track API call the SDK does not make, through the shared HTTP client."""
        http = self.http
        self.pacer.wait()
        answer = http.send(method, f"{self.base}{path}", json=body, display_url=f"{self.base}{path.split('?')[0]}")
        response = answer.response
        data = _decode(response.content)
        if response.status_code in (401, 403):
            raise auth_error(response.status_code, data, f"{method} {path.split('?')[0]}")
        return Reply(response.status_code, data, answer.after_ambiguous)

    # -- counters ---------------------------------------------------------------------------

    def counters(self) -> tuple[int, int, int]:
        h = self._http
        r = self.retrying
        return (
            r.requests + (h.requests if h else 0),
            r.retries + (h.retries if h else 0),
            r.throttled + (h.throttled if h else 0),
        )

    def close(self) -> None:
        if self._sdk is not None:
            self._sdk.close()
            self._sdk = None
        if self._http is not None:
            self._http.close()
            self._http = None


def response_message_text(response: Any) -> str:
    text = " ".join((response.text or "").split())
    return text[:200] or str(getattr(response, "reason", "") or "(empty body)")


def auth_error(status: int, body: Any, what: str) -> DestinationError:
    reason = error_text(body, "Unauthorized") if body is not ValueError else "Unauthorized"
    return DestinationError(
        redact(
            f"Customer.io refused the Track API credentials: {what}: HTTP {status} {reason} "
            "(check site_id, api_key and region: a workspace's keys work only in its own data center)"
        ),
        retryable=False,
    )


def _never_sent(exc: BaseException) -> bool:
    """The failure proves the request never left (no connection was made)."""
    from requests.exceptions import ConnectTimeout
    from urllib3.exceptions import NewConnectionError

    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, (ConnectTimeout, NewConnectionError, ConnectionRefusedError)):
            return True
        args = getattr(seen, "args", ())
        if args and isinstance(args[0], BaseException):
            seen = args[0]
            continue
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else seen.__cause__ or seen.__context__
    return False


__all__ = ["HOSTS", "Reply", "TrackClient", "error_text"]
