"""Webhook destination and HTTP transport, through real HTTP against the local receiver."""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activation.destinations.base import ConfigError, DestinationError, RowOp, SyncTarget
from activation.destinations.http import HttpClient, RetryPolicy, parse_retry_after, safe_url
from activation.destinations.webhook.destination import (
    UNREPORTED,
    WebhookDestination,
    canonical_json,
    parse_results,
)
from activation.destinations.webhook.spec import WebhookDestinationSpec
from activation_emulators.webhook import WebhookReceiver

TARGET = SyncTarget(sync="crm_contacts", object="contacts", mode="upsert")
SECRET = "tok_s3cret-value-123"


class FakeSleep:
    """Records requested waits instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


def make_dest(url: str, sleep: FakeSleep, **spec: Any) -> WebhookDestination:
    spec.setdefault("timeout_seconds", 2.0)
    return WebhookDestination("hook", WebhookDestinationSpec(type="webhook", url=url, **spec), ".", sleep=sleep)


def ops(*keys: str, kind: str = "upsert") -> list[RowOp]:
    return [RowOp(kind=kind, key=k, values={"email": f"{k}@example.com"}) for k in keys]


def test_batches_are_delivered_and_applied(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    dest = make_dest(rx.url, sleep)
    results = dest.push(TARGET, ops("a", "b", "c"))
    assert [(r.key, r.ok) for r in results] == [("a", True), ("b", True), ("c", True)]

    changes = [
        RowOp(kind="update", key="a", values={"plan": "pro"}, previous={"email": "a@example.com"}, changed_fields=["plan"]),
        RowOp(kind="remove", key="b", values={"email": "b@example.com"}),
    ]
    assert all(r.ok for r in dest.push(TARGET, changes))
    dest.close()

    assert rx.records("crm_contacts") == {
        "a": {"email": "a@example.com", "plan": "pro"},
        "c": {"email": "c@example.com"},
    }
    last = rx.requests[-1]
    assert last.headers["content-type"] == "application/json"
    assert len(last.headers["idempotency-key"]) == 32
    assert {k: last.body[k] for k in ("sync", "object", "mode")} == {
        "sync": "crm_contacts",
        "object": "contacts",
        "mode": "upsert",
    }
    first = rx.requests[0].body["rows"][0]["version"]
    assert last.body["rows"][0] == {
        "op": "update",
        "key": "a",
        "fields": {"plan": "pro"},
        "previous": {"email": "a@example.com"},
        "changed": ["plan"],
        "version": last.body["rows"][0]["version"],
    }
    assert isinstance(first, int) and last.body["rows"][0]["version"] > first, "a later write carries a larger version"


def test_server_errors_are_retried(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    rx.fail_next(2, status=500)
    dest = make_dest(rx.url, sleep, max_retries=3)
    assert all(r.ok for r in dest.push(TARGET, ops("a")))
    assert rx.request_count == 3 and dest.http.retries == 2 and len(sleep.calls) == 2
    assert 0.25 <= sleep.calls[0] <= 0.5 <= sleep.calls[1] <= 1.0  # jittered, doubling
    assert rx.records("crm_contacts") == {"a": {"email": "a@example.com"}}


def test_retry_after_is_honoured_and_capped(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    rx.throttle_next(1, retry_after="7")
    dest = make_dest(rx.url, sleep)
    assert all(r.ok for r in dest.push(TARGET, ops("a")))
    assert sleep.calls == [7.0]
    assert dest.http.throttled == 1 and dest.http.retries == 1

    rx.throttle_next(1, retry_after="3600")
    client = HttpClient(retry=RetryPolicy(max_delay=2.0), sleep=sleep)
    assert client.request("POST", rx.url, json={"sync": "s", "rows": []}).status_code == 200
    assert sleep.calls[-1] == 2.0
    client.close()


def test_exhausted_retries_raise_without_leaking_query(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    rx.fail_next(10, status=503, body={"error": "upstream down"})
    dest = make_dest(rx.url + "?api_key=querysecret", sleep, max_retries=2)
    with pytest.raises(DestinationError) as info:
        dest.push(TARGET, ops("a"))
    message = str(info.value)
    assert "POST" in message and rx.url in message and "503" in message
    assert "upstream down" in message and "3 attempt" in message
    assert "querysecret" not in message
    assert info.value.retryable
    assert rx.request_count == 3 and rx.records("crm_contacts") == {}


def test_timeouts_are_retried(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    rx.delay(1.0, times=1)
    dest = make_dest(rx.url, sleep, timeout_seconds=0.2, max_retries=1)
    assert all(r.ok for r in dest.push(TARGET, ops("a")))
    assert dest.http.retries == 1


def test_connection_refused_raises(sleep: FakeSleep) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = make_dest(f"http://127.0.0.1:{port}/hook", sleep, max_retries=1)
    with pytest.raises(DestinationError, match="ConnectError"):
        dest.push(TARGET, ops("a"))
    assert len(sleep.calls) == 1


def test_client_errors_are_not_retried(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    rx.fail_next(1, status=422, body={"error": {"message": "field plan is unknown"}})
    dest = make_dest(rx.url, sleep)
    results = dest.push(TARGET, ops("a", "b"))
    assert [r.error for r in results] == ["HTTP 422: field plan is unknown"] * 2
    assert not any(r.ok for r in results)
    assert rx.request_count == 1 and sleep.calls == []


def test_request_timeout_status_is_retried(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    rx.fail_next(1, status=408)
    dest = make_dest(rx.url, sleep)
    assert all(r.ok for r in dest.push(TARGET, ops("a")))
    assert rx.request_count == 2


def test_per_row_rejections(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    rx.reject_keys({"b"}, error="invalid email")
    dest = make_dest(rx.url, sleep)
    results = {r.key: r for r in dest.push(TARGET, ops("a", "b", "c"))}
    assert results["a"].ok and results["c"].ok and results["a"].dest_id
    assert not results["b"].ok and results["b"].error == "invalid email"
    assert set(rx.records("crm_contacts")) == {"a", "c"}


def test_parse_results_forms() -> None:
    batch = ops("a", "b", "c", "d")
    body = {
        "results": [
            {"key": "a", "status": "ok", "id": 17},
            {"key": "b", "status": "error", "error": "bad"},
            {"key": "c", "ok": False},
        ]
    }
    results = {r.key: r for r in parse_results(batch, body)}
    assert results["a"].ok and results["a"].dest_id == "17"
    assert (results["b"].ok, results["b"].error) == (False, "bad")
    assert (results["c"].ok, results["c"].error) == (False, "rejected by receiver")
    # a row the answer leaves out may have been applied: possibly delivered, not rejected
    assert (results["d"].ok, results["d"].unknown, results["d"].error) == (False, True, UNREPORTED)
    assert all(r.ok for r in parse_results(batch, None))
    assert all(r.ok for r in parse_results(batch, {"accepted": 4}))
    assert all(not r.ok and r.unknown for r in parse_results(batch, {"results": "oops"}))


def test_unauthorized_stops_the_sync(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    # Every later batch would fail the same way: the sync stops, no row is acknowledged.
    rx.require_header("Authorization", f"Bearer {SECRET}")
    dest = make_dest(rx.url, sleep)
    with pytest.raises(DestinationError) as info:
        dest.push(TARGET, ops("a", "b"))
    assert "HTTP 401" in str(info.value) and not info.value.retryable
    assert rx.records("crm_contacts") == {} and sleep.calls == []


def test_env_header_is_sent_but_never_shown(rx: WebhookReceiver, sleep: FakeSleep, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    rx.require_header("Authorization", f"Bearer {SECRET}")
    dest = make_dest(rx.url, sleep, headers={"Authorization": "Bearer ${HOOK_TOKEN}"}, max_retries=1)
    assert all(r.ok for r in dest.push(TARGET, ops("a")))

    # A receiver that echoes the token back in its error body must not leak it either.
    rx.fail_next(2, status=500, body={"error": f"bad token Bearer {SECRET} / {SECRET}"})
    with pytest.raises(DestinationError) as info:
        dest.push(TARGET, ops("b"))
    assert SECRET not in str(info.value) and "***" in str(info.value)

    rx.fail_next(1, status=403, body={"error": f"token {SECRET} is revoked"})
    with pytest.raises(DestinationError) as info:
        dest.push(TARGET, ops("c"))
    assert SECRET not in str(info.value) and "403" in str(info.value)


def test_idempotency_key_is_per_push_and_kept_across_retries(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    dest = make_dest(rx.url, sleep)
    rx.fail_next(1, status=503)
    dest.push(TARGET, ops("a", "b"))  # one push, retried once
    dest.push(TARGET, ops("a", "b"))  # same content, a new push
    keys = [r.headers["idempotency-key"] for r in rx.requests]
    assert len(keys) == 3
    assert keys[0] == keys[1], "a retry must reuse its push's key"
    assert keys[2] != keys[1], "identical content in a later push is a new request (A→B→A must not be dropped)"
    # batch_id names the content, versions included: a retry repeats it, a later push of the
    # same rows does not (its versions are newer), other syncs do not share it
    bodies = [r.body for r in rx.requests]
    assert bodies[0] == bodies[1] and bodies[0]["batch_id"] != bodies[2]["batch_id"]
    rows_json = canonical_json(bodies[0]["rows"])
    head = canonical_json(["crm_contacts", "contacts", "upsert"])
    assert bodies[0]["batch_id"] == hashlib.sha256(f"{head}\n{rows_json}".encode()).hexdigest()
    dest.push(SyncTarget(sync="other", object="contacts", mode="upsert"), ops("a", "b"))
    assert rx.requests[-1].body["batch_id"] != bodies[0]["batch_id"]


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(datetime(2026, 11, 1, 12, 0, 30, tzinfo=timezone.utc), usegmt=True)
    earlier = format_datetime(datetime(2026, 11, 1, 11, 0, 0, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("-3") is None


def test_safe_url_drops_credentials_and_query() -> None:
    shown = safe_url("https://user:pa55word@hooks.example.com/in?token=abc#frag")
    assert "pa55word" not in shown and "token" not in shown and "hooks.example.com/in" in shown


def test_values_of_every_type_become_json(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    dest = make_dest(rx.url, sleep)
    uid = uuid.uuid4()
    values = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "day": date(2026, 1, 2),
        "amount": Decimal("12.50"),
        "count": Decimal("3"),
        "id": uid,
        "nan": float("nan"),
        "text": 'ünïcødé, "q"',
    }
    assert all(r.ok for r in dest.push(TARGET, [RowOp(kind="upsert", key="a", values=values)]))
    got = rx.records("crm_contacts")["a"]
    assert got == {
        "at": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "amount": 12.5,
        "count": 3,
        "id": str(uid),
        "nan": None,
        "text": 'ünïcødé, "q"',
    }


def test_a_decimal_a_double_cannot_hold_keeps_every_digit(rx: WebhookReceiver, sleep: FakeSleep) -> None:
    """The webhook had its own Decimal rule, which went through float: 20 digits became 17.
    Every destination now takes the shared one (activation.values): exact text instead."""
    dest = make_dest(rx.url, sleep)
    values = {"big": Decimal("12345678901234567890.1234567890"), "whole": Decimal("123456789012345678901234567890")}
    assert all(r.ok for r in dest.push(TARGET, [RowOp(kind="upsert", key="a", values=values)]))
    assert rx.records("crm_contacts")["a"] == {"big": "12345678901234567890.1234567890", "whole": 123456789012345678901234567890}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips_and_is_deterministic(value: Any) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value
    assert canonical_json(json.loads(text)) == text


def test_non_http_url_is_a_config_error(sleep: FakeSleep) -> None:
    dest = make_dest("ftp://example.com/x", sleep)
    with pytest.raises(ConfigError):
        dest.check_target(TARGET)


def test_missing_env_in_header_fails_before_sending(rx: WebhookReceiver, sleep: FakeSleep, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSENT_TOKEN", raising=False)
    dest = make_dest(rx.url, sleep, headers={"Authorization": "Bearer ${ABSENT_TOKEN}"})
    with pytest.raises(ConfigError, match="ABSENT_TOKEN"):
        dest.open(TARGET)
    assert rx.request_count == 0
