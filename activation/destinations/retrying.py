"""The one retry loop behind every destination's calls, whatever HTTP stack makes them.

Destinations call vendors through the vendors' own SDKs, so three HTTP stacks remain (httpx
in `http.HttpClient`; urllib3 under the HubSpot SDK; requests under mailchimp_marketing and
simple_salesforce). What happens *between* attempts is the same for all of them and lives here:

* attempts are counted against `RetryPolicy.max_retries` (retries after the first attempt);
* the wait before a retry is the server's (Retry-After, a vendor's own hint) when it gave one,
  else the policy's jittered backoff; never more than `max_wait`;
* whether an attempt may have been applied (sent, then its answer lost, cut, or a 5xx other
  than 503) sticks across attempts: a refusal answering a retry may be the vendor's view of
  its own earlier write. A call that must not happen twice (`idempotent=False`) raises
  `AmbiguousOutcome` at such a failure instead of retrying, so the caller can look first;
* requests, retries and throttled answers are counted for metrics (thread-safe);
* once retries run out, one error says so (`failed_after`, or the client's own).

What a failure *means* is the stack's and the vendor's business: a classifier turns one
attempt's failure into a `Failure`, and a few hooks cover the rest (`on_throttle`: HubSpot
pauses every thread's limiter, Mailchimp gives up a connection slot; `sleep`: HubSpot waits
through its limiter; `exhausted`: each client's own "still failing" error). Errors that say
retrying cannot help (a refusal, bad credentials, a daily quota) are built by the classifier
and raised at once, with whether an earlier attempt may have been applied.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from activation.destinations.base import AmbiguousOutcome, DestinationError

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """How often and how patiently to retry a failed request."""

    model_config = ConfigDict(frozen=True)

    max_retries: int = Field(default=5, ge=0, description="Retries after the first attempt.")
    base_delay: float = Field(default=0.5, ge=0, description="Seconds before the first retry.")
    max_delay: float = Field(default=60.0, ge=0, description="Cap on any single wait.")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based).

        "Equal jitter": half of the exponential step is fixed so retries really back off,
        the other half is random so many clients do not hammer an API in lockstep.
        """
        step = min(self.max_delay, self.base_delay * 2 ** min(max(retry - 1, 0), 62))
        return step / 2 + (rng or random).random() * step / 2


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, as the stack's classifier reads it."""

    #: One line for logs and the final error, already redacted (no tokens, no personal data).
    problem: str
    status: int | None = None
    #: This attempt may have been applied: it was sent and its answer was lost, cut or a 5xx
    #: that does not say it was not served (a connect error, a 429 or a 503 say so).
    maybe_applied: bool = False
    #: The vendor said "slow down" (a 429, or its own way of saying it): counted for metrics.
    throttled: bool = False
    #: Seconds the server asked to wait (Retry-After, a vendor's hint); None: the policy's backoff.
    wait: float | None = None
    #: Set when retrying cannot help: the error to raise at once, given whether an *earlier*
    #: attempt may have been applied (a refusal then may be the vendor's view of that write).
    fatal: Callable[[bool], BaseException] | None = None

    @property
    def retryable(self) -> bool:
        return self.fatal is None


@dataclass(slots=True)
class Attempts:
    """What one call learnt about its attempts. Pass one to `Retrying.call` to read it after
    an error that the classifier let through unchanged (Salesforce's per-record refusals)."""

    made: int = 0
    maybe_applied: bool = False

    @property
    def retries(self) -> int:
        return max(self.made - 1, 0)


#: Builds the error raised when retries run out: (what, the call's attempts, the last failure).
Exhausted = Callable[[str, Attempts, Failure], BaseException]


def failed_after(what: str, attempts: Attempts, failure: Failure) -> BaseException:
    """The default "still failing" error: retryable, and saying when an attempt may have landed."""
    landed = " (an attempt may have been applied)" if attempts.maybe_applied else ""
    return DestinationError(f"{what} failed after {attempts.made} attempt(s): {failure.problem}{landed}")


