"""A real local webhook receiver: applies the webhook destination's batches to in-memory records.

Runs a stdlib `ThreadingHTTPServer` in a background thread (keep-alive, 127.0.0.1, port 0 by
default) so tests go through real HTTP. Faults are injected per test: failures, throttling,
per-row rejections, a required header, slow answers. Batches are applied idempotently by key,
so a batch received twice (same Idempotency-Key) is harmless; it is counted, not dropped.

Modes model receivers met in the wild:

- `replay`: what a request whose Idempotency-Key was already applied gets: applied again
  (``"apply"``, the default), ``409 Conflict`` (``"conflict"``, Stripe-like), or a per-row
  rejection of each row (``"reject"``: "already exists");
- `missing_removes`: a remove of a key not held succeeds (``"ok"``) or is answered "not
  found" per row (``"not_found"``; HTTP 404 when every row of the request is one);
- `versioned` (on by default): a row's write older than the version held for its key (a
  remove leaves its version behind) is dropped, answered ok, and counted in `stale_writes`.

    python -m activation_emulators.webhook --port 8765 [--dump records.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, send_bytes, serve_after, serve_before

Reply = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True)
class Received:
    """One request as received (headers with lower-case names)."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int


class _Server(QuietHTTPServer):
    owner: WebhookReceiver


class _Handler(KeepAliveHandler):
    server: _Server

    def do_POST(self) -> None:
        raw = self.read_body()
        owner = self.server.owner
        fault = owner.faults.take("POST", self.path)
        if fault is not None and fault.before:
            owner._count_request()
            serve_before(self, fault, _error_body)
            return
        serve_before(self, fault, _error_body)  # a `stall` waits here, then is processed
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = owner._handle(self.path, headers, raw)
        serve_after(self, fault, status, json.dumps(body).encode() if body is not None else b"", "application/json", extra)

    def do_GET(self) -> None:
        """GET any path: all records, by sync (handy in the demo)."""
        self._send(200, self.server.owner.all_records(), {})

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        send_bytes(self, status, json.dumps(body).encode() if body is not None else b"", "application/json", headers)


def _error_body(status: int) -> tuple[bytes, str]:
    return json.dumps({"error": f"injected HTTP {status}"}).encode(), "application/json"


