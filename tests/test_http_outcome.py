"""The shared HttpClient remembers whether an earlier attempt may have been applied, through
real HTTP against the webhook receiver (which answers 200 once a fault has passed)."""

from __future__ import annotations

import pytest

from activation.destinations.base import AmbiguousOutcome
from activation.destinations.http import AFTER_AMBIGUOUS, HttpClient, RetryPolicy, rejected
from activation_emulators.faults import Fault
from activation_emulators.webhook import WebhookReceiver

BODY = {"sync": "s", "rows": [{"op": "upsert", "key": "a", "fields": {}}]}


def client() -> HttpClient:
    return HttpClient(timeout=0.3, retry=RetryPolicy(max_retries=2), sleep=lambda s: None)


@pytest.mark.parametrize(
    ("fault", "ambiguous"),
    [
        (None, False),
        (Fault("drop_after"), True),  # applied, connection closed without an answer
        (Fault("truncate"), True),  # applied, half the body
        (Fault("late", seconds=1.0), True),  # applied, answered after our read timeout
        (Fault("timeout", seconds=1.0), True),  # not applied, but we cannot tell a silent server from a slow one
        (Fault("drop"), True),  # the same: the request was sent
        (Fault("error", status=500), True),  # a 500 may come after the work was done
        (Fault("error", status=502), True),
        (Fault("error", status=503), False),  # 503: not served
        (Fault("throttle"), False),  # 429: not served
        (Fault("error", status=408), False),
    ],
    ids=lambda v: v.kind + (f"-{v.status}" if v.kind == "error" else "") if isinstance(v, Fault) else str(v),
)
def test_send_says_whether_an_earlier_attempt_may_have_been_applied(rx: WebhookReceiver, fault: Fault | None, ambiguous: bool) -> None:
    if fault is not None:
        rx.faults.inject(fault.kind, status=fault.status, seconds=fault.seconds, retry_after=0)
    with client() as http:
        answer = http.send("POST", rx.url, json=BODY)
    assert answer.response.status_code == 200
    assert answer.after_ambiguous is ambiguous
    assert http.retries == (fault is not None)


def test_ambiguity_is_per_request(rx: WebhookReceiver) -> None:
    rx.faults.inject("drop_after")
    with client() as http:
        assert http.send("POST", rx.url, json=BODY).after_ambiguous
        assert not http.send("POST", rx.url, json=BODY).after_ambiguous


def test_a_refusal_after_an_ambiguous_attempt_is_possibly_delivered(rx: WebhookReceiver) -> None:
    rx.replay = "conflict"
    rx.faults.inject("drop_after")
    with client() as http:
        answer = http.send("POST", rx.url, json=BODY, headers={"Idempotency-Key": "k1"})
    assert answer.response.status_code == 409 and answer.after_ambiguous
    row = answer.rejected("a", "HTTP 409: used key")
    assert (row.ok, row.unknown) == (False, True) and AFTER_AMBIGUOUS in (row.error or "")
    plain = rejected("a", "HTTP 409: used key", after_ambiguous=False)
    assert (plain.ok, plain.unknown, plain.error) == (False, False, "HTTP 409: used key")


def test_request_still_returns_the_response_and_creates_still_raise(rx: WebhookReceiver) -> None:
    with client() as http:
        assert http.request("POST", rx.url, json=BODY).status_code == 200
        rx.faults.inject("error", status=500)
        with pytest.raises(AmbiguousOutcome):
            http.send("POST", rx.url, json=BODY, idempotent=False)