def propagate(exc: Exception) -> Failure | None:
    """The classifier of a stack whose attempts turn every failure into a `Failure` themselves:
    an exception is a bug or an environment problem, and goes through unchanged."""
    return None


class Retrying:
    """The retry loop of one client, with its policy, hooks and counters; thread-safe.

    `sleep` waits before a retry (HubSpot: its limiter's pause, so every thread's next call
    waits). `max_wait` caps any wait (default: the policy's `max_delay`). `on_throttle` is
    called at each throttled failure, the last one included, with the server's wait (capped)
    or None. `exhausted` builds the error once retries run out. `log`: where each retry is
    logged as a warning; None logs nothing (clients that never did, so CLI output stays as it was).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_wait: float | None = None,
        on_throttle: Callable[[float | None], None] | None = None,
        exhausted: Exhausted = failed_after,
        log: logging.Logger | None = None,
    ) -> None:
        self.policy = policy
        self.max_wait = policy.max_delay if max_wait is None else max_wait
        self._sleep = sleep
        self._rng = rng  # None: the module's random (clients that never had a generator of their own)
        self._on_throttle = on_throttle
        self._exhausted = exhausted
        self._log = log
        self._lock = threading.Lock()
        self.requests = 0  # attempts made, retries included
        self.retries = 0
        self.throttled = 0

    def _count(self, attr: str) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + 1)

    def call(
        self,
        what: str,
        attempt: Callable[[], T | Failure],
        classify: Callable[[Exception], Failure | None] = propagate,
        *,
        idempotent: bool = True,
        attempts: Attempts | None = None,
    ) -> tuple[T, bool]:
        """`attempt()` until it succeeds: its result, and whether an earlier attempt may have
        been applied.

        `attempt` returns its result, or a `Failure` for an answer that is one (a 5xx the
        stack returns rather than raises); an exception it raises goes to `classify`, whose
        None lets it through unchanged. `what` names the call in logs and errors.
        """
        state = attempts if attempts is not None else Attempts()
        while True:
            state.made += 1
            self._count("requests")
            try:
                outcome = attempt()
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
            else:
                if not isinstance(outcome, Failure):
                    return outcome, state.maybe_applied
                failure = outcome
            self._after(what, failure, state, idempotent)

    def _after(self, what: str, failure: Failure, state: Attempts, idempotent: bool) -> None:
        """Raise what `failure` calls for, or wait before the next attempt."""
        if failure.throttled:  # before a fatal one too: HubSpot's daily 429 was throttled
            self._count("throttled")
        if failure.fatal is not None:
            raise failure.fatal(state.maybe_applied) from None
        if failure.maybe_applied:
            if not idempotent:
                raise AmbiguousOutcome(f"{what}: {failure.problem}") from None
            state.maybe_applied = True
        hinted = None if failure.wait is None else min(failure.wait, self.max_wait)
        if failure.throttled and self._on_throttle is not None:
            self._on_throttle(hinted)  # the last attempt's too: other threads must slow down as well
        if state.made > self.policy.max_retries:
            raise self._exhausted(what, state, failure) from None
        # backoff drawn only when needed: a seeded generator gives the same waits as before
        wait = hinted if hinted is not None else min(self.policy.backoff(state.made, self._rng), self.max_wait)
        self._count("retries")
        if self._log is not None:
            self._log.warning("%s: %s; retry %d/%d in %.1fs", what, failure.problem, state.made, self.policy.max_retries, wait)
        self._sleep(wait)


class RetryCounters:
    """A client's calls as its retry loop counted them, for reports and metrics."""

    retrying: Retrying

    @property
    def requests(self) -> int:
        return self.retrying.requests

    @property
    def retries(self) -> int:
        return self.retrying.retries

    @property
    def throttled(self) -> int:
        return self.retrying.throttled
