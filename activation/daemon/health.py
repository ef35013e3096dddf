"""`/healthz` (JSON) and `/metrics` (Prometheus text) over HTTP, on a background thread."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from activation.project.secrets import redact

#: () -> (healthy, body): healthy is False once the daemon is stopping or its worker died
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    health: HealthCheck
    metrics: Callable[[], bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            healthy, body = self.server.health()
            self._send(200 if healthy else 503, redact(json.dumps(body, default=str)).encode(), "application/json")
        elif path == "/metrics":
            self._send(200, self.server.metrics(), CONTENT_TYPE_LATEST)
        else:
            self._send(404, b'{"error": "try /healthz or /metrics"}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: not worth a line
        pass


class HealthServer:
    def __init__(self, host: str, port: int, health: HealthCheck, metrics: Callable[[], bytes]) -> None:
        cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
        self._server = cls((host, port), _Handler)  # OSError: e.g. the address is taken
        self._server.health, self._server.metrics = health, metrics
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="health", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
