"""What a new user hit in their first hour (issue 16), each kept fixed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project, hubspot_documents_or_skip


def test_validate_names_the_trait_whose_sql_returns_duplicate_keys(project: Project) -> None:
    text = (project.root / "syncs.yaml").read_text()
    # a join that repeats users: each order row of a user, not one row per user
    text = text.replace(
        'sql: "select user_id, sum(amount) as ltv from src.orders group by 1"', 'sql: "select user_id, amount as ltv from src.orders"'
    )
    (project.root / "syncs.yaml").write_text(text)
    errors = project.json("validate", expect=2)["errors"]
    assert len(errors) == 1, errors  # the trait, not every model that reads it
    (error,) = errors
    assert "trait ltv" in error and "syncs.yaml:" in error
    assert "duplicate keys (user_id): 200 keys appear more than once, e.g. u0000 (4 rows)" in error
    # fixed, it validates; duplicates in the entity's own table name the entity
    (project.root / "syncs.yaml").write_text(
        (project.root / "syncs.yaml")
        .read_text()
        .replace(
            'sql: "select user_id, amount as ltv from src.orders"', 'sql: "select user_id, sum(amount) as ltv from src.orders group by 1"'
        )
    )
    project.cli("validate")
    project.sql("INSERT INTO src.users SELECT * FROM src.users WHERE user_id IN ('u0007', 'u0008')")
    (error,) = project.json("validate", expect=2)["errors"]
    assert "entity user" in error and "2 keys appear more than once, e.g. u0007 (2 rows), u0008 (2 rows)" in error


def test_validate_needs_destination_secrets_only_with_remote(project: Project) -> None:
    """A CI job with warehouse credentials only keeps the column checks: secrets are needed
    where a destination is contacted (--remote, run), not by validate."""
    text = (project.root / "syncs.yaml").read_text()
    text = text.replace('url: "${HOOK_URL}"', 'url: "${HOOK_URL_UNSET_IN_CI}"')
    text = text.replace("destinations:\n", 'destinations:\n  hs: {type: hubspot, token: "${HUBSPOT_TOKEN_UNSET_IN_CI}"}\n', 1)
    text += "  users_to_hs:\n    from: user\n    to: hs\n    object: contacts\n    match: {email: email}\n    fields: {ltv: nope}\n"
    (project.root / "syncs.yaml").write_text(text)
    errors = project.json("validate", expect=2)["errors"]
    assert len(errors) == 1 and "fields.ltv uses column 'nope', which the model lacks" in errors[0], errors
    (project.root / "syncs.yaml").write_text(text.replace("fields: {ltv: nope}", "fields: {ltv: ltv}"))
    project.cli("validate")
    remote = project.json("validate", "--remote", expect=2)["errors"]
    assert any("HUBSPOT_TOKEN_UNSET_IN_CI is not set" in e for e in remote) and any("HOOK_URL_UNSET_IN_CI is not set" in e for e in remote)
    assert any("HOOK_URL_UNSET_IN_CI is not set" in e for e in project.json("run", expect=2)["errors"])


def test_run_status_and_history_say_one_vocabulary(project: Project) -> None:
    """`run --json` said blocked and up_to_date while status/history stored failed and success,
    and rows the destination rejected appeared under "failed"."""
    project.rx.reject_keys({"u0003": "invalid email"})
    ran = project.json("run", "users_to_hook", expect=1)["syncs"][0]
    assert (ran["status"], ran["rejected_by_destination"]) == ("partial", 1)
    project.rx.reject_keys({})
    assert project.json("run", "users_to_hook")["syncs"][0]["status"] == "success"  # the rejected row, resent
    assert project.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date"
    runs = project.json("history", "users_to_hook")["runs"]
    assert [r["status"] for r in runs] == ["up_to_date", "success", "partial"]
    assert [r["rejected_by_destination"] for r in runs] == [0, 0, 1] and all("failed" not in r for r in runs)
    project.cli("run", "whales_to_hook")
    project.sql("DELETE FROM src.orders")  # an empty audience: the removal guard stops the run
    assert project.json("run", "whales_to_hook", expect=1)["syncs"][0]["status"] == "blocked"
    status = {r["sync"]: r for r in project.json("status", expect=1)["syncs"]}
    assert (status["whales_to_hook"]["status"], status["users_to_hook"]["status"]) == ("blocked", "up_to_date")
    assert status["users_to_hook"]["rejected_by_destination"] == 0 and "failed" not in status["users_to_hook"]
    text = project.cli("status", expect=1).stdout
    assert "blocked" in text and "up_to_date" in text and "failed" not in text
    history = project.cli("history", "users_to_hook").stdout
    assert "[partial]" in history and "rejected by destination 1" in history and "failed" not in history


def test_plan_text_names_each_sample_block_shows_values_whole_on_request_and_diffs_sql(tmp_path: Path) -> None:
    """First-load samples did not name their sync; values were cut with no way to see them
    whole; `plan --base` in text showed a changed SQL trait as two identical cut lines."""
    from test_review import edit, git, repo

    from activation_emulators.webhook import WebhookReceiver

    with WebhookReceiver() as rx:
        p = repo(tmp_path, rx)
        long_plan = "enterprise-" + "x" * 150 + "-END"
        p.sql(f"UPDATE src.users SET plan = '{long_plan}' WHERE user_id = 'u0000'")
        (p.root / "syncs.yaml").write_text(
            (p.root / "syncs.yaml").read_text()
            + """  plans_to_hook:
    from: user
    to: hook
    object: plans
    match: {email: email}
    fields: {plan: plan}
