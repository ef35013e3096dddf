"""The base install (`pip install activation-etl`, no extras) runs validate/plan/run on DuckDB
with the webhook and file destinations; a destination, engine or command that needs an extra
says which, with the pip line, as a configuration error (exit 2), never a traceback.

Each command runs in a subprocess where every optional package cannot be imported (a meta
path finder installed by sitecustomize refuses them), as on a machine without them."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import make_project

from activation_emulators.webhook import WebhookReceiver

#: What the extras install (by import name): none may be needed on the base path.
OPTIONAL = (
    "hubspot",
    "simple_salesforce",
    "mailchimp_marketing",
    "phonenumbers",
    "psycopg",
    "apscheduler",
    "prometheus_client",
    "openapi_core",
    "snowflake",
    "requests",
)

SITECUSTOMIZE = f"""
import sys

BLOCKED = {set(OPTIONAL)!r}


class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed here)", name=name)
        return None


sys.meta_path.insert(0, Blocked())
"""

FILE_SYNC = """
  out: {type: file, path: out/users.csv}
"""


def base_env(tmp_path: Path, **more: str) -> dict[str, str]:
    blocker = tmp_path / "without-extras"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    return {**os.environ, "PYTHONPATH": str(blocker), **more}


def activation(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "activation.cli", *args], env=env, capture_output=True, text=True, timeout=300)


def test_the_blocker_refuses_every_optional_package(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    for module in OPTIONAL:
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "not installed here" in probe.stderr, module


def test_validate_plan_run_with_webhook_and_file_need_no_extra(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "p", rx, n=30, orders=300)
    text = (p.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:" + FILE_SYNC, 1)
    (p.root / "syncs.yaml").write_text(
        text + '  users_to_file: {from: user, to: out, match: {email: email}, fields: {plan: plan}, schedule: "*/30 * * * *"}\n'
    )  # cron: read without APScheduler
    env = base_env(tmp_path, HOOK_URL=rx.url)
    for command in ("validate", "plan", "run"):
        done = activation(env, command, "-p", str(p.root))
        assert done.returncode == 0, f"activation {command}: {done.stdout}{done.stderr}"
    assert len(rx.records("users_to_hook")) == 30 and len(rx.records("whales_to_hook")) == len(p.model_whales()) > 0
    with open(p.root / "out" / "users.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 30
    again = activation(env, "run", "-p", str(p.root), "--json")
    assert again.returncode == 0 and '"status": "up_to_date"' in again.stdout


@pytest.mark.parametrize("command", ["validate", "validate --offline", "plan", "run"])
def test_a_hubspot_sync_without_the_sdk_names_the_extra(tmp_path: Path, rx: WebhookReceiver, command: str) -> None:
    p = make_project(tmp_path / "p", rx, n=5, orders=5)
    text = (p.root / "syncs.yaml").read_text().replace("destinations:\n", 'destinations:\n  hs: {type: hubspot, token: "t"}\n', 1)
    (p.root / "syncs.yaml").write_text(text + "  users_to_hs: {from: user, to: hs, object: contacts, match: {email: email}}\n")
    done = activation(base_env(tmp_path, HOOK_URL=rx.url), *command.split(), "-p", str(p.root))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "destinations.hs.type: destination type 'hubspot' needs the hubspot extra: pip install 'activation-etl[hubspot]'" in done.stderr
    assert "Traceback" not in done.stderr and rx.request_count == 0


def test_other_extras_are_named_too(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "p", rx, n=5, orders=5)
    env = base_env(tmp_path, HOOK_URL=rx.url)
    daemon = activation(env, "daemon", "-p", str(p.root))
    assert daemon.returncode == 2 and "pip install 'activation-etl[daemon]'" in daemon.stderr
    text = (p.root / "syncs.yaml").read_text()
    (p.root / "syncs.yaml").write_text(
        text.replace(
            "warehouse: {type: duckdb, path: warehouse.duckdb}", "warehouse: {type: postgres, url: 'postgresql://x@127.0.0.1/test'}"
        )
    )
    postgres = activation(env, "plan", "-p", str(p.root))
    assert postgres.returncode == 2 and "pip install 'activation-etl[postgres]'" in postgres.stderr
