"""The HubSpot SDK as the destination uses it: one client, a rate limiter, retries, typed failures.

- The SDK builds a new ApiClient (with its own urllib3 pool, so a new connection) on every
  `client.crm...` access; `api()` builds each API object once, so connections are kept alive.
- Request bodies the destination builds are plain JSON already; `JsonBody` marks them so the
  SDK's ApiClient does not walk them again (`sanitize_for_serialization` is the identity on
  plain JSON, at ~3 µs a row).
- Every call has a connect and a read timeout (the SDK has none by default: a connection
  accepted and never answered would hang the run).
- HubSpot limits each app to a number of requests in a rolling ten-second window (100 or 190
  per 10 s), told in the X-HubSpot-RateLimit-Max / -Interval-Milliseconds headers of every
  answer. A client-side limiter spaces calls under the configured rate and, once HubSpot has
  said its limit, under that; a 429 pauses every call until the window has cleared (Retry-After
  if sent, else the whole interval): a shorter wait only earns more 429s. A DAILY 429 stops the
  run (it clears at midnight). 5xx and dropped connections are retried with jittered backoff
  (by the shared loop, `retrying.Retrying`; `_failure` says what each failure means).
- An attempt whose answer was lost (read timeout, dropped or cut connection) or was a 500, 502
  or 504 may have been applied. If retries run out after one, `Unanswered` is raised; a
  refusal after one is marked `after_ambiguous`: the rows are possibly delivered, not refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from activation.destinations.base import DAILY_RETRY_SECONDS, ConfigError, DestinationError, RequestBudget
from activation.destinations.retrying import Attempts, Failure, RetryCounters, Retrying, RetryPolicy
from activation.project.secrets import MissingSecret, redact, resolve_env, scrub_personal_data


class BatchRefused(Exception):
    """HubSpot refused the call (a 4xx other than auth and 429): nothing in it was applied,
    unless `after_ambiguous`: an earlier attempt of the same call may have been, and the
    refusal may be HubSpot answering the retry of something it already did."""

    def __init__(self, status: int, message: str, *, after_ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.after_ambiguous = after_ambiguous


class Unanswered(DestinationError):
    """Retries ran out after an attempt that may have been applied (no answer, or a 5xx that
    does not say it was not served): what the call asked for is possibly done."""


class JsonBody(dict[str, Any]):
    """A request body that is plain JSON (dicts, lists, strings) and needs no SDK sanitising."""


class RateLimiter:
    """Spaces calls at most `rate` per second across threads (no bursts over the quota), and
    with a `budget`, within the slots of the account that other syncs and processes share."""

    budget: RequestBudget | None = None

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
        if self.budget is not None and (shared := self.budget.take(self.interval)) > 0:
            self.sleep(shared)

    def pause(self, seconds: float, *, shared: bool = False) -> None:
        """No call from this process for `seconds`; `shared` (a 429: the account's window is
        full): from any process sharing the account's budget either."""
        with self._lock:
            self.next_at = max(self.next_at, self.clock() + seconds)
        if shared and self.budget is not None:
            self.budget.pause(seconds)

    def slow_to(self, rate: float) -> None:
        """Never more than `rate` calls per second from now on (a lower limit learnt from the API)."""
        with self._lock:
            self.interval = max(self.interval, 1.0 / rate)


_APIS: dict[str, Callable[[Any], Any]] = {
    "batch": lambda crm: crm.objects.batch_api,
    "properties": lambda crm: crm.properties.core_api,
    "lists": lambda crm: crm.lists.lists_api,
    "memberships": lambda crm: crm.lists.memberships_api,
}


