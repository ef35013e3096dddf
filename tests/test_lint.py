"""`activation lint`: unused traits and audiences, PII sent unhashed to an ad platform,
schedules tighter than the destination's quota; exit codes; the schedule parser."""

from __future__ import annotations

import pytest
from ad_destination import ads  # noqa: F401  (a fixture)
from conftest import Project

from activation.lint import schedule_interval
from activation.project.schedule import parse_schedule

ADS_DESTINATION = "  ads: {type: file, path: out/ads.csv}\n"
EXTRA = """
  whales_to_ads:
    from: whales
    to: ads
    mode: audience
    match: {email: email}
    fields: {email_plain: email, plan: plan}
    schedule: every 5s
  users_to_hook_nightly:
    from: user
    to: hook
    object: nightly
    match: {email: email}
    schedule: "*/5 * * * *"
"""


def lint_project(project: Project) -> Project:
    y = project.root / "syncs.yaml"
    text = y.read_text()
    text = text.replace("syncs:\n", "syncs:\n" + EXTRA.lstrip("\n"), 1)
    text = text.replace("destinations:\n", "destinations:\n" + ADS_DESTINATION, 1)
    text = text.replace("audiences:\n", 'audiences:\n  tiny: {entity: user, where: "seats2 > 5"}\n', 1)
    text = text.replace("traits:\n", 'traits:\n  seats2: {entity: user, sql: "select user_id, seats * 2 as seats2 from src.users"}\n', 1)
    y.write_text(text)
    return project


def test_lint_finds_unused_models_unhashed_pii_and_schedules_over_quota(project: Project, ads: None) -> None:
    p = lint_project(project)
    report = p.json("lint")
    got = [(f["rule"], f["subject"], f["location"], f["message"]) for f in report["findings"]]
    assert got == [
        (
            "unused-trait",
            "trait seats2",
            "syncs.yaml:8:3",
            "only audience tiny reads it, and no sync reads that: it is computed on every run for nothing "
            "(delete it, or map it in a sync's `fields:`)",
        ),
        (
            "unused-audience",
            "audience tiny",
            "syncs.yaml:18:3",
            "no sync, score, audience or model reads it: it is computed on every run for nothing (delete it, or sync it (`from: tiny`))",
        ),
        (
            "pii-unhashed",
            "sync whales_to_ads",
            "syncs.yaml:29:14",
            "`fields.email_plain` sends PII (email) to ad destination 'ads' unhashed (it hashes email): map it to a "
            "field the destination hashes, or leave it out",
        ),
        (
            "schedule-quota",
            "sync whales_to_ads",
            "syncs.yaml:30:5",
            f"schedule 'every 5s' runs it every 5s, but sending all {len(p.model_whales())} rows takes about 8s at 1 requests/s "
            "× 10 rows per request (destination 'ads'): a first load or a mapping change overlaps the next runs; schedule it "
            "less often or raise the destination's requests_per_second within your quota",
        ),
    ]
    assert report["ok"] is False and report["notes"] == []
    lines = (p.root / "syncs.yaml").read_text().splitlines()
    assert lines[7].startswith("  seats2:") and lines[17].startswith("  tiny:")  # file:line:column of the key
    assert lines[28].index("email_plain") == 13 and lines[29].index("schedule") == 4

    # offline: no warehouse, so no row counts; the rule says it was skipped
    offline = p.json("lint", "--offline")
    assert [f["rule"] for f in offline["findings"]] == ["unused-trait", "unused-audience", "pii-unhashed"]
    assert offline["notes"] == ["schedule-quota: not checked offline (it needs each model's row count from the warehouse)"]
    # warnings do not fail unless --strict
    text = p.cli("lint", "--offline").stdout
    assert "syncs.yaml:29:14: pii-unhashed: sync whales_to_ads:" in text and "3 findings" in text
    p.cli("lint", "--offline", "--strict", expect=1)


def test_a_clean_project_has_no_findings_and_an_invalid_one_exits_2(project: Project) -> None:
    assert project.json("lint") == {"ok": True, "findings": [], "notes": []}
    assert "no findings" in project.cli("lint", "--strict").stdout
    (project.root / "syncs.yaml").write_text("version: 1\nsyncs: {x: {from: nope, to: nope}}\n")
    project.cli("lint", "--offline", expect=2)


def test_a_non_ad_destination_may_receive_pii(project: Project) -> None:
    # without the ad plugin, `file` is not an ad platform: an email field is expected there
    p = lint_project(project)
    assert [f["rule"] for f in p.json("lint", "--offline")["findings"]] == ["unused-trait", "unused-audience"]


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("*/15 * * * *", 900),
        ("0 * * * *", 3600),
        ("* * * * *", 60),
        ("0 9 * * 1-5", 86400),
        ("0,30 9-17 * * *", 1800),
        ("5 */6 * * *", 6 * 3600),
        ("every 2h", 7200),
        ("every 30m", 1800),
        ("every 45s", 45),
        ("manual", None),
        (None, None),
        ("@hourly", 3600),
        ({"every": "10m"}, 600),
    ],
)
def test_schedule_interval(schedule: str | None, seconds: float | None) -> None:
    assert schedule_interval(parse_schedule(schedule) if schedule is not None else None) == seconds