class WebhookReceiver(BackgroundServer):
    """``with WebhookReceiver() as rx:`` then point a webhook destination at ``rx.url``."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        report_results: bool = False,
        keep_requests: bool = True,
        verbose: bool = False,
        accept_any: bool = False,
        replay: Literal["apply", "conflict", "reject"] = "apply",
        missing_removes: Literal["ok", "not_found"] = "ok",
        versioned: bool = True,
    ) -> None:
        self.host, self.port = host, port
        #: Answer 200 to any other POST too, keeping it in `requests` (a generic receiver:
        #: alert webhooks, Slack's incoming webhooks).
        self.accept_any = accept_any
        #: Always answer with per-row ``results`` (else only when a row was rejected).
        self.report_results = report_results
        #: Keep every request body in `requests` (turn off for large benchmarks).
        self.keep_requests = keep_requests
        self.verbose = verbose
        #: See the module's docstring.
        self.replay: Literal["apply", "conflict", "reject"] = replay
        self.missing_removes: Literal["ok", "not_found"] = missing_removes
        self.versioned = versioned
        #: Row writes dropped because a newer version of the key was held.
        self.stale_writes = 0
        self._versions: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._handled_changed = threading.Condition(self._lock)
        self._handled = 0
        self._all_held: list[threading.Event] = []
        self._records: dict[str, dict[str, dict[str, Any]]] = {}
        self._ids: dict[tuple[str, str], str] = {}
        self._requests: list[Received] = []
        self._request_count = 0
        self._seen_batches: set[str] = set()
        self.duplicate_batches = 0
        #: Generic faults (see activation_emulators.faults), checked before the ones below.
        self.faults = FaultInjector()
        self.clear_faults()

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    # ------------------------------------------------------------ inspection

    def records(self, sync: str) -> dict[str, dict[str, Any]]:
        """Current records of `sync`: key -> fields (a copy)."""
        with self._lock:
            return {k: dict(v) for k, v in self._records.get(sync, {}).items()}

    def all_records(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self._lock:
            return {s: {k: dict(v) for k, v in recs.items()} for s, recs in self._records.items()}

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Every POST received, including the ones answered with an injected fault."""
        with self._lock:
            return self._request_count

    def wait_handled(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until `n` POSTs were processed (applied or refused; faults answered before
        processing do not count); False on timeout."""
        with self._handled_changed:
            return self._handled_changed.wait_for(lambda: self._handled >= n, timeout)

    # ------------------------------------------------------------ fault injection

    def clear_faults(self) -> None:
        with self._lock:
            self._fail: list[tuple[int, Any]] = []
            self._throttle: list[str | None] = []
            self._rejected: dict[str, str] = {}
            self._required: tuple[str, str] | None = None
            self._delay, self._delay_times = 0.0, None
            self._hang_after_apply = 0.0
            self._held: list[threading.Event] = []

    def fail_next(self, n: int, status: int = 500, body: Any = None) -> None:
        """Answer the next `n` POSTs with `status` (body default: an error object)."""
        with self._lock:
            self._fail += [(status, body if body is not None else {"error": "injected failure"})] * n

    def throttle_next(self, n: int, retry_after: str | None = "1") -> None:
        """Answer the next `n` POSTs (after any `fail_next`) with 429 and Retry-After."""
        with self._lock:
            self._throttle += [retry_after] * n

    def reject_keys(self, keys: set[str] | dict[str, str], error: str = "rejected") -> None:
        """Reject these keys (not applied) with a per-row error; replaces earlier keys."""
        with self._lock:
            self._rejected = dict(keys) if isinstance(keys, dict) else dict.fromkeys(keys, error)

    def require_header(self, name: str, value: str) -> None:
        """Answer 401 to any POST without exactly this header value."""
        with self._lock:
            self._required = (name.lower(), value)

    def hang_after_apply(self, seconds: float) -> None:
        """Apply the next POST, then wait `seconds` before answering: the destination has
        the rows, the client has no acknowledgement (a crash now is the worst case)."""
        with self._lock:
            self._hang_after_apply = seconds

    def hold_next(self) -> threading.Event:
        """Keep the next POST waiting, before it is applied, until the returned event is set:
        the client gives up on it, later requests go through, and then it is applied late
        (released by `stop` too, so no handler waits forever)."""
        release = threading.Event()
        with self._lock:
            self._held.append(release)
            self._all_held.append(release)
        return release

    def stop(self) -> None:
        with self._lock:
            held = list(self._all_held)
        for release in held:  # a held handler ends instead of waiting forever
            release.set()
        super().stop()

    def delay(self, seconds: float, times: int | None = None) -> None:
        """Wait `seconds` before answering (the next `times` POSTs, or all)."""
        with self._lock:
            self._delay, self._delay_times = seconds, times

    # ------------------------------------------------------------ request handling

    def _count_request(self) -> None:
        with self._lock:
            self._request_count += 1

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            self._request_count += 1
            held = self._held.pop(0) if self._held else None
            delay = self._delay
            if self._delay_times is not None:
                delay = delay if self._delay_times > 0 else 0.0
                self._delay_times = max(0, self._delay_times - 1)
        if held is not None:
            held.wait()  # outside the lock: other requests proceed meanwhile
        if delay:
            time.sleep(delay)  # outside the lock: other requests proceed meanwhile
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            reply = self._respond(headers, body)
            if self.keep_requests:
                self._requests.append(Received(path, headers, body, reply[0]))
            self._handled += 1
            self._handled_changed.notify_all()
            hang, self._hang_after_apply = self._hang_after_apply, 0.0
        if hang:
            time.sleep(hang)  # applied, but the client does not hear back yet
        return reply

    def _respond(self, headers: dict[str, str], body: Any) -> Reply:
        if self._required and headers.get(self._required[0]) != self._required[1]:
            return 401, {"error": f"missing or invalid {self._required[0]} header"}, {}
        if self._fail:
            status, error = self._fail.pop(0)
            return status, error, {}
        if self._throttle:
            retry_after = self._throttle.pop(0)
            return 429, {"error": "slow down"}, ({"Retry-After": retry_after} if retry_after else {})
        if not isinstance(body, dict) or not isinstance(body.get("sync"), str) or not isinstance(body.get("rows"), list):
            if self.accept_any:
                return 200, {"ok": True}, {}
            return 400, {"error": "body must be a JSON object with sync and rows"}, {}
        batch = headers.get("idempotency-key")
        if batch in self._seen_batches:
            self.duplicate_batches += 1
            if self.replay == "conflict":
                return 409, {"error": "this Idempotency-Key was already used"}, {}
            if self.replay == "reject":
                return (
                    200,
                    {
                        "results": [
                            {
                                "key": row.get("key") if isinstance(row, dict) else None,
                                "ok": False,
                                "status": 409,
                                "error": "already exists",
                            }
                            for row in body["rows"]
                        ]
                    },
                    {},
                )
            # "apply": re-applied, harmless: ops are idempotent by key
        results = [self._apply(body["sync"], row) for row in body["rows"]]
        if batch:
            self._seen_batches.add(batch)
        if results and all(r.get("status") == 404 for r in results):
            return 404, {"error": "not found", "results": results}, {}
        if self.report_results or not all(r["ok"] for r in results):
            return 200, {"results": results}, {}
        return 200, {"accepted": len(results)}, {}

    def _apply(self, sync: str, row: Any) -> dict[str, Any]:
        key = row.get("key") if isinstance(row, dict) else None
        if not isinstance(key, str):
            return {"key": key, "ok": False, "error": "row without a string key"}
        if key in self._rejected:
            return {"key": key, "ok": False, "error": self._rejected[key]}
        op, fields = row.get("op"), row.get("fields") or {}
        if op not in ("upsert", "insert", "update", "remove"):
            return {"key": key, "ok": False, "error": f"unknown op {op!r}"}
        store = self._records.setdefault(sync, {})
        version = row.get("version")
        if self.versioned and isinstance(version, int):
            held = self._versions.get((sync, key))
            if held is not None and version < held:
                # A write older than what we hold arrived late: the newer data stands.
                self.stale_writes += 1
                return {"key": key, "ok": True, "stale": True}
            self._versions[(sync, key)] = version
        if op in ("upsert", "insert"):
            store[key] = dict(fields)
        elif op == "update":
            store.setdefault(key, {}).update(fields)
        else:  # remove
            if store.pop(key, None) is None and self.missing_removes == "not_found":
                return {"key": key, "ok": False, "status": 404, "error": "not found"}
            return {"key": key, "ok": True}
        rid = self._ids.setdefault((sync, key), f"rx_{len(self._ids) + 1}")
        return {"key": key, "ok": True, "id": rid}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation_emulators.webhook",
        description="Local webhook receiver for demos: applies batches to in-memory records.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--dump", type=Path, help="write records as JSON here on exit")
    parser.add_argument("--results", action="store_true", help="always answer per-row results")
    parser.add_argument("--require-header", metavar="NAME:VALUE", help="401 without this header")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--replay",
        choices=["apply", "conflict", "reject"],
        default="apply",
        help="a retried Idempotency-Key already applied: apply again, 409, or reject each row",
    )
    parser.add_argument(
        "--missing-removes", choices=["ok", "not_found"], default="ok", help="a remove of a key not held: ok, or 'not found' (404)"
    )
    args = parser.parse_args(argv)

    rx = WebhookReceiver(
        args.host,
        args.port,
        report_results=args.results,
        keep_requests=False,
        verbose=args.verbose,
        replay=args.replay,
        missing_removes=args.missing_removes,
    )
    if args.require_header:
        name, _, value = args.require_header.partition(":")
        rx.require_header(name.strip(), value.strip())
    rx.serve_until_signal("{url}")
    if args.dump:
        args.dump.write_text(json.dumps(rx.all_records(), indent=2, sort_keys=True))
    print(f"received {rx.request_count} request(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
