"""A third-party destination, installed as its own package, is a destination of activation
through the `activation.destinations` entry-point group alone: examples/destination-plugin
(`type: jsonbin`) is pip-installed into a folder of its own, and `activation validate` and
`activation run` find it there, with no file of activation/ touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import make_project

from activation_emulators.webhook import WebhookReceiver

BIN = """
  bin: {type: jsonbin, url: "${BIN_URL}", token: "${BIN_TOKEN}"}
"""
SYNC = "  users_to_bin: {from: user, to: bin, match: {email: email}, fields: {plan: plan}}\n"


class Bin:
    """The bin the plugin posts to: every body it received, and the tokens that came with them."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.bodies.append(json.loads(body))
                received.tokens.add(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bins/1"


@pytest.fixture
def bin_() -> Iterator[Bin]:
    b = Bin()
    thread = threading.Thread(target=b.server.serve_forever, daemon=True)
    thread.start()
    yield b
    b.server.shutdown()
    b.server.server_close()


def activation(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "activation.cli", *args, "-p", str(root)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_installed_plugin_is_a_destination(tmp_path: Path, plugin_site: Path, bin_: Bin, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "p", rx, n=40, orders=100)
    text = (p.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:" + BIN, 1)
    (p.root / "syncs.yaml").write_text(text + SYNC)
    env = {"HOOK_URL": rx.url, "BIN_URL": bin_.url, "BIN_TOKEN": "s3cret"}

    without = activation(p.root, env, "validate")
    assert without.returncode == 2 and "unknown type 'jsonbin'" in without.stderr, without.stderr

    env["PYTHONPATH"] = str(plugin_site)
    checked = activation(p.root, env, "validate")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = activation(p.root, env, "run", "users_to_bin", "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [result] = json.loads(ran.stdout)["syncs"]
    assert result["status"] == "success" and result["acknowledged"] == 40
    records = [r for body in bin_.bodies for r in body["records"]]
    assert {body["sync"] for body in bin_.bodies} == {"users_to_bin"} and bin_.tokens == {"Bearer s3cret"}
    assert sorted(r["fields"]["email"] for r in records) == sorted(u["email"] for u in p.model_users().values())
    assert {r["op"] for r in records} == {"upsert"}

    schema = subprocess.run(
        [sys.executable, "-m", "activation.cli", "schema"], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert "JsonBinSpec" in schema.stdout, "the JSON schema lists the plugin's type too"
