"""Fault injection shared by every emulator: what can go wrong between us and a vendor API.

An emulator owns one `FaultInjector`; tests queue faults (`inject`) or switch on random
faults (`chaos`), and the emulator's handler asks `take()` once per request. Where a fault
strikes decides what the destination must survive:

- before the request is processed (nothing applied): `error` (a 5xx or any status, in the
  vendor's error shape), `throttle` (429, with or without Retry-After), `unauthorized` (401),
  `drop` (connection closed, no answer), `timeout` (no answer for `seconds`, then closed);
- after it was processed (the vendor applied it, the client does not know): `drop_after`
  (closed without an answer), `truncate` (headers and half the body, then closed), `late`
  (the answer comes `seconds` late: a client with a shorter timeout gives up), `garble`
  (a complete 200 whose body is not valid JSON: a proxy's page, a receiver's bug);
- while it waits to be processed: `stall` (the request sits `seconds` in the vendor's queue,
  then is applied and answered: a client with a shorter timeout gives up and may send newer
  data meanwhile, which the stalled request then arrives after). Emulators that call
  `serve_before` for every request honour it (the Mailchimp emulator does not).

The emulator supplies the vendor's error body for a status; this module writes the bytes.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Literal

FaultKind = Literal["error", "throttle", "unauthorized", "drop", "timeout", "drop_after", "truncate", "late", "garble", "stall"]
BEFORE: frozenset[str] = frozenset({"error", "throttle", "unauthorized", "drop", "timeout"})
AFTER: frozenset[str] = frozenset({"drop_after", "truncate", "late", "garble"})

#: An emulator's error body for a status: (body bytes, content type).
ErrorBody = Callable[[int], tuple[bytes, str]]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500  # error; throttle is always 429, unauthorized 401
    retry_after: float | None = 1.0  # throttle: the Retry-After header (None: no header)
    seconds: float = 0.0  # timeout: silence before closing; late: delay before answering; stall: before processing
    match: str | None = None  # only requests whose "METHOD /path" contains this

    @property
    def before(self) -> bool:
        return self.kind in BEFORE

    def applies_to(self, request: str) -> bool:
        return self.match is None or self.match in request


class FaultInjector:
    """Queued faults (first matching one wins) and optional random ones; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._chaos: tuple[float, list[Fault], list[float], random.Random] | None = None
        self.injected: Counter[str] = Counter()

    def inject(self, kind: FaultKind, n: int = 1, **options: object) -> None:
        """Strike the next `n` matching requests with this fault (see `Fault` for options)."""
        fault = Fault(kind, **options)  # type: ignore[arg-type]
        with self._lock:
            self._queue.extend([fault] * n)

    def chaos(self, rate: float, faults: Mapping[Fault, float] | None = None, seed: int | None = None) -> None:
        """Strike each request with probability `rate`, with a fault drawn by weight."""
        faults = dict(faults or DEFAULT_CHAOS)
        with self._lock:
            self._chaos = (rate, list(faults), list(faults.values()), random.Random(seed))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._chaos = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def take(self, method: str, path: str) -> Fault | None:
        request = f"{method} {path}"
        with self._lock:
            for i, fault in enumerate(self._queue):
                if fault.applies_to(request):
                    del self._queue[i]
                    self.injected[fault.kind] += 1
                    return fault
            if self._chaos is not None:
                rate, faults, weights, rng = self._chaos
                if rng.random() < rate:
                    fault = rng.choices(faults, weights)[0]
                    if fault.applies_to(request):
                        self.injected[fault.kind] += 1
                        return fault
        return None


DEFAULT_CHAOS: dict[Fault, float] = {
    Fault("error", 500): 3,
    Fault("error", 503): 2,
    Fault("throttle"): 2,
    Fault("throttle", retry_after=None): 1,
    Fault("drop"): 1,
    Fault("drop_after"): 1,
    Fault("truncate"): 1,
}


def send_bytes(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
    *,
    cut: bool = False,
) -> None:
    """A complete HTTP response (`cut`: its headers promise the whole body, half is sent)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2] if cut else body)


def garbled(body: bytes) -> bytes:
    """`body` cut in half (complete as HTTP, so only a JSON parser notices); never valid JSON."""
    half = body[: len(body) // 2]
    try:
        json.loads(half)
    except ValueError:
        if half.strip():
            return half
    return b"<html>" + half  # half of a short body may be empty or still parse ("12" -> "1")


def _hang_up(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True
    handler.wfile.flush()
    with contextlib.suppress(OSError):
        handler.connection.shutdown(2)  # type: ignore[attr-defined]  # SHUT_RDWR: the client sees EOF now


def serve_before(handler: BaseHTTPRequestHandler, fault: Fault | None, error_body: ErrorBody) -> bool:
    """Answer a fault that strikes before processing; True when the request is done with.

    A `stall` waits here and returns False: the request is then processed as usual.
    The caller has read the request body already (keep-alive framing stays intact)."""
    if fault is not None and fault.kind == "stall":
        time.sleep(fault.seconds)
        return False
    if fault is None or not fault.before:
        return False
    if fault.kind in ("drop", "timeout"):
        if fault.kind == "timeout":
            time.sleep(fault.seconds)
        _hang_up(handler)
        return True
    status = {"throttle": 429, "unauthorized": 401}.get(fault.kind, fault.status)
    body, content_type = error_body(status)
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.kind == "throttle" and fault.retry_after is not None else {}
    send_bytes(handler, status, body, content_type, headers)
    return True


def serve_after(
    handler: BaseHTTPRequestHandler,
    fault: Fault | None,
    status: int,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send the processed request's answer, spoiled by `fault` if it strikes after processing."""
    if fault is None or fault.kind not in AFTER:
        send_bytes(handler, status, body, content_type, headers)
        return
    if fault.kind == "drop_after":
        _hang_up(handler)
    elif fault.kind == "truncate":
        send_bytes(handler, status, body, content_type, headers, cut=True)
        _hang_up(handler)
    elif fault.kind == "garble":
        send_bytes(handler, 200, garbled(body), content_type, headers)
    else:  # late
        time.sleep(fault.seconds)
        with contextlib.suppress(OSError):  # the client gave up waiting: that is the point
            send_bytes(handler, status, body, content_type, headers)