"""
        )
        text = p.cli("plan", "plans_to_hook", "users_to_hook", expect=0).stdout
        assert "plans_to_hook sample rows (of 200 added):" in text
        assert "users_to_hook sample rows (of 1 changed):" in text
        assert "-END" not in text and "`activation plan --full`" in text
        whole = p.cli("plan", "plans_to_hook", "users_to_hook", "--full").stdout
        assert long_plan in whole.replace("\n", "") and "--full`" not in whole
        # a changed SQL trait: the line that changed, once, with - and +
        edit(p.root / "traits" / "ltv.sql", "sum(amount) as ltv", "sum(amount) filter (where amount > 1) as ltv")
        review = p.cli("plan", "--base", "main", "users_to_hook").stdout
        assert "trait ltv (changed):" in review
        assert "-select user_id, sum(amount) as ltv from src.orders group by 1" in review
        assert "+select user_id, sum(amount) filter (where amount > 1) as ltv from src.orders group by 1" in review
        as_json = p.json("plan", "--base", "main", "users_to_hook")
        (model,) = [m for m in as_json["models"] if m["name"] == "ltv"]
        assert model["diff"] == [
            "@@ -1 +1 @@",
            "-select user_id, sum(amount) as ltv from src.orders group by 1",
            "+select user_id, sum(amount) filter (where amount > 1) as ltv from src.orders group by 1",
        ]
        assert git(p.root, "status", "--short")  # the review read the working tree


def test_validate_reports_reference_errors_before_a_warehouse_it_cannot_open(project: Project) -> None:
    text = (project.root / "syncs.yaml").read_text()
    text = text.replace("path: warehouse.duckdb", "path: missing/warehouse.duckdb")
    text = text.replace('where: "ltv >= 100"', 'where: "ltv >= 100 and nope_trait"').replace(
        "    to: hook\n    mode: audience", "    to: hoook\n    mode: audience"
    )
    (project.root / "syncs.yaml").write_text(text)
    offline = project.json("validate", "--offline", expect=2)["errors"]
    assert offline and any("hoook" in e for e in offline)
    errors = project.json("validate", expect=2)["errors"]
    assert errors[: len(offline)] == offline, "the offline findings first"
    assert len(errors) == len(offline) + 1 and "warehouse" in errors[-1] and "missing" in errors[-1]
    # nothing else wrong: the warehouse failure alone, as before
    (project.root / "syncs.yaml").write_text(text.replace(" and nope_trait", "").replace("to: hoook", "to: hook"))
    (alone,) = project.json("validate", expect=2)["errors"]
    assert "cannot open the warehouse" in alone


def test_commands_find_the_project_from_a_subdirectory_but_not_an_included_syncs_yaml(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activation.cli import app

    # syncs/syncs.yaml is an included file of the project, not a project
    (project.root / "syncs" / "deeper").mkdir(parents=True)
    (project.root / "syncs" / "syncs.yaml").write_text("vars:\n  region: eu\n")
    text = (project.root / "syncs.yaml").read_text()
    (project.root / "syncs.yaml").write_text(text.replace("version: 1\n", "version: 1\ninclude: [syncs/*.yaml]\n", 1))
    for where in (project.root / "syncs", project.root / "syncs" / "deeper"):
        monkeypatch.chdir(where)
        result = project.runner.invoke(app, ["validate", "--offline"])
        assert result.exit_code == 0, result.output
        assert "syncs.yaml is valid: 1 entities, 2 traits" in result.stdout
    monkeypatch.chdir(project.root.parent)
    missing = project.runner.invoke(app, ["validate", "--offline"])
    assert missing.exit_code == 2 and "or any parent directory" in missing.output


def test_an_include_pattern_that_matches_no_file_is_an_error(project: Project) -> None:
    text = (project.root / "syncs.yaml").read_text()
    (project.root / "syncs.yaml").write_text(text.replace("version: 1\n", "version: 1\ninclude: [audience/*.yaml]\n", 1))
    (error,) = project.json("validate", "--offline", expect=2)["errors"]
    assert error.startswith("syncs.yaml:3:") and "include pattern 'audience/*.yaml' matches no file" in error


def test_init_writes_a_gitignore_that_keeps_the_schema_and_ignores_the_warehouse(tmp_path: Path) -> None:
    import subprocess

    from typer.testing import CliRunner

    from activation.cli import app

    root = tmp_path / "new"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    assert CliRunner().invoke(app, ["run", "--project", str(root)]).exit_code == 0  # writes the state and out/users.csv
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    untracked = sorted(line[3:] for line in status.splitlines())
    assert untracked == [".activation/schema.json", ".gitignore", "audiences/loyal.yaml", "syncs.yaml", "syncs/traits/orders_90d.sql"], (
        untracked
    )


def test_history_and_status_say_how_many_rejected_rows_they_did_not_show(project: Project) -> None:
    project.rx.reject_keys({f"u{i:04d}": "invalid email" for i in range(60)})
    project.cli("run", "users_to_hook", expect=1)
    text = project.cli("history", "users_to_hook").stdout
    assert text.count("✗ u00") == 50 and "… and 10 more rejected rows (`activation history users_to_hook --rejected 0` shows all)" in text
    whole = project.cli("history", "users_to_hook", "--rejected", "0").stdout
    assert whole.count("✗ u00") == 60 and "more rejected rows" not in whole
    (run,) = project.json("history", "users_to_hook")["runs"]
    assert (len(run["rejected_rows"]), run["rejected_rows_total"]) == (50, 60)
    status = project.cli("status", "users_to_hook", expect=1).stdout
    assert "… and 55 more rejected rows of users_to_hook (`activation history users_to_hook`)" in status


HS_SCRIPT = """
from activation_emulators.hubspot import HubSpotEmulator
with HubSpotEmulator(tokens={"t"}) as emu:
    print(emu.unvalidated_reason is None)
