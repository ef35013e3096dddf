"""The HubSpot SDK as the destination uses it: one client, a rate limiter, retries, typed failures.

- The SDK builds a new ApiClient (with its own urllib3 pool, so a new connection) on every
  `client.crm...` access; `api()` builds each API object once, so connections are kept alive.
- Request bodies the destination builds are plain JSON already; `JsonBody` marks them so the
  SDK's ApiClient does not walk them again (`sanitize_for_serialization` is the identity on
  plain JSON, at ~3 µs a row).
- A client-side limiter keeps under the app's request quota, so 429s stay rare; when one
  comes, its Retry-After / rate-limit headers are honoured; 5xx and dropped connections are
  retried with jittered backoff.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from activation.destinations.base import ConfigError, DestinationError
from activation.project.secrets import MissingSecret, redact, resolve_env


class BatchRefused(Exception):
    """HubSpot refused the call (a 4xx other than auth and 429): nothing in it was applied."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class JsonBody(dict):  # type: ignore[type-arg]
    """A request body that is plain JSON (dicts, lists, strings) and needs no SDK sanitising."""


class RateLimiter:
    """Spaces calls at most `rate` per second across threads (no bursts over the quota)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self.next_at = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:  # reserve the next slot, then sleep outside the lock
            now = self.clock()
            slot = max(now, self.next_at)
            self.next_at = slot + self.interval
        if slot > now:
            self.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self.next_at = max(self.next_at, self.clock() + seconds)


_APIS: dict[str, Callable[[Any], Any]] = {
    "batch": lambda crm: crm.objects.batch_api,
    "properties": lambda crm: crm.properties.core_api,
    "lists": lambda crm: crm.lists.lists_api,
    "memberships": lambda crm: crm.lists.memberships_api,
}


class HubSpotTransport:
    """The SDK client of one destination, its API objects, limiter and call counters."""

    def __init__(self, name: str, spec: Any, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.spec = name, spec
        self.limiter = RateLimiter(spec.requests_per_second, sleep=sleep)
        self.requests = self.throttled = self.retries = 0  # approximate under concurrency
        self._client: Any = None
        self._apis: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            from hubspot import HubSpot

            try:
                token = resolve_env(self.spec.token)
                host = resolve_env(self.spec.base_url).rstrip("/")
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            # A pool as large as the calls in flight, or urllib3 discards connections.
            self._client = HubSpot(access_token=token, host=host, connection_pool_maxsize=max(self.spec.concurrency, 4))
        return self._client

    def api(self, name: str) -> Any:
        """The SDK's API object `name` ("batch", "properties", "lists", "memberships"), built once."""
        api = self._apis.get(name)
        if api is None:
            with self._lock:
                if name not in self._apis:
                    built = _APIS[name](self.client.crm)
                    sanitize = built.api_client.sanitize_for_serialization
                    built.api_client.sanitize_for_serialization = (
                        lambda obj, _plain=sanitize: obj if type(obj) is JsonBody else _plain(obj))
                    self._apis[name] = built
                api = self._apis[name]
        return api

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """(status, parsed JSON body) of one SDK call, after the limiter and retries.

        Raises DestinationError (auth, or retries exhausted) or BatchRefused (another 4xx).
        """
        from urllib3.exceptions import HTTPError as TransportError

        attempt = 0
        while True:
            self.limiter.wait()
            self.requests += 1
            try:
                response = fn(*args, _preload_content=False, **kwargs)
                data = response.data
                return response.status, json.loads(data) if data else None
            except Exception as e:  # the SDK raises a per-module ApiException class
                status = getattr(e, "status", None)
                if status is None and not isinstance(e, (TransportError, ConnectionError, TimeoutError)):
                    raise
                body = getattr(e, "body", "") or ""
                headers = getattr(e, "headers", None) or {}
                retryable = status is None or status == 429 or status >= 500
                if status in (401, 403):
                    raise DestinationError(f"HubSpot answered {status}: {message(body)} (check the token and its scopes)", retryable=False) from None
                if not retryable:
                    raise BatchRefused(status or 0, message(body)) from None
                if status == 429:
                    self.throttled += 1
                attempt += 1
                if attempt > self.spec.max_retries:
                    what = f"HTTP {status}: {message(body)}" if status else f"{type(e).__name__}: {e}"
                    raise DestinationError(redact(f"HubSpot still failing after {attempt - 1} retries: {what}")) from None
                self.retries += 1
                self.limiter.pause(backoff(headers, attempt, status))

    def close(self) -> None:
        self._client = None
        self._apis.clear()


def message(body: Any) -> str:
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        return str(data.get("message") or data)[:500]
    except (ValueError, AttributeError):
        return str(body)[:500]


def backoff(headers: Any, attempt: int, status: int | None) -> float:
    """How long to back off: Retry-After, else HubSpot's interval header, else jittered backoff."""
    get = headers.get if hasattr(headers, "get") else (lambda _k: None)
    retry_after = get("Retry-After")
    if retry_after:
        try:
            return min(float(retry_after), 60.0)
        except ValueError:
            pass
    interval, most = get("X-HubSpot-RateLimit-Interval-Milliseconds"), get("X-HubSpot-RateLimit-Max")
    if status == 429 and interval and get("X-HubSpot-RateLimit-Remaining") == "0":
        # A rolling window: a slot frees up every interval/max on average, so wait for one
        # (more on each repeat), not for the whole window.
        whole = min(int(interval) / 1000, 10.0)
        return min(whole / int(most) * attempt, whole) if most and most.isdigit() and int(most) > 0 else whole
    return min(0.5 * 2 ** (attempt - 1), 30.0) * (0.5 + random.random() / 2)
