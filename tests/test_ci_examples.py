"""The CI and pre-commit examples do what they say: their commands run as written, on a
real git repository; and the JSON schema editors use accepts the example project."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
from conftest import Project
from ruamel.yaml import YAML
from test_review import edit, git, repo

from activation.project.spec import json_schema
from activation_emulators.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(path: Path) -> object:
    return YAML(typ="safe").load(path.read_text())


def test_pre_commit_hooks_run_offline_and_fail_on_an_invalid_project(project: Project) -> None:
    hooks = load_yaml(ROOT / ".pre-commit-hooks.yaml")
    assert isinstance(hooks, list) and [h["id"] for h in hooks] == ["activation-validate", "activation-lint"]
    example = load_yaml(ROOT / "examples" / "pre-commit-config.yaml")
    used = [h for r in example["repos"] for h in r["hooks"]]  # type: ignore[index]
    assert {h["id"] for h in used} <= {h["id"] for h in hooks}
    for hook in hooks:
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        files = re.compile(hook["files"])
        assert all(files.search(f) for f in ("syncs.yaml", "analytics/syncs/users.yml", "audiences/x.sql"))
        assert not files.search("README.md")
        command, *args = shlex.split(hook["entry"])
        assert command == "activation" and "--offline" in args
        extra = next(h.get("args", []) for h in used if h["id"] == hook["id"])
        extra = [a for a in extra if a not in ("--project", "analytics")]  # the example's own directory
        # pre-commit appends the config's args to the entry; the project is ours here
        assert project.cli(*args, *extra).exit_code == 0
    (project.root / "syncs.yaml").write_text((project.root / "syncs.yaml").read_text().replace("mode: upsert", "mdoe: upsert"))
    result = project.cli("validate", "--offline", expect=2)
    assert "unknown key 'mdoe' (did you mean 'mode'?)" in result.output


def _run_steps(workflow: dict, top: Path, env: dict[str, str]) -> dict[str, str]:
    """Run the workflow's `activation` steps with bash, as GitHub Actions would."""
    outputs = top / "github_output"
    job = next(iter(workflow["jobs"].values()))
    for step in job["steps"]:
        script = step.get("run", "")
        if "activation " not in script or "pip install" in script:
            continue
        step_env = {k: v for k, v in (step.get("env") or {}).items() if "${{" not in v}
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=top,
            capture_output=True,
            text=True,
            env={
                **env,
                **job.get("env", {}),
                **step_env,
                "BASE_REF": "main",
                "GITHUB_OUTPUT": str(outputs),
                "GITHUB_STEP_SUMMARY": str(top / "summary.md"),
            },
        )
        assert done.returncode == 0, f"step {step['name']!r} failed:\n{done.stdout}\n{done.stderr}"
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def test_the_github_workflow_validates_and_writes_the_plan_comment(tmp_path: Path, rx: WebhookReceiver) -> None:
    workflow = load_yaml(ROOT / "examples" / "github-actions" / "activation.yml")
    assert isinstance(workflow, dict)
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert workflow["jobs"]["plan"]["env"]["PROJECT"] == "analytics"
    p = repo(tmp_path, rx)  # the project lives in analytics/ of the repository, as in the workflow
    top = p.root.parent
    git(top, "update-ref", "refs/remotes/origin/main", "main")  # what actions/checkout fetches
    edit(p.root / "syncs.yaml", 'where: "ltv >= 100"', 'where: "ltv >= 110"')
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HOOK_URL": rx.url}

    outputs = _run_steps(workflow, top, env)
    assert outputs == {"exit": "0"}
    comment = (top / "plan.md").read_text()
    assert comment.startswith("<!-- activation-plan -->\n## activation plan: working tree vs `origin/main")
    assert "| `whales_to_hook` | reads a change | `hook` | audience |" in comment
    assert (top / "summary.md").read_text() == comment

    (top / "github_output").unlink()
    edit(p.root / "syncs.yaml", "from: whales", "from: whale")  # an invalid change: the comment says why
    assert _run_steps(
        {"jobs": {"plan": {**workflow["jobs"]["plan"], "steps": [s for s in workflow["jobs"]["plan"]["steps"] if s.get("id") == "plan"]}}},
        top,
        env,
    ) == {"exit": "2"}
    comment = (top / "plan.md").read_text()
    assert "## activation plan: the project is invalid" in comment and "`from: whale` names no entity or audience" in comment


def test_the_json_schema_for_editors_accepts_the_example_project_and_flags_typos() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    text = (ROOT / "syncs.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=./.activation/schema.json")
    document = YAML(typ="safe").load(text)
    jsonschema.validate(document, schema)
    document["syncs"] = {"s": {"from": "user", "to": "crm", "mdoe": "mirror"}}
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(document)]
    assert any("'mdoe' was unexpected" in e for e in errors), errors
    assert json.loads(json.dumps(schema)) == schema


class Trap:
    """A TCP port that counts the connections made to it (and answers nothing useful)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_validate_lint_and_plan_make_no_network_call_unless_remote(project: Project) -> None:
    trap = Trap()
    try:
        url = f"http://127.0.0.1:{trap.port}"
        y = project.root / "syncs.yaml"
        edit(
            y,
            "destinations:\n",
            "destinations:\n"
            f"  hubspot: {{type: hubspot, token: hs-token, base_url: '{url}', max_retries: 0}}\n"
            f"  salesforce: {{type: salesforce, instance_url: 'https://x.my.salesforce.com', session_id: sf-token, "
            f"transport_url: '{url}', max_retries: 0}}\n",
        )
        y.write_text(
            y.read_text() + "  to_hubspot: {from: user, to: hubspot, object: contacts, match: {email: email}, fields: {plan: plan}}\n"
            "  to_salesforce: {from: user, to: salesforce, object: Contact, match: {Email__c: email}}\n"
        )
        project.env["HOOK_URL"] = url  # the webhook destination too
        for args in (["validate"], ["validate", "--offline"], ["lint"], ["plan"], ["plan", "--format", "markdown"]):
            project.cli(*args)
        assert trap.connections == 0, "a command without --remote connected to a destination"
        project.cli("validate", "--remote", expect=2)  # the trap is no HubSpot: the check fails, after trying
        assert trap.connections > 0
    finally:
        trap.close()
