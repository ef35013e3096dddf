"""On a machine without HubSpot's OpenAPI documents (a clone without shared/ beside it) the
emulator still serves the same routes, unvalidated, and says so; its routes are exactly the
documents' paths for the operations it implements."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import activation
import activation_emulators
from activation_emulators.hubspot.spec import ROUTES, find_specs_dir, load_documents

SCRIPT = """
from hubspot import HubSpot
from activation_emulators.hubspot import HubSpotEmulator
with HubSpotEmulator(tokens={"t"}) as emu:
    client = HubSpot(access_token="t", host=emu.url)
    client.crm.contacts.batch_api.upsert({"inputs": [{"id": "a@example.com", "idProperty": "email", "properties": {"firstname": "A"}}]})
    lists = client.crm.lists.lists_api.create({"name": "L", "objectTypeId": "0-1", "processingType": "MANUAL"})
    print(emu.unvalidated_reason is not None, emu.validation, len(emu.records("contacts")), len(emu.lists()))
"""


def test_without_the_documents_the_emulator_serves_unvalidated_and_says_so(tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    for package in (activation, activation_emulators):
        shutil.copytree(Path(package.__file__).parent, copy / package.__name__, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "off", "1", "1"]


def test_the_routes_are_the_documents_paths_of_what_the_emulator_implements() -> None:
    try:
        docs = load_documents(find_specs_dir())
    except FileNotFoundError as e:
        pytest.skip(f"HubSpot's OpenAPI documents are not on this machine: {e}")
    here = Path(activation_emulators.__file__).parent / "hubspot"
    api = "".join((here / name).read_text() for name in ("api.py", "lists.py"))
    implemented = set(re.findall(r'"((?:GET|POST|PUT|PATCH|DELETE) /crm/v3/[^"]+)"', api))

    def generic(template: str) -> str:
        return re.sub(r"^/crm/v3/objects/(contacts|companies)", "/crm/v3/objects/{objectType}", template)

    documented = {
        (name, method, template)
        for name, doc in docs.items()
        for template, item in doc["paths"].items()
        for method in item
        if f"{method.upper()} {generic(template)}" in implemented
    }
    assert set(ROUTES) == documented
