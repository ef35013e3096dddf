"""A local HTTP server on a daemon thread: the lifecycle every emulator shares."""

from __future__ import annotations

import signal
import socketserver
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

S = TypeVar("S", bound="BackgroundServer")


class BackgroundServer:
    """Start/stop/context manager around `_make_server()`; subclasses build the server."""

    host: str
    port: int
    _server: socketserver.BaseServer | None = None
    _thread: threading.Thread | None = None

    server_class: type[socketserver.BaseServer]
    handler_class: type[socketserver.BaseRequestHandler]

    def _make_server(self) -> socketserver.BaseServer:
        return self.server_class((self.host, self.port), self.handler_class)

    def start(self: S) -> S:
        self._server = self._make_server()
        self._server.owner = self  # type: ignore[attr-defined] # the handler's way back to us
        self.port = self._server.server_address[1]  # type: ignore[index] # port 0 → the real one
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_until_signal(self, banner: str) -> None:
        """Serve (for `python -m …` commands) until SIGINT or SIGTERM, then stop."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        with self:
            print(banner.format(url=self.url), flush=True)  # type: ignore[attr-defined]
            while not stop.wait(0.2):
                pass

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print clients hanging up (timeouts, dropped
    connections: expected in fault tests)."""

    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once
    owner: Any = None  # the BackgroundServer serving through this server

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive like the real APIs, without Nagle's 40 ms stall between the
    headers and body writes; idle connections are dropped eventually."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30
    server: QuietHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server.owner, "verbose", False):
            super().log_message(format, *args)

    #: Longest request line accepted. The stdlib refuses lines over 65,536 bytes with 414; an
    #: emulator whose clients put payloads in the query string (Graph API DELETEs) raises it.
    max_request_line = 65536

    def handle_one_request(self) -> None:
        if self.max_request_line <= 65536:
            super().handle_one_request()
            return
        # The stdlib's handle_one_request with its hard-coded limit replaced.
        try:
            self.raw_requestline = self.rfile.readline(self.max_request_line + 1)
            if len(self.raw_requestline) > self.max_request_line:
                self.requestline, self.request_version, self.command = "", "", ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            method = getattr(self, f"do_{self.command}", None)
            if method is None:
                self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
                return
            method()
            self.wfile.flush()
        except TimeoutError as e:
            self.log_error("Request timed out: %r", e)
            self.close_connection = True

    def read_body(self) -> bytes:
        """The request body, Content-Length or chunked; always read, even to refuse the request
        (an unread body would be parsed as the next request on a keep-alive connection)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""
