"""A local HTTP server on a daemon thread: the lifecycle every emulator shares."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import TypeVar

S = TypeVar("S", bound="BackgroundServer")


class BackgroundServer:
    """Start/stop/context manager around `_make_server()`; subclasses build the server."""

    host: str
    port: int
    _server: socketserver.BaseServer | None = None
    _thread: threading.Thread | None = None

    def _make_server(self) -> socketserver.BaseServer:
        raise NotImplementedError

    def start(self: S) -> S:
        self._server = self._make_server()
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

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