"""


def test_hubspot_documents_are_looked_up_in_one_place_only(tmp_path: Path) -> None:
    """A clone found another clone's copy further up: only shared/ beside the checkout counts."""
    import shutil
    import subprocess
    import sys

    import activation
    import activation_emulators
    from activation_emulators.hubspot.spec import SPEC_FILES

    docs = hubspot_documents_or_skip()
    checkout = tmp_path / "up" / "work" / "clone"
    for package in (activation, activation_emulators):
        shutil.copytree(Path(package.__file__).parent, checkout / package.__name__, ignore=shutil.ignore_patterns("__pycache__"))

    def validated() -> bool:
        out = subprocess.run(
            [sys.executable, "-c", HS_SCRIPT], cwd=tmp_path, env={"PYTHONPATH": str(checkout)}, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip() == "True"

    far = tmp_path / "up" / "shared" / "vendor-specs" / "hubspot"  # two levels up: another clone's
    shutil.copytree(docs, far)
    assert not validated()
    shutil.copytree(docs, tmp_path / "up" / "work" / "shared" / "vendor-specs" / "hubspot")  # beside the checkout
    assert validated()
    assert set(SPEC_FILES) <= {p.name for p in far.iterdir()}


def test_sandbox_says_not_validated_without_the_hubspot_documents(project: Project, tmp_path: Path) -> None:
    text = (project.root / "syncs.yaml").read_text().replace("destinations:\n", "destinations:\n  hs: {type: hubspot}\n", 1)
    (project.root / "syncs.yaml").write_text(
        text + "  to_hs:\n    from: user\n    to: hs\n    object: contacts\n    match: {email: email}\n"
    )
    (tmp_path / "empty").mkdir()
    project.env["ACTIVATION_HUBSPOT_SPECS"] = str(tmp_path / "empty")
    out = " ".join(project.cli("run", "to_hs", "--sandbox").stdout.split())
    assert "requests not validated (HubSpot OpenAPI documents not found in" in out and "invalid requests" not in out


def test_show_previews_a_trait_an_audience_an_entity_and_a_sync_payload_without_writing(project: Project) -> None:
    import hashlib

    model = project.model_users()
    before = hashlib.sha256(project.warehouse.read_bytes()).hexdigest()
    trait = project.json("show", "ltv", "--limit", "3")
    assert trait == {"ok": True, "trait": "ltv", "rows": [{"user_id": k, "ltv": model[k]["ltv"]} for k in ("u0000", "u0001", "u0002")]}
    whales = sorted(k for k, v in model.items() if v["ltv"] is not None and v["ltv"] >= 100 and v["plan"] == "pro")[:5]
    audience = project.json("show", "whales", "--where", "plan = 'pro'", "-n", "5")["rows"]
    assert [r["user_id"] for r in audience] == whales and all(r["ltv"] >= 100 and r["plan"] == "pro" for r in audience)
    entity = project.json("show", "user", "-n", "1")["rows"][0]
    assert entity["email"] == model["u0000"]["email"] and entity["engagement"] == model["u0000"]["score"]
    payload = project.json("show", "users_to_hook", "-n", "2")["rows"]
    assert payload == [{"key": k, **{f: model[k][f] for f in ("email", "plan", "ltv", "score", "plan_upper")}} for k in ("u0000", "u0001")]
    text = project.cli("show", "users_to_hook", "-n", "2").stdout
    assert "sync users_to_hook (mapped payload)" in text and "PRO" in text and "nothing was sent" in text
    assert project.rx.request_count == 0 and hashlib.sha256(project.warehouse.read_bytes()).hexdigest() == before
    assert "more than one statement" in project.cli("show", "ltv", "--where", "1=1; delete from src.users", expect=2).output
    assert "it must only read, but uses DELETE" in project.cli("show", "ltv", "--where", "1 in (delete from x)", expect=2).output
    assert "no sync, trait, audience or entity named 'nope'" in project.cli("show", "nope", expect=2).output
    assert "--where 'nocol > 1': the warehouse rejected it" in " ".join(
        project.cli("show", "ltv", "--where", "nocol > 1", expect=2).output.split()
    )


def test_emulate_serves_a_project_between_runs_and_prints_the_environment(tmp_path: Path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    from ad_project import make_ad_project

    p = make_ad_project(
        tmp_path / "e",
        """
hs: {type: hubspot, token: "${EMU_HS_TOKEN}", base_url: "${EMU_HS_URL:-https://api.hubapi.com}"}
sf:
  type: salesforce
  instance_url: "${EMU_SF_INSTANCE}"
  session_id: "${EMU_SF_SESSION}"
  transport_url: "${EMU_SF_TRANSPORT}"
  username: "${EMU_SF_USER}"
  password: "${EMU_SF_PASSWORD}"
hook: {type: webhook, url: "${EMU_HOOK_URL}", headers: {Authorization: "Bearer ${EMU_HOOK_TOKEN}"}}
""",
        """
people_to_hs: {from: person, to: hs, object: contacts, match: {email: email}, fields: {firstname: first_name, country_code: country}}
people_to_sf: {from: person, to: sf, object: Contact, match: {Ext__c: person_id}, fields: {LastName: last_name}}
members_to_hook: {from: members, to: hook, mode: audience, match: {email: email}}
""",
        n=20,
    )
    p.sql("UPDATE src.people SET email = lower(trim(email))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMU_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "activation.cli", "emulate", "--project", str(p.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # the emulators say when they are ready: no sleep
            lines.append(line.rstrip("\n"))
            if line.startswith("# emulators ready"):
                break
        exports = dict(re.findall(r"^export (\w+)='([^']*)'$", "\n".join(lines), re.M))
        assert {
            "EMU_HS_TOKEN",
            "EMU_HS_URL",
            "EMU_SF_INSTANCE",
            "EMU_SF_SESSION",
            "EMU_SF_TRANSPORT",
            "EMU_SF_USER",
            "EMU_SF_PASSWORD",
            "EMU_HOOK_URL",
            "EMU_HOOK_TOKEN",
        } <= set(exports), lines
        p.env.update(exports)
        first = p.json("run")["syncs"]
        assert [(s["sync"], s["status"], s["acknowledged"]) for s in first] == [
            ("people_to_hs", "success", 20),
            ("people_to_sf", "success", 20),
            ("members_to_hook", "success", 15),
        ]
        again = p.json("run")["syncs"]  # the emulators kept what they received, and the state what was delivered
        assert all(s["status"] == "up_to_date" for s in again), again
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""


def test_plan_points_duplicate_key_rejections_to_validate(project: Project) -> None:
    project.sql("INSERT INTO src.users SELECT * FROM src.users WHERE user_id IN ('u0007', 'u0008')")
    (plan,) = project.json("plan", "users_to_hook", expect=1)["plans"]
    assert plan["rejected_reasons"] == {"duplicate key: several model rows share it": 2}
    assert any("2 keys appear in several rows of 'user': `activation validate` names the trait" in w for w in plan["warnings"])
    assert "entity user" in project.json("validate", expect=2)["errors"][0]
