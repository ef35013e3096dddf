"""A generic local HTTP receiver: records every POST (path, headers, JSON body) and answers
200 "ok", as a Slack incoming webhook does. For alert tests; faults through `faults`.

    with CaptureReceiver() as rx: ... rx.url ... rx.bodies("/slack/T0/B0/secret")
"""

from __future__ import annotations

import json
import threading
from typing import Any

from activation.testing.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation.testing.faults import FaultInjector, send_bytes, serve_after, serve_before
from activation.testing.webhook_receiver import Received


class _Server(QuietHTTPServer):
    owner: CaptureReceiver


class _Handler(KeepAliveHandler):
    server: _Server

    def do_POST(self) -> None:
        raw = self.read_body()
        owner = self.server.owner
        fault = owner.faults.take("POST", self.path)
        if fault is not None and fault.before:
            serve_before(self, fault, lambda status: (b"injected failure", "text/plain"))
            return
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        owner._add(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, 200))
        serve_after(self, fault, 200, b"ok", "text/plain", {})

    def do_GET(self) -> None:
        send_bytes(self, 200, json.dumps([r.body for r in self.server.owner.requests]).encode(), "application/json", {})


class CaptureReceiver(BackgroundServer):
    server_class = _Server
    handler_class = _Handler

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._requests: list[Received] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _add(self, received: Received) -> None:
        with self._lock:
            self._requests.append(received)

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def bodies(self, path: str | None = None) -> list[Any]:
        """Bodies POSTed (to `path`, if given), oldest first."""
        return [r.body for r in self.requests if path is None or r.path == path]
