"""Helpers for tests that need a run to stay mid-push in another process: a webhook receiver
that holds requests until released (waited on by events, not by sleeping), the `activation`
command as a real process, and the example project on the Postgres server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from conftest import PG_URL, Project, make_project

from activation_emulators.webhook import WebhookReceiver


class HeldReceiver(WebhookReceiver):
    """A webhook receiver that, once `hold()` is called, keeps every POST waiting (before it is
    applied) until `release()`; `arrived` is set when the first held POST came in."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        self.arrived.clear()
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> Any:
        if not self._open.is_set():
            self.arrived.set()
            self._open.wait()
        return super()._handle(path, headers, raw)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()  # a held handler thread ends instead of waiting forever
        super().__exit__(exc_type, exc, tb)


def spawn(p: Project, *args: str) -> subprocess.Popen[str]:
    """`activation ARGS --project P` as its own process (as a user or a scheduler starts it)."""
    env = {**os.environ, **p.env, **({"HOOK_URL": p.rx.url} if p.rx is not None else {})}
    return subprocess.Popen(
        [sys.executable, "-m", "activation.cli", *args, "--project", str(p.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for the process to end (the timeout only keeps a broken test from hanging)."""
    out, err = child.communicate(timeout=300)
    return child.returncode, out, err


def postgres_project(
    root: Path, rx: WebhookReceiver, engine: sa.Engine, tag: str, *, state: str = "", n: int = 200, orders: int = 700
) -> Project:
    """The conftest project with its warehouse on the Postgres server: the same rows (so
    `model_users()`, computed from the DuckDB copy, is still the oracle) in schema src_TAG."""
    p = make_project(root, rx, n=n, orders=orders, state=state)
    with engine.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA src_{tag}"))
        c.execute(
            sa.text(
                f"CREATE TABLE src_{tag}.users AS SELECT 'u' || lpad(CAST(i AS TEXT), 4, '0') AS user_id, "
                f"'user' || i || '@example.com' AS email, (ARRAY['free', 'pro', 'enterprise'])[1 + i % 3] AS plan, "
                f"CAST(i % 7 AS INTEGER) AS seats, CAST(i * 10 AS DECIMAL(12, 2)) AS spend FROM generate_series(0, {n - 1}) i"
            )
        )
        c.execute(
            sa.text(
                f"CREATE TABLE src_{tag}.orders AS SELECT 'u' || lpad(CAST(i % {n} AS TEXT), 4, '0') AS user_id, "
                f"CAST(i % 50 AS INTEGER) AS amount FROM generate_series(0, {orders - 1}) i"
            )
        )
    text = (root / "syncs.yaml").read_text()
    text = text.replace(
        "warehouse: {type: duckdb, path: warehouse.duckdb}", f"warehouse: {{type: postgres, url: '{PG_URL}', schema: act_{tag}}}"
    )
    (root / "syncs.yaml").write_text(text.replace("src.", f"src_{tag}."))
    return p


def drop_schemas(engine: sa.Engine, tag: str) -> None:
    with engine.begin() as c:
        for schema in (f"src_{tag}", f"act_{tag}", f"state_{tag}"):
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
