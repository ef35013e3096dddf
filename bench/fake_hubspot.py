"""A small, fast fake of HubSpot's CRM v3 contacts API for bench/peers.py, in its own process.

    python bench/fake_hubspot.py --port 8080

Why not the emulator (activation_emulators.hubspot)? It is the faithful one (every request
checked against HubSpot's OpenAPI documents, every record's history), and it spends more CPU
per row than the clients it serves, even with `--validation off`: on a 2-core machine the
endpoint would set every contender's pace. This fake keeps only what the comparison needs, with
the emulator's behaviour (and its property definitions) for those paths:

- contacts are kept BY EMAIL, lower-cased (HubSpot folds an email's case); each gets a numeric id;
- POST /crm/v3/objects/contacts/batch/upsert with idProperty=email creates or updates by email
  (a created contact carries its email), answering every record with its properties and `new`;
- POST /crm/v3/objects/contacts/batch/read by email (idProperty) or by id: 200, or 207 with one
  OBJECT_NOT_FOUND error listing the ids not found (as HubSpot answers);
- POST /crm/v3/objects/contacts/batch/archive by id: 204; unknown ids are ignored;
- GET /crm/v3/properties/contacts: the emulator's default contact properties;
- GET /__dump (no token): every live contact, {email: properties}, to check a sync's result;
  GET /__stats: requests served.

Batches are capped at 100 inputs (HubSpot's limit); a missing bearer token is refused with 401
(any bearer token is accepted).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the emulator's property definitions
from activation_emulators.hubspot.store import default_contact_properties  # noqa: E402

PROPERTIES = json.dumps({"results": [p.to_api() for p in default_contact_properties()]}).encode()
MAX_BATCH = 100


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Contacts:
    """The store: properties by lower-cased email, and the email of each record id."""

    def __init__(self) -> None:
        self.by_email: dict[str, dict[str, str]] = {}
        self.email_of: dict[str, str] = {}
        self.next_id = 1
        self.requests = 0
        self.lock = threading.Lock()  # handler threads (clients with concurrency > 1)

    def upsert(self, inputs: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        now = now_iso()
        results = []
        with self.lock:
            for item in inputs:
                if item.get("idProperty") != "email":
                    return 400, _error("Only upserts by email are served by this fake", "VALIDATION_ERROR")
                email = str(item["id"]).lower()
                props = self.by_email.get(email)
                new = props is None
                if props is None:  # a created contact carries its key
                    rec_id = str(self.next_id)
                    self.next_id += 1
                    props = {"email": email, "hs_object_id": rec_id, "createdate": now}
                    self.by_email[email] = props
                    self.email_of[rec_id] = email
                for k, v in (item.get("properties") or {}).items():
                    value = "" if v is None else str(v)
                    if k == "email":
                        continue  # the key is the input's id (renaming is not modelled)
                    if value == "":
                        props.pop(k, None)
                    else:
                        props[k] = value
                props["lastmodifieddate"] = now
                results.append(
                    {
                        "id": props["hs_object_id"],
                        "properties": dict(props),
                        "createdAt": props["createdate"],
                        "updatedAt": now,
                        "archived": False,
                        "new": new,
                    }
                )
        return 200, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now_iso()}

    def read(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = now_iso()
        by_email = body.get("idProperty") == "email"
        names = list(body.get("properties") or [])
        results, missing = [], []
        with self.lock:
            for item in body.get("inputs") or []:
                value = str(item.get("id"))
                email = value.lower() if by_email else self.email_of.get(value)
                props = self.by_email.get(email) if email else None
                if props is None:
                    missing.append(value)
                    continue
                shown = {n: props[n] for n in dict.fromkeys([*names, "hs_object_id", "createdate", "lastmodifieddate"]) if props.get(n)}
                results.append(
                    {
                        "id": props["hs_object_id"],
                        "properties": shown,
                        "createdAt": props["createdate"],
                        "updatedAt": props["lastmodifieddate"],
                        "archived": False,
                    }
                )
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now_iso()}
        if missing:
            out.update(
                numErrors=1,
                errors=[
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
                        "context": {"ids": missing},
                        "errors": [],
                        "links": {},
                    }
                ],
            )
            return 207, out
        return 200, out

    def archive(self, inputs: list[dict[str, Any]]) -> None:
        with self.lock:
            for item in inputs:
                email = self.email_of.pop(str(item.get("id")), None)
                if email is not None:
                    self.by_email.pop(email, None)


def _error(message: str, category: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "category": category, "correlationId": "00000000-0000-0000-0000-000000000000"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HubSpot
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def setup(self) -> None:
        super().setup()  # no Nagle: a small answer must not wait 40 ms for the client's ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, body: bytes | None) -> None:
        self.send_response_only(status)
        if body is not None:
            self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body or b"")))
        self._headers_buffer.append(b"\r\n" + (body or b""))  # type: ignore[attr-defined] # headers and body in one write
        self.flush_headers()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        store = self.server.store
        path = self.path.split("?", 1)[0]
        if path == "/__dump":
            with store.lock:
                dump = {e: dict(p) for e, p in store.by_email.items()}
            self._send(200, json.dumps(dump).encode())
            return
        if path == "/__stats":
            self._send(200, json.dumps({"requests": store.requests, "contacts": len(store.by_email)}).encode())
            return
        store.requests += 1
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._send(401, json.dumps(_error("Authentication credentials not found.", "INVALID_AUTHENTICATION")).encode())
            return
        route = (self.command, path)
        if route == ("GET", "/crm/v3/properties/contacts"):
            self._send(200, PROPERTIES)
            return
        body = json.loads(raw) if raw else {}
        inputs = body.get("inputs") or []
        if len(inputs) > MAX_BATCH:
            self._send(
                400,
                json.dumps(
                    _error(
                        f"The maximum number of inputs supported in a batch is {MAX_BATCH}. "
                        "Please reduce the number of items and try again",
                        "VALIDATION_ERROR",
                    )
                ).encode(),
            )
            return
        if route == ("POST", "/crm/v3/objects/contacts/batch/upsert"):
            status, reply = store.upsert(inputs)
        elif route == ("POST", "/crm/v3/objects/contacts/batch/read"):
            status, reply = store.read(body)
        elif route == ("POST", "/crm/v3/objects/contacts/batch/archive"):
            store.archive(inputs)
            self._send(204, None)
            return
        else:
            status, reply = 404, _error(f"Not served by this fake: {self.command} {path}", "OBJECT_NOT_FOUND")
        self._send(status, json.dumps(reply, separators=(",", ":")).encode())

    do_GET = do_POST = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    store: Contacts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    server = Server((args.host, args.port), Handler)
    server.store = Contacts()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"fake HubSpot on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)
    print(f"{server.store.requests} requests, {len(server.store.by_email)} contacts", file=sys.stderr)


if __name__ == "__main__":
    main()
