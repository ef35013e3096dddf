"""The Mailchimp Marketing API through the official SDK (mailchimp-marketing): one client,
bounded concurrency, retries and typed failures, and the look-ups a sync needs.

The SDK calls `requests` directly and raises `ApiClientError(text, status_code)`: `text` is
the problem+json document as a string (Mailchimp's errors are `application/problem+json`,
which the SDK does not parse), and `status_code` is None for a transport failure (refused,
dropped, timed out, truncated). A non-2xx answer with an empty body is *returned* by the SDK
as a `requests.Response`; it is turned into a failure here, never taken for success.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activation.destinations.base import ConfigError, DestinationError
from activation.destinations.retrying import Attempts, Failure, RetryCounters, Retrying, RetryPolicy
from activation.project.secrets import MissingSecret, redact, resolve_env

PAGE = 1000  # Mailchimp's largest `count`


@dataclass
class Refused(Exception):
    """A 4xx other than auth and throttling: the request itself was refused."""

    status: int
    title: str
    detail: str
    errors: list[dict[str, Any]]
    # An earlier attempt of this call may have been applied (its answer was lost or a 5xx):
    # the refusal may be Mailchimp answering the retry of something it already did.
    after_ambiguous: bool = False

    def __str__(self) -> str:
        extra = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in self.errors if isinstance(e, dict))
        text = f"{self.title}: {self.detail}" if self.title and self.title not in self.detail else self.detail
        return redact(f"{text} ({extra})" if extra else text)


def problem(text: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """(title, detail, errors) of a problem+json document, however the SDK handed it over."""
    doc = text
    if isinstance(text, (str, bytes)):
        try:
            doc = json.loads(text)
        except ValueError:
            return "", " ".join(str(text if isinstance(text, str) else text.decode(errors="replace")).split())[:300], []
    if not isinstance(doc, dict):
        return "", str(doc)[:300], []
    raw = doc.get("errors")
    errors: list[dict[str, Any]] = raw if isinstance(raw, list) else []  # (items checked where read)
    return str(doc.get("title") or ""), str(doc.get("detail") or doc.get("title") or doc)[:500], errors


def data_center(api_key: str, server: str | None) -> str:
    if server:
        return server
    head, sep, dc = api_key.rpartition("-")
    if not sep or not head or not dc:
        raise ConfigError("cannot tell the Mailchimp data center: the API key should end in -<dc> (e.g. -us21); or set `server:`")
    return dc


class Slots:
    """At most `limit` calls in flight. Mailchimp's 10 simultaneous connections are per
    account, shared with every other app using it: each 429 lowers our limit by one (down to
    1), and a run of successes earns a slot back, up to the configured concurrency."""

    def __init__(self, limit: int, *, regain_after: int = 50) -> None:
        self.ceiling = self.limit = self.lowest = limit
        self.regain_after = regain_after
        self._in_use = self._streak = 0
        self._cond = threading.Condition()

    def __enter__(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._in_use < self.limit)
            self._in_use += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify_all()

    def throttled(self) -> None:
        with self._cond:
            self.limit = max(1, self.limit - 1)
            self.lowest = min(self.lowest, self.limit)
            self._streak = 0

    def succeeded(self) -> None:
        with self._cond:
            self._streak += 1
            if self._streak >= self.regain_after and self.limit < self.ceiling:
                self.limit += 1
                self._streak = 0
                self._cond.notify_all()


def _failure(status: int | None, text: Any) -> Failure:
    """What a failed call means: `status` None is a transport failure (refused, dropped, timed
    out, cut), `text` the problem+json document, or the exception, as the SDK hands it over."""
    title, detail, errors = problem(text) if status is not None else ("", f"{type(text).__name__}: {text}", [])
    if status in (401, 403):
        auth = DestinationError(
            redact(f"Mailchimp refused the API key ({status} {title}: {detail}); check api_key and server (the data center)"),
            retryable=False,
        )
        return Failure(str(auth), status=status, fatal=lambda _: auth)
    if status is not None and status not in (408, 429) and status < 500:
        return Failure(redact(detail), status=status, fatal=lambda applied: Refused(status, title, detail, errors, after_ambiguous=applied))
    # No status: the connection failed, maybe after the request was sent (the SDK does not say
    # whether it was ever made, so it counts as maybe applied); 503 and 429 say it was not served.
    return Failure(
        redact(f"HTTP {status} {title}: {detail}" if status else detail),
        status=status,
        maybe_applied=status is None or (status >= 500 and status != 503),
        throttled=status == 429,
    )


def _still_failing(what: str, attempts: Attempts, failure: Failure) -> BaseException:
    # Unlike HttpClient and HubSpot it says nothing of an attempt that may have been applied
    # (no Unanswered-like error): kept as Mailchimp's loop had it before the loop was shared.
    return DestinationError(f"Mailchimp still failing after {attempts.retries} retries: {failure.problem}")


class MailchimpApi(RetryCounters):
    """Thread-safe: calls from a pool share one set of connection `Slots`."""

    def __init__(self, name: str, spec: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name, self.spec = name, spec
        self._client: Any = None
        self.slots = Slots(spec.concurrency)
        self.retry = RetryPolicy(max_retries=spec.max_retries, max_delay=30.0)
        # No Retry-After is honoured (ApiClientError carries no headers); a 429 costs a slot.
        self.retrying = Retrying(self.retry, sleep=sleep, on_throttle=lambda _wait: self.slots.throttled(), exhausted=_still_failing)

    @property
    def lists(self) -> Any:
        """The SDK's ListsApi (the client is built on first use: no key, no request)."""
        if self._client is None:
            from mailchimp_marketing import Client

            try:
                key = resolve_env(self.spec.api_key)
                base = resolve_env(self.spec.base_url) if self.spec.base_url else None
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            dc = data_center(key, resolve_env(self.spec.server) if self.spec.server else None)
            client = Client()
            client.set_config({"api_key": key, "server": dc, "timeout": self.spec.timeout_seconds})
            if base:
                client.api_client.host = base.rstrip("/")
                client.api_client.server = ""  # the SDK replaces the word "server" anywhere in a URL; not in ours
            self._client = client
        return self._client.lists

    @property
    def ping(self) -> Any:
        self.lists  # noqa: B018 - builds the client
        return self._client.ping

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` with a connection slot, retrying 429, 5xx and transport failures.

        Raises DestinationError (auth, or still failing after retries) or Refused (other 4xx).
        """
        return self.call_with_outcome(fn, *args, **kwargs)[0]

    def call_with_outcome(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, bool]:
        """Like `call`, with whether an earlier attempt may have been applied (a lost or cut
        answer, a 500/502/504): then per-member errors in the answer may be Mailchimp's view
        of its own earlier write, not a refusal of the row."""
        from mailchimp_marketing.api_client import ApiClientError
        from requests import Response

        def attempt() -> Any:
            with self.slots:  # held for the call only: released before any wait
                try:
                    result = fn(*args, **kwargs)
                except ApiClientError as e:
                    status, text = e.status_code, e.text
                else:
                    if not isinstance(result, Response) or result.ok:
                        self.slots.succeeded()
                        return result if not isinstance(result, Response) else None  # a Response: 204 No Content
                    status, text = result.status_code, result.text
            return _failure(status, text)

        return self.retrying.call("Mailchimp", attempt)

    # -- look-ups ---------------------------------------------------------------------------

    def _pages(self, fn: Callable[..., Any], key: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.call(fn, *args, count=PAGE, offset=len(items), **kwargs) or {}
            batch = page.get(key) or []
            items += batch
            if not batch or len(items) >= int(page.get("total_items", 0)):
                return items

    def find_list(self) -> tuple[str | None, list[dict[str, Any]]]:
        """The configured audience's list id (None if it does not exist), and every audience."""
        if self.spec.list_id:
            list_id = resolve_env(self.spec.list_id)
            try:
                self.call(self.lists.get_list, list_id, fields=["id", "name"])
                return list_id, []
            except Refused as e:
                if e.status != 404:
                    raise
            return None, self._pages(self.lists.get_all_lists, "lists", fields=["lists.id", "lists.name", "total_items"])
        audiences = self._pages(self.lists.get_all_lists, "lists", fields=["lists.id", "lists.name", "total_items"])
        found = [a["id"] for a in audiences if a.get("name") == self.spec.list_name]
        return (found[0] if found else None), audiences

    def merge_fields(self, list_id: str) -> dict[str, dict[str, Any]]:
        """tag -> merge field (type, required, options)."""
        return {f["tag"]: f for f in self._pages(self.lists.get_list_merge_fields, "merge_fields", list_id)}

    def tag_segment(self, list_id: str, tag: str, *, create: bool) -> int | None:
        """The static segment id of a tag (a tag is a static segment), created if asked."""
        for seg in self._pages(self.lists.list_segments, "segments", list_id, type="static"):
            if seg.get("name") == tag:
                return int(seg["id"])
        if not create:
            return None
        return int(self.call(self.lists.create_segment, list_id, {"name": tag, "static_segment": []})["id"])
