"""Klaviyo's API through the official SDK (klaviyo-api): one client, our retries, typed failures.

- The SDK (`KlaviyoAPI`) wraps every call in its own retry loop (429, 503, 504, 524 and a
  "104"), and urllib3 under it retries connection errors of its own: both are switched off
  (`max_retries=0`, `Retry(total=0)`), so retries are the shared loop's (`retrying.Retrying`):
  counted, waiting Retry-After on a 429, and aware that a retried call may have been applied.
- Answers are read as plain dicts (`USE_DICTIONARY_FOR_RESPONSE_DATA`): the SDK's pydantic
  models would refuse an answer with a field they do not know, which is not a failure of ours.
- Every call has a connect and a read timeout (the SDK has none by default).
- 401/403 stop the sync (terminal); another 4xx is `Refused` (the caller decides what it
  means); 429, 5xx and transport failures are retried; an attempt whose answer was lost, cut
  or a 5xx other than 503 may have been applied (Klaviyo upserts by identity: resending is
  harmless, so calls are retried, and the caller hears it through `after_ambiguous`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from activation.destinations.base import ConfigError, DestinationError
from activation.destinations.retrying import Attempts, Failure, RetryCounters, Retrying, RetryPolicy
from activation.project.secrets import MissingSecret, redact, resolve_env, scrub_personal_data

#: The longest Retry-After honoured (Klaviyo's steady windows are one minute).
RETRY_AFTER_CAP = 60.0


class Refused(Exception):
    """Klaviyo refused the call (a 4xx other than auth and 429); `after_ambiguous`: an earlier
    attempt of the same call may have been applied."""

    def __init__(self, status: int, message: str, *, after_ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.after_ambiguous = after_ambiguous


def errors_text(body: Any) -> str:
    """Klaviyo's JSON:API error document (`{"errors": [{code, title, detail, source}]}`) in one
    line, without emails or phone numbers."""
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        parts = [f"{e.get('code')}: {e.get('detail') or e.get('title')}" for e in data.get("errors") or [] if isinstance(e, dict)]
        text = "; ".join(parts) or str(data)
    except (ValueError, AttributeError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return scrub_personal_data(" ".join(text.split()))[:500]


def cursor(page: dict[str, Any]) -> str | None:
    """The `page[cursor]` of a JSON:API page's `links.next`, or None on the last page."""
    link = (page.get("links") or {}).get("next")
    if not link:
        return None
    found = parse_qs(urlsplit(str(link)).query).get("page[cursor]")
    return found[0] if found else None


def _maybe_sent(e: BaseException) -> bool:
    """Whether a transport failure may have come after the request reached Klaviyo."""
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

    reason = e.reason if isinstance(e, MaxRetryError) else e
    return not isinstance(reason, (ConnectTimeoutError, NewConnectionError, ConnectionRefusedError))


def _still_failing(what: str, attempts: Attempts, failure: Failure) -> BaseException:
    landed = " (an attempt may have been applied)" if attempts.maybe_applied else ""
    return DestinationError(f"Klaviyo still failing after {attempts.retries} retries: {failure.problem}{landed}")


class KlaviyoApi(RetryCounters):
    """The SDK client of one destination and its retry loop (one push at a time)."""

    def __init__(self, name: str, spec: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.spec = name, spec
        self.retrying = Retrying(
            RetryPolicy(max_retries=spec.max_retries, base_delay=0.5, max_delay=30.0),
            sleep=sleep,
            max_wait=RETRY_AFTER_CAP,
            exhausted=_still_failing,
        )
        self._client: Any = None
        self._apis: dict[str, Any] = {}

    def api(self, name: str) -> Any:
        """The SDK's API group `name` (Profiles, Lists, Data_Privacy, Accounts), built once."""
        if name not in self._apis:
            self._apis[name] = getattr(self.client, name)
        return self._apis[name]

    @property
    def client(self) -> Any:
        if self._client is None:
            from klaviyo_api import KlaviyoAPI
            from openapi_client import rest
            from openapi_client.api_arg_options import USE_DICTIONARY_FOR_RESPONSE_DATA
            from urllib3.util.retry import Retry

            try:
                key = resolve_env(self.spec.api_key)
                host = resolve_env(self.spec.base_url).rstrip("/") if self.spec.base_url else ""
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            client = KlaviyoAPI(key, max_retries=0, test_host=host, options={USE_DICTIONARY_FOR_RESPONSE_DATA: True})
            client.configuration.retries = Retry(total=0, redirect=False, raise_on_status=False)
            client.api_client.rest_client = rest.RESTClientObject(client.configuration)  # with urllib3's retries off
            self._client = client
        return self._client

    def call(self, group: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """The answer (a dict, or None for a 204) of one SDK call, after retries.

        Raises DestinationError (auth; retries exhausted) or Refused (another 4xx)."""
        return self.call_with_outcome(group, method, *args, **kwargs)[0]

    def call_with_outcome(self, group: str, method: str, *args: Any, **kwargs: Any) -> tuple[Any, bool]:
        """Like `call`, with whether an earlier attempt may have been applied."""
        fn = getattr(self.api(group), method)
        timeout = (min(10.0, self.spec.timeout_seconds), self.spec.timeout_seconds)

        def attempt() -> Any:
            answer = fn(*args, _request_timeout=timeout, **kwargs)
            if answer is not None and not isinstance(answer, dict):  # a 2xx whose body is not JSON
                return Failure(f"Klaviyo's answer to {method} could not be read", maybe_applied=True)
            return answer

        return self.retrying.call(f"Klaviyo {method}", attempt, self._failure)

    def _failure(self, e: Exception) -> Failure | None:
        from openapi_client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        if isinstance(e, ApiException) and e.status:
            status, body, headers = int(e.status), e.body or "", e.headers or {}
        elif isinstance(e, (TransportError, ConnectionError, TimeoutError, ApiException)):
            text = redact(f"{type(e).__name__}: {e}")
            return Failure(text, maybe_applied=_maybe_sent(e))
        else:
            return None  # a bug: raised as it is
        text = errors_text(body)
        if status in (401, 403):
            auth = DestinationError(
                redact(f"Klaviyo answered {status} ({text}): check api_key (a private key, pk_…) and its scopes"), retryable=False
            )
            return Failure(str(auth), status=status, fatal=lambda _: auth)
        if status not in (408, 429) and status < 500:
            return Failure(redact(text), status=status, fatal=lambda applied: Refused(status, redact(text), after_ambiguous=applied))
        wait = None
        if status in (429, 503) and headers.get("Retry-After"):
            try:
                wait = float(headers["Retry-After"])
            except ValueError:
                wait = None
        return Failure(
            redact(f"HTTP {status}: {text}"),
            status=status,
            throttled=status == 429,
            wait=wait,
            maybe_applied=status >= 500 and status != 503,
        )

    def pages(self, group: str, method: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a cursor-paginated list."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self.call(group, method, *args, **({"page_cursor": after} if after else {}), **kwargs) or {}
            items += page.get("data") or []
            after = cursor(page)
            if not after:
                return items

    def close(self) -> None:
        self._client = None
        self._apis.clear()