class HubSpotTransport(RetryCounters):
    """The SDK client of one destination, its API objects, limiter and call counters."""

    def __init__(self, name: str, spec: Any, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.spec = name, spec
        self.limiter = RateLimiter(spec.requests_per_second, sleep=sleep)
        # Waits go through the limiter (pause, then the next call's wait sleeps), so a retry
        # also keeps to the spacing; 0.5 s doubling up to 30 s between 5xx / dropped calls.
        self.retrying = Retrying(
            RetryPolicy(max_retries=spec.max_retries, base_delay=0.5, max_delay=30.0),
            sleep=self.limiter.pause,
            max_wait=RETRY_AFTER_CAP,
            on_throttle=self._pause_all,
            exhausted=_still_failing,
        )
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
            from urllib3.util.retry import Retry

            # A pool as large as the calls in flight, or urllib3 discards connections. No retry
            # of urllib3's own (by default 3 for GET, PUT, DELETE): retries are ours, counted,
            # paced by the limiter, and aware that a retried call may have been applied.
            self._client = HubSpot(
                access_token=token,
                host=host,
                connection_pool_maxsize=max(self.spec.concurrency, 4),
                retry=Retry(total=0, redirect=False, raise_on_status=False),
            )
        return self._client

    def api(self, name: str) -> Any:
        """The SDK's API object `name` ("batch", "properties", "lists", "memberships"), built once."""
        api = self._apis.get(name)
        if api is None:
            with self._lock:
                if name not in self._apis:
                    built = _APIS[name](self.client.crm)
                    sanitize = built.api_client.sanitize_for_serialization
                    built.api_client.sanitize_for_serialization = lambda obj, _plain=sanitize: obj if type(obj) is JsonBody else _plain(obj)
                    self._apis[name] = built
                api = self._apis[name]
        return api

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """(status, parsed JSON body) of one SDK call, after the limiter and retries.

        Raises DestinationError (auth, or retries exhausted: `Unanswered` if an attempt may
        have been applied) or BatchRefused (another 4xx).
        """
        status, body, _ = self.call_with_outcome(fn, *args, **kwargs)
        return status, body

    def call_with_outcome(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any, bool]:
        """Like `call`, with whether an earlier attempt may have been applied: then errors in
        the answer may be HubSpot's view of its own earlier write, not a refusal of the input."""
        timeout = (self.spec.connect_timeout_seconds, self.spec.read_timeout_seconds)

        def attempt() -> tuple[int, Any]:
            self.limiter.wait()
            response = fn(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
            self._learn_limit(response.headers)
            data = response.data  # read inside the attempt: a cut answer is a transport failure
            return response.status, json.loads(data) if data else None

        (status, body), ambiguous = self.retrying.call("HubSpot", attempt, self._failure)
        return status, body, ambiguous

    def _failure(self, e: Exception) -> Failure | None:
        """What a failed SDK call means (the SDK raises a per-module ApiException class, urllib3
        its own errors); None for anything else (a bug, a body that is not JSON): raised as is."""
        from urllib3.exceptions import HTTPError as TransportError

        status = getattr(e, "status", None)
        if status is None and not isinstance(e, (TransportError, ConnectionError, TimeoutError)):
            return None
        body = getattr(e, "body", "") or ""
        headers = getattr(e, "headers", None) or {}
        self._learn_limit(headers)
        if status in (401, 403):
            auth = DestinationError(f"HubSpot answered {status}: {message(body)[:500]} (check the token and its scopes)", retryable=False)
            return Failure(str(auth), status=status, fatal=lambda _: auth)
        if status is not None and status != 429 and status < 500:
            return Failure(
                redact(message(body)),
                status=status,
                fatal=lambda applied: BatchRefused(status or 0, message(body), after_ambiguous=applied),
            )
        if status == 429 and policy(body) == "DAILY":
            # Not terminal: it passes by itself. The reset is midnight in the account's time zone,
            # which the API does not say: try again hourly, not every slot (a try costs one
            # call of the next day's quota if it is too early).
            daily = DestinationError(
                f"HubSpot's daily request limit is reached: {message(body)[:500]} (it resets at "
                "midnight in the account's time zone; the daemon tries again hourly)",
                retry_after=DAILY_RETRY_SECONDS,
            )
            return Failure(str(daily), status=status, throttled=True, fatal=lambda _: daily)
        what = f"HTTP {status}: {message(body)[:500]}" if status else f"{type(e).__name__}: {e}"
        # no status: the request may have been sent and applied, unless the connection was
        # never made; 503 and 429 say it was not served
        maybe_applied = (status is None and _maybe_sent(e)) or (status is not None and status >= 500 and status != 503)
        return Failure(redact(what), status=status, maybe_applied=maybe_applied, throttled=status == 429, wait=server_wait(headers, status))

    def _pause_all(self, wait: float | None) -> None:
        """A 429: every call waits for the window to clear, not only the one that got it."""
        self.limiter.pause(WINDOW_SECONDS if wait is None else wait, shared=True)

    def _learn_limit(self, headers: Any) -> None:
        """Keep under the limit HubSpot says it applies (requests per rolling interval)."""
        get = headers.get if hasattr(headers, "get") else (lambda _k: None)
        daily, left = get("X-HubSpot-RateLimit-Daily"), get("X-HubSpot-RateLimit-Daily-Remaining")
        if self.limiter.budget is not None and daily and left and str(daily).isdigit() and str(left).isdigit():
            self.limiter.budget.observe_daily(int(left), int(daily))  # for plan's forecast
        most, interval = get("X-HubSpot-RateLimit-Max"), get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if not (most and interval and str(most).isdigit() and str(interval).isdigit()) or int(most) <= 0 or int(interval) <= 0:
            return
        # 90%: arrival times at HubSpot bunch up a little against the spacing of the sends
        self.limiter.slow_to(0.9 * int(most) / (int(interval) / 1000))

    def close(self) -> None:
        if self.limiter.budget is not None:
            self.limiter.budget.flush()
        self._client = None
        self._apis.clear()


def message(body: Any) -> str:
    """HubSpot's message in an error body, without email addresses or phone numbers (it may be
    kept as a run's error); the destination takes a rejected row's own values out as well."""
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        text = str(data.get("message") or data)
    except (ValueError, AttributeError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return scrub_personal_data(text)[:2000]  # whole enough for the destination to take a row's values out


def policy(body: Any) -> str:
    """The policyName of a 429's body (TEN_SECONDLY_ROLLING, DAILY, ...), or ""."""
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        return str(data.get("policyName") or "")
    except (ValueError, AttributeError):
        return ""


def _maybe_sent(e: BaseException) -> bool:
    """Whether a transport failure may have come after the request reached HubSpot (anything
    but a connection that was never made)."""
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

    reason = e.reason if isinstance(e, MaxRetryError) else e
    return not isinstance(reason, (ConnectTimeoutError, NewConnectionError, ConnectionRefusedError))


#: HubSpot's rolling window: a 429 that says nothing else is waited out this long.
WINDOW_SECONDS = 10.0
#: The longest Retry-After honoured.
RETRY_AFTER_CAP = 60.0


def server_wait(headers: Any, status: int | None) -> float | None:
    """How long HubSpot asks to wait: Retry-After, else (429) the whole rate-limit interval;
    None: the loop's jittered backoff."""
    get = headers.get if hasattr(headers, "get") else (lambda _k: None)
    retry_after = get("Retry-After")
    if retry_after:
        try:
            return float(retry_after)  # capped at RETRY_AFTER_CAP by the loop
        except ValueError:
            pass
    if status == 429:
        # The window is rolling: after waiting it out every request counted in it has left,
        # so the next one is served. Waiting less (a slot's share) only earns more 429s.
        interval = get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if interval and str(interval).isdigit() and int(interval) > 0:
            return min(int(interval) / 1000, WINDOW_SECONDS)
        return WINDOW_SECONDS
    return None


def _still_failing(what: str, attempts: Attempts, failure: Failure) -> BaseException:
    text = f"HubSpot still failing after {attempts.retries} retries: {failure.problem}"
    if attempts.maybe_applied:
        return Unanswered(text + " (an attempt may have been applied)")
    return DestinationError(text)
