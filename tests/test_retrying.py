"""The shared retry loop itself (activation/destinations/retrying.py), with scripted attempts
and a sleep that records its waits: no clock, no network."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from activation.destinations.base import AmbiguousOutcome, DestinationError
from activation.destinations.retrying import Attempts, Failure, Retrying, RetryPolicy


class Refusal(Exception):
    def __init__(self, after_ambiguous: bool) -> None:
        super().__init__("refused")
        self.after_ambiguous = after_ambiguous


class Script:
    """An attempt that plays `steps` in order: a Failure is returned, an exception raised,
    anything else is the result."""

    def __init__(self, steps: Iterable[Any]) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self) -> Any:
        step = self.steps[self.calls]
        self.calls += 1
        if isinstance(step, BaseException):
            raise step
        return step


def loop(max_retries: int = 3, *, max_delay: float = 8.0, **kw: Any) -> tuple[Retrying, list[float]]:
    waits: list[float] = []
    policy = RetryPolicy(max_retries=max_retries, base_delay=1.0, max_delay=max_delay)
    return Retrying(policy, sleep=waits.append, rng=random.Random(7), **kw), waits


BUSY = Failure("HTTP 503: busy", status=503)
LOST = Failure("ReadTimeout", maybe_applied=True)


def test_success_at_once_waits_for_nothing() -> None:
    retrying, waits = loop()
    assert retrying.call("GET /x", Script(["ok"])) == ("ok", False)
    assert waits == [] and (retrying.requests, retrying.retries, retrying.throttled) == (1, 0, 0)


def test_max_retries_is_retries_after_the_first_attempt() -> None:
    retrying, waits = loop(max_retries=2)
    attempt = Script([BUSY] * 5)
    with pytest.raises(DestinationError, match=r"^GET /x failed after 3 attempt\(s\): HTTP 503: busy$") as caught:
        retrying.call("GET /x", attempt)
    assert caught.value.retryable and not isinstance(caught.value, AmbiguousOutcome)
    assert attempt.calls == 3 and len(waits) == 2
    assert (retrying.requests, retrying.retries) == (3, 2)


def test_no_retries_means_one_attempt() -> None:
    retrying, waits = loop(max_retries=0)
    attempt = Script([BUSY, "ok"])
    with pytest.raises(DestinationError, match="after 1 attempt"):
        retrying.call("GET /x", attempt)
    assert attempt.calls == 1 and waits == []


def test_backoff_is_the_policys_jitter_drawn_from_the_given_generator() -> None:
    retrying, waits = loop(max_retries=4)
    assert retrying.call("GET /x", Script([BUSY, BUSY, BUSY, BUSY, "ok"]))[0] == "ok"
    policy, rng = RetryPolicy(max_retries=4, base_delay=1.0, max_delay=8.0), random.Random(7)
    assert waits == [policy.backoff(n, rng) for n in (1, 2, 3, 4)]
    assert 0.5 <= waits[0] <= 1.0 and 4.0 <= waits[3] <= 8.0  # equal jitter: half fixed, doubling


def test_the_servers_wait_is_honoured_and_capped() -> None:
    retrying, waits = loop(max_delay=8.0)
    steps = [Failure("429", status=429, wait=2.5), Failure("429", status=429, wait=600.0), Failure("503", wait=0.0), "ok"]
    retrying.call("GET /x", Script(steps))
    assert waits == [2.5, 8.0, 0.0]


def test_max_wait_caps_the_servers_wait_apart_from_the_backoff() -> None:
    retrying, waits = loop(max_delay=2.0, max_wait=60.0)
    retrying.call("GET /x", Script([Failure("429", wait=45.0), Failure("429", wait=90.0), BUSY, "ok"]))
    assert waits[:2] == [45.0, 60.0] and waits[2] <= 2.0


def test_ambiguity_sticks_across_later_attempts() -> None:
    retrying, _ = loop()
    assert retrying.call("POST /x", Script([LOST, BUSY, "ok"])) == ("ok", True)
    assert retrying.call("POST /x", Script([BUSY, "ok"])) == ("ok", False), "per call, not per client"


def test_exhausted_after_an_ambiguous_attempt_says_so() -> None:
    retrying, _ = loop(max_retries=2)
    with pytest.raises(DestinationError, match=r"failed after 3 attempt\(s\): HTTP 503: busy \(an attempt may have been applied\)$"):
        retrying.call("POST /x", Script([LOST, BUSY, BUSY]))


def test_a_fatal_failure_is_raised_at_once_with_the_ambiguity_before_it() -> None:
    retrying, waits = loop()
    refused = Failure("HTTP 400", status=400, fatal=Refusal)
    attempt = Script([refused, "never"])
    with pytest.raises(Refusal) as caught:
        retrying.call("POST /x", attempt)
    assert attempt.calls == 1 and waits == [] and not caught.value.after_ambiguous
    with pytest.raises(Refusal) as caught:
        retrying.call("POST /x", Script([LOST, refused]))
    assert caught.value.after_ambiguous, "the refusal may answer a retry of an applied write"
    assert not refused.retryable and LOST.retryable


def test_non_idempotent_call_raises_ambiguous_instead_of_retrying() -> None:
    retrying, waits = loop()
    attempt = Script([BUSY, LOST, "never"])
    with pytest.raises(AmbiguousOutcome, match="^POST /x: ReadTimeout$"):
        retrying.call("POST /x", attempt, idempotent=False)
    assert attempt.calls == 2 and len(waits) == 1, "what proves nothing was done is still retried"


def test_exceptions_go_through_the_classifier() -> None:
    retrying, waits = loop()

    def classify(exc: Exception) -> Failure | None:
        return Failure(str(exc), maybe_applied=True) if isinstance(exc, TimeoutError) else None

    assert retrying.call("GET /x", Script([TimeoutError("read"), "ok"]), classify) == ("ok", True)
    with pytest.raises(KeyError):  # not a failure the classifier knows: unchanged, not retried
        retrying.call("GET /x", Script([KeyError("bug"), "ok"]), classify)
    with pytest.raises(ValueError):  # the default classifier lets everything through
        retrying.call("GET /x", Script([ValueError("bug")]))
    assert len(waits) == 1


def test_throttles_are_counted_and_reported_to_the_hook_with_the_capped_wait() -> None:
    seen: list[float | None] = []
    retrying, waits = loop(max_retries=2, on_throttle=seen.append)
    throttled = Failure("HTTP 429", status=429, throttled=True, wait=30.0)
    with pytest.raises(DestinationError):
        retrying.call("GET /x", Script([throttled, Failure("HTTP 429", throttled=True), throttled]))
    assert seen == [8.0, None, 8.0], "the last attempt's throttle too: other callers must slow down"
    assert (retrying.requests, retrying.retries, retrying.throttled) == (3, 2, 3)
    assert waits[0] == 8.0 and waits[1] <= 2.0


def test_a_fatal_throttle_is_counted() -> None:
    retrying, _ = loop(on_throttle=lambda wait: pytest.fail("no pause for a fatal throttle"))
    daily = Failure("daily", status=429, throttled=True, fatal=lambda _: DestinationError("daily", retryable=False))
    with pytest.raises(DestinationError, match="daily"):
        retrying.call("GET /x", Script([daily]))
    assert (retrying.requests, retrying.retries, retrying.throttled) == (1, 0, 1)


def test_the_exhausted_error_is_the_clients_own() -> None:
    class StillFailing(DestinationError):
        pass

    def exhausted(what: str, attempts: Attempts, failure: Failure) -> BaseException:
        return StillFailing(f"{what}: {attempts.retries} retries, {attempts.maybe_applied}, {failure.problem}")

    retrying, _ = loop(max_retries=1, exhausted=exhausted)
    with pytest.raises(StillFailing, match=r"^X: 1 retries, True, HTTP 503: busy$"):
        retrying.call("X", Script([LOST, BUSY]))


def test_a_callers_attempts_outlive_an_error_the_classifier_let_through() -> None:
    retrying, _ = loop()
    attempts = Attempts()
    with pytest.raises(KeyError):
        retrying.call("X", Script([LOST, KeyError("refused")]), lambda exc: None, attempts=attempts)
    assert attempts.maybe_applied and attempts.made == 2 and attempts.retries == 1


def test_retries_are_logged_with_the_problem(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    logger = logging.getLogger("test_retrying")
    retrying, _ = loop(log=logger)
    with caplog.at_level(logging.WARNING, logger="test_retrying"):
        retrying.call("GET /x", Script([Failure("HTTP 503: busy", wait=1.0), "ok"]))
    assert caplog.messages == ["GET /x: HTTP 503: busy; retry 1/3 in 1.0s"]
    silent, _ = loop()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        silent.call("GET /x", Script([BUSY, "ok"]))
    assert not [r for r in caplog.records if r.name.startswith("activation")], "no logger, no log"


def test_counters_are_thread_safe() -> None:
    retrying, _ = loop(max_retries=1)
    throttled = Failure("HTTP 429", throttled=True, wait=0.0)

    def work() -> None:
        for _ in range(200):
            retrying.call("GET /x", Script([throttled, "ok"]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (retrying.requests, retrying.retries, retrying.throttled) == (1600, 800, 800)


def test_the_policy_is_still_importable_from_http() -> None:
    from activation.destinations import http

    assert http.RetryPolicy is RetryPolicy
