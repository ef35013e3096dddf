"""The bin the example plugin writes to, as a vendor would keep it: records by key, upserted
and removed by the batches POSTed to /bins/<id>, behind a bearer token; built on
activation's shared emulator server and fault injector, so activation's destination
conformance suite (tests/test_conformance.py) can run over the plugin like over a built-in
destination (throttling, 5xx, refused tokens, lost answers)."""

from __future__ import annotations

import json
import threading
from typing import Any

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer
from activation_emulators.faults import FaultInjector, serve_after, serve_before


def _error(status: int) -> tuple[bytes, str]:
    return json.dumps({"error": {"status": status, "message": f"the bin answered {status}"}}).encode(), "application/json"


class _Handler(KeepAliveHandler):
    server: QuietHTTPServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        emu: BinEmulator = self.server.owner
        body = self.read_body()  # read first: keep-alive framing
        fault = emu.faults.take(self.command, self.path)
        if serve_before(self, fault, _error):
            return
        if self.headers.get("Authorization") != f"Bearer {emu.token}":
            serve_after(self, None, *_error(401))
            return
        try:
            batch = json.loads(body)
            records = batch["records"]
        except (ValueError, KeyError, TypeError):
            serve_after(self, None, *_error(400))
            return
        with emu.lock:
            held = emu.bins.setdefault(self.path, {})
            for r in records:  # the same batch twice (a resend after a lost answer) ends the same
                if r["op"] == "remove":
                    held.pop(r["key"], None)
                else:
                    held[r["key"]] = r["fields"]
        serve_after(self, fault, 200, json.dumps({"received": len(records)}).encode(), "application/json")


class BinEmulator(BackgroundServer):
    server_class = QuietHTTPServer
    handler_class = _Handler

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port, self.token = host, port, token
        self.faults = FaultInjector()
        self.lock = threading.Lock()
        self.bins: dict[str, dict[str, dict[str, Any]]] = {}  # path -> key -> fields

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/bins/1"

    def records(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.bins.get("/bins/1", {}))
