"""`plan --base REV` on a real git repository: the config diff and its effect on the same
DuckDB data, checked against values computed here from the source tables."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from ad_destination import ads  # noqa: F401  (a fixture)
from conftest import Project, make_project
from test_warehouses import bigquery, dataset, load, pg, project_for  # noqa: F401  (pg, bigquery: fixtures)

from activation_emulators.webhook import WebhookReceiver

LTV_SQL = "select user_id, sum(amount) as ltv from src.orders group by 1\n"
LTV_SQL_NEW = "select user_id, sum(case when amount > 1 then amount end) as ltv from src.orders group by 1\n"
PLAN_MAPPING = "\"{{ 'enterprise' if row.seats >= 6 else row.plan }}\""
PLANS_SYNC = """
  plans_to_hook:
    from: user
    to: hook
    object: plans
    mode: mirror
    match: {email: email}
    fields: {plan: plan}
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def repo(tmp_path: Path, rx: WebhookReceiver, extra_yaml: str = "", setup: Callable[[Path], None] | None = None) -> Project:
    """The conftest project, its ltv trait in a .sql file, committed on main; the DuckDB
    file is untracked, as in a real repository. main's config has run once."""
    p = make_project(tmp_path / "repo" / "analytics", rx, extra_yaml=extra_yaml)
    (p.root / "traits").mkdir()
    (p.root / "traits" / "ltv.sql").write_text(LTV_SQL)
    edit(p.root / "syncs.yaml", '"select user_id, sum(amount) as ltv from src.orders group by 1"', "traits/ltv.sql")
    if setup is not None:
        setup(p.root / "syncs.yaml")
    top = p.root.parent
    (top / ".gitignore").write_text("*.duckdb\n*.duckdb.wal\n")
    (top / "README.md").write_text("not part of the project\n")
    git(top, "init", "-q", "-b", "main")
    git(top, "config", "user.name", "Reviewer")
    git(top, "config", "user.email", "reviewer@example.com")
    git(top, "add", ".")
    git(top, "commit", "-q", "-m", "syncs")
    p.cli("run")
    git(top, "checkout", "-q", "-b", "change")
    return p


def users(p: Project, ltv_sql: str) -> dict[str, dict[str, Any]]:
    """Each user's columns, and ltv and the engagement score as the trait SQL makes them."""
    rows = p.sql(f"SELECT u.user_id, u.email, u.plan, u.seats, t.ltv FROM src.users u LEFT JOIN ({ltv_sql}) t USING (user_id)")
    out = {}
    for user_id, email, plan, seats, ltv in rows:
        ltv = int(ltv) if ltv is not None else None
        score = (3 if ltv is not None and ltv >= 100 else 1 if ltv is not None else 0) + (2 if seats >= 3 else 0) * 0.5
        out[user_id] = {"email": email, "plan": plan, "seats": seats, "ltv": ltv, "score": score}
    return out


def diff(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The per-key, per-field difference of two mapped row sets."""
    changed = {k: {f: (old[k].get(f), new[k].get(f)) for f in new[k] if old[k].get(f) != new[k].get(f)} for k in new if k in old}
    changed = {k: v for k, v in changed.items() if v}
    fields: dict[str, int] = {}
    for v in changed.values():
        for f in v:
            fields[f] = fields.get(f, 0) + 1
    return {"added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new)), "changed": changed, "fields": fields}


def test_plan_base_reports_the_config_changes_and_exactly_the_rows_they_change(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = repo(tmp_path, rx)
    top = p.root.parent
    # On the branch: a mapping, an audience condition and the trait's .sql file change.
    edit(p.root / "syncs.yaml", "fields: {plan: plan,", f"fields: {{plan: {PLAN_MAPPING},")
    edit(p.root / "syncs.yaml", 'where: "ltv >= 100"', 'where: "ltv >= 110"')
    (p.root / "traits" / "ltv.sql").write_text(LTV_SQL_NEW)
    git(top, "commit", "-q", "-am", "the change")
    warehouse = hashlib.sha256(p.warehouse.read_bytes()).hexdigest()

    review = p.json("plan", "--base", "main")

    assert review["base_commit"] == git(top, "rev-parse", "main").strip()
    assert review["models"] == [
        {
            "kind": "trait",
            "name": "ltv",
            "change": "changed",
            "renamed_from": None,
            "before": LTV_SQL.strip(),
            "after": LTV_SQL_NEW.strip(),
            "diff": ["@@ -1 +1 @@", f"-{LTV_SQL.strip()}", f"+{LTV_SQL_NEW.strip()}"],
        },
        {
            "kind": "audience",
            "name": "whales",
            "change": "changed",
            "renamed_from": None,
            "before": "where: ltv >= 100",
            "after": "where: ltv >= 110",
            "diff": ["@@ -1 +1 @@", "-where: ltv >= 100", "+where: ltv >= 110"],
        },
    ]
    assert review["project_changes"] == [] and review["warnings"] == [] and review["unchanged_syncs"] == []
    by_sync = {s["sync"]: s for s in review["syncs"]}
    assert list(by_sync) == ["users_to_hook", "whales_to_hook"]

    # users_to_hook: the new mapping and the new trait SQL, against the old ones, same data
    before, after = users(p, LTV_SQL), users(p, LTV_SQL_NEW)
    mapped_old = {
        k: {"email": u["email"], "plan": u["plan"], "ltv": u["ltv"], "score": u["score"], "plan_upper": u["plan"].upper()}
        for k, u in before.items()
    }
    mapped_new = {
        k: {
            "email": u["email"],
            "plan": "enterprise" if u["seats"] >= 6 else u["plan"],
            "ltv": u["ltv"],
            "score": u["score"],
            "plan_upper": u["plan"].upper(),
        }
        for k, u in after.items()
    }
    want = diff(mapped_old, mapped_new)
    assert want["fields"]["ltv"] == 8 and 0 < want["fields"]["plan"] < 200  # the scenario changes a few rows
    s = by_sync["users_to_hook"]
    assert s["status"] == "changed" and s["new_target"] is False
    assert s["config_changes"] == [{"path": "fields.plan", "before": "plan", "after": PLAN_MAPPING.strip('"')}]
    assert s["upstream_changes"] == ["trait ltv"]
    assert (s["base_rows"], s["delivered"]) == (200, 200)
    effect = s["effect"]
    assert effect["counts"] == {
        "model_rows": 200,
        "delivered": 200,
        "added": 0,
        "changed": len(want["changed"]),
        "removed": 0,
        "unchanged": 200 - len(want["changed"]),
        "rejected": 0,
        "released": 0,
    }
    assert effect["field_changes"] == want["fields"]
    first = sorted(want["changed"])[:5]
    assert effect["changed_samples"] == [
        {"key": k, "fields": {f: {"before": b, "after": a} for f, (b, a) in want["changed"][k].items()}} for k in first
    ]

    # whales_to_hook: its config is unchanged, but the audience condition and the trait moved members
    members = lambda us, floor: {k: {"email": u["email"]} for k, u in us.items() if u["ltv"] is not None and u["ltv"] >= floor}  # noqa: E731
    want = diff(members(before, 100), members(after, 110))
    assert want["removed"] and not want["added"] and not want["changed"]
    w = by_sync["whales_to_hook"]
    assert w["status"] == "unchanged" and w["config_changes"] == []
    assert w["upstream_changes"] == ["trait ltv", "audience whales"]
    c = w["effect"]["counts"]
    assert (c["delivered"], c["model_rows"], c["added"], c["changed"], c["removed"]) == (
        len(members(before, 100)),
        len(members(after, 110)),
        0,
        0,
        len(want["removed"]),
    )
    assert w["effect"]["removed_samples"] == [{"key": k, "email": before[k]["email"]} for k in want["removed"][:5]]
    assert w["effect"]["blocked"] is None  # 12 of 82 is under max_removal 20%

    # read-only: neither the working tree nor the warehouse changed
    assert git(top, "status", "--porcelain") == ""
    assert hashlib.sha256(p.warehouse.read_bytes()).hexdigest() == warehouse

    md = p.cli("plan", "--base", "main", "--format", "markdown").stdout
    table = [line for line in md.splitlines() if line.startswith("| `")]
    assert table == [
        f"| `users_to_hook` | changed | `hook` | upsert | 200 | 200 | 0 | {effect['counts']['changed']} | 0 | 0 |",
        f"| `whales_to_hook` | reads a change | `hook` | audience | {c['delivered']} | {c['model_rows']} | 0 | 0 | {c['removed']} | 0 |",
    ]


def test_plan_base_warns_for_a_removed_sync_a_renamed_audience_and_a_changed_match_key(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = repo(tmp_path, rx, extra_yaml=PLANS_SYNC)
    y = p.root / "syncs.yaml"
    text = y.read_text()
    start = text.index("  users_to_hook:")
    y.write_text(text[:start] + text[text.index("  whales_to_hook:") :])  # delete the sync
    edit(y, "  whales: {entity: user", "  big_spenders: {entity: user")
    edit(y, "from: whales", "from: big_spenders")
    edit(y, "object: plans\n    mode: mirror\n    match: {email: email}", "object: plans\n    mode: mirror\n    match: {user_id: user_id}")
    git(p.root, "commit", "-q", "-am", "risky")  # (uncommitted edits would count too: the working tree is compared)

    review = p.json("plan", "--base", "main")
    got = [(w["kind"], w["sync"], w["message"]) for w in review["warnings"]]
    assert got == [
        (
            "sync_removed",
            "users_to_hook",
            "sync users_to_hook is deleted: the 200 rows it delivered stay at hook / contacts; nothing will update them any more",
        ),
        (
            "match_changed",
            "plans_to_hook",
            "match changed from email to user_id: the destination identifies records by "
            "it, so all 200 rows are sent as records keyed by user_id, and the 200 rows it delivered keyed by email stay at "
            "hook / plans (orphaned, or duplicated where the destination cannot merge them)",
        ),
        (
            "audience_renamed",
            "whales_to_hook",
            "audience whales was renamed to big_spenders; sync whales_to_hook now "
            "reads big_spenders: every member of whales is in big_spenders, nothing is removed",
        ),
        (
            "field_not_seen",
            "plans_to_hook",
            "maps `user_id`, never delivered to hook / plans before: make sure the "
            "field exists there (`activation validate --remote` asks the destination)",
        ),
        (
            "lint:unused-trait",
            None,
            "trait engagement: no sync, score, audience or model reads it: it is computed on "
            "every run for nothing (delete it, or map it in a sync's `fields:`)",
        ),
    ]
    by_sync = {s["sync"]: s for s in review["syncs"]}
    assert by_sync["users_to_hook"]["status"] == "removed" and by_sync["users_to_hook"]["effect"] is None
    assert by_sync["users_to_hook"]["delivered"] == 200
    plans = by_sync["plans_to_hook"]
    assert plans["new_target"] is True
    assert plans["config_changes"] == [
        {"path": "match.email", "before": "email", "after": None},
        {"path": "match.user_id", "before": None, "after": "user_id"},
    ]
    assert plans["effect"]["counts"]["added"] == 200  # a first load keyed by user_id
    whales = by_sync["whales_to_hook"]
    assert whales["config_changes"] == [{"path": "from", "before": "whales", "after": "big_spenders"}]
    assert whales["effect"]["counts"]["removed"] == 0 and whales["effect"]["counts"]["changed"] == 0
    assert review["models"] == [
        {
            "kind": "audience",
            "name": "big_spenders",
            "change": "renamed",
            "renamed_from": "whales",
            "before": "where: ltv >= 100",
            "after": "where: ltv >= 100",
            "diff": [" where: ltv >= 100"],
        }
    ]

    md = p.cli("plan", "--base", "main", "--format", "markdown").stdout
    assert md.startswith("<!-- activation-plan -->\n## activation plan: working tree vs `main (")
    heads = [line for line in md.splitlines() if line.startswith("### ")]
    assert heads == ["### Warnings", "### Effect on today's data", "### Definitions changed"]
    warnings = md[md.index("### Warnings") : md.index("### Effect")]
    assert warnings.count("- ⚠️") == 5 and "`sync_removed`" in warnings and "`match_changed`" in warnings
    assert "| `users_to_hook` | removed | `hook` | upsert | 200 | — | — | — | — | — |" in md
    assert "| `plans_to_hook` | changed | `hook` | mirror | 200 | 200 | 200 | 0 | 0 | 0 |" in md
    assert md.count("<details>") == md.count("</details>") >= 2


def test_a_new_sync_shows_its_first_load_and_a_bad_revision_is_a_clear_error(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = repo(tmp_path, rx)
    (p.root / "syncs.yaml").write_text((p.root / "syncs.yaml").read_text() + PLANS_SYNC)  # uncommitted: the working tree counts
    review = p.json("plan", "plans_to_hook", "--base", "main")
    assert [s["sync"] for s in review["syncs"]] == ["plans_to_hook"]
    s = review["syncs"][0]
    assert s["status"] == "added" and s["base_rows"] is None
    assert s["effect"]["counts"]["added"] == 200 and s["effect"]["counts"]["delivered"] == 0

    bad = p.cli("plan", "--base", "nope", expect=2)
    assert "--base nope: unknown revision 'nope'" in bad.output
    assert "cannot be combined" in p.cli("plan", "--base", "main", "--sandbox", expect=2).output


def test_a_project_missing_at_the_base_makes_every_sync_new(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "repo", rx)
    git(p.root, "init", "-q", "-b", "main")
    git(p.root, "config", "user.name", "Reviewer")
    git(p.root, "config", "user.email", "reviewer@example.com")
    (p.root / "other.txt").write_text("x")
    git(p.root, "add", "other.txt")
    git(p.root, "commit", "-q", "-m", "before the project")
    review = p.json("plan", "--base", "main")
    assert review["warnings"][0]["kind"] == "base_invalid"
    assert {s["sync"]: s["status"] for s in review["syncs"]} == {"users_to_hook": "added", "whales_to_hook": "added"}
    text = p.cli("plan", "--base", "main").stdout
    assert "every sync is new" in text and "users_to_hook (added)" in text


def test_an_audience_below_the_platform_minimum_and_removals_above_max_removal(tmp_path: Path, rx: WebhookReceiver, ads: None) -> None:
    def with_ads(y: Path) -> None:
        edit(y, "destinations:\n", "destinations:\n  ads: {type: file, path: out/ads.csv}\n")

    p = repo(tmp_path, rx, extra_yaml="  whales_to_ads: {from: whales, to: ads, mode: audience, match: {email: email}}\n", setup=with_ads)
    edit(p.root / "syncs.yaml", 'where: "ltv >= 100"', 'where: "ltv >= 130"')
    members = lambda floor: {k for k, u in users(p, LTV_SQL).items() if u["ltv"] >= floor}  # noqa: E731
    before, after = len(members(100)), len(members(130))
    assert after < 100 and (before - after) / before > 0.2

    review = p.json("plan", "--base", "main", expect=1)  # a run would stop: exit 1, as plan
    ads_warnings = [(w["kind"], w["message"]) for w in review["warnings"] if w["sync"] == "whales_to_ads"]
    assert ads_warnings == [
        (
            "removal_above_limit",
            f"the change removes {before - after} of the {before} rows the base config maps "
            f"({(before - after) / before:.0%}), above max_removal 20%: they would be removed at ads, and the next run "
            "stops unless run with --allow-removal",
        ),
        ("audience_below_minimum", f"the audience would have {after} members, below the 100 file needs to serve it"),
    ]
    md = p.cli("plan", "--base", "main", "--format", "markdown", expect=1).stdout
    assert md.index("`removal_above_limit`") < md.index("`audience_below_minimum`") < md.index("### Effect")


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_plain_plan_formats(project: Project, fmt: str) -> None:
    result = project.cli("plan", "--format", fmt)
    if fmt == "json":
        assert result.stdout.lstrip().startswith("{")
        return
    md = result.stdout
    assert md.startswith("<!-- activation-plan -->\n## activation plan")
    assert "| `users_to_hook` |  | `hook` | upsert | 0 | 200 | 200 | 0 | 0 | 0 |" in md
    assert "<details><summary>Sample rows (up to 3 per change)</summary>" in md
    assert md.count("| + added |") == 6  # 3 per sync
    bare = project.cli("plan", "--format", "markdown", "--samples", "0").stdout
    assert "<details>" not in bare and "user1@example.com" not in bare and "| `users_to_hook` |" in bare


def test_no_change_then_a_destination_change_shown_without_its_secret(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = repo(tmp_path, rx)
    same = p.json("plan", "--base", "main")
    assert (same["syncs"], same["unchanged_syncs"], same["warnings"]) == ([], ["users_to_hook", "whales_to_hook"], [])

    edit(
        p.root / "syncs.yaml",
        'hook: {type: webhook, url: "${HOOK_URL}",',
        'hook: {type: webhook, url: "${HOOK_URL}/v2", headers: {Authorization: "Bearer s3cr3t-literal-token"},',
    )
    review = p.json("plan", "--base", "main")
    assert review["project_changes"] == [
        {"path": "destinations.hook.url", "before": "${HOOK_URL}", "after": "${HOOK_URL}/v2"},
        {"path": "destinations.hook.headers.Authorization", "before": None, "after": "***"},
    ]
    assert [(w["kind"], w["sync"]) for w in review["warnings"]] == [
        ("destination_changed", "users_to_hook"),
        ("destination_changed", "whales_to_hook"),
    ]
    assert review["warnings"][0]["message"] == (
        "destination hook's settings changed (url, headers.Authorization): the state still records the 200 rows "
        "it delivered, so if it now points to another endpoint or account, that one receives only later "
        "changes (`activation reset users_to_hook` makes the next run send everything)"
    )
    assert all(s["upstream_changes"] == ["destination hook"] and s["effect"]["counts"]["changed"] == 0 for s in review["syncs"])
    assert "s3cr3t" not in json.dumps(review)
    for fmt in ("text", "markdown"):
        assert "s3cr3t" not in p.cli("plan", "--base", "main", "--format", fmt).output


def test_a_mode_change_resends_without_changing_rows_and_a_key_change_removes_and_adds(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = repo(tmp_path, rx)
    edit(p.root / "syncs.yaml", "mode: upsert", "mode: mirror")
    edit(p.root / "syncs.yaml", "from: whales\n    to: hook", "from: whales\n    key: email\n    to: hook")
    review = p.json("plan", "--base", "main", expect=1)  # re-keying every member is a removal above max_removal
    users, whales = review["syncs"]
    assert users["effect"]["counts"] | {"unchanged": 0} == {
        "model_rows": 200,
        "delivered": 200,
        "added": 0,
        "changed": 0,
        "removed": 0,
        "unchanged": 0,
        "rejected": 0,
        "released": 0,
    }
    n = whales["effect"]["counts"]["model_rows"]
    assert (whales["effect"]["counts"]["added"], whales["effect"]["counts"]["removed"]) == (n, n)
    assert [(w["kind"], w["sync"]) for w in review["warnings"]] == [
        ("removal_above_limit", "whales_to_hook"),
        ("key_changed", "whales_to_hook"),
        ("mode_changed", "users_to_hook"),
    ]
    assert review["warnings"][2]["message"] == (
        "mode upsert → mirror: the next run resends every row once (200: delivered rows are tagged with the mode), "
        "and rows that leave the model are now removed at the destination"
    )


def test_every_warehouse_gives_the_same_review(tmp_path: Path, pg: tuple[Any, str], bigquery: Any) -> None:
    """One change reviewed on each warehouse: the same config diff, counts, samples, warnings."""
    from activation.project.loader import load_project
    from activation.review import review_project
    from activation_emulators.redshift import RedshiftGuard, prepare

    pg_engine, tag = pg
    prepare(pg_engine)
    got = {}
    for kind in ("duckdb", "postgres", "redshift", "bigquery"):
        with WebhookReceiver() as rx, RedshiftGuard():
            tag_of_kind = tag + ("r" if kind == "redshift" else "")  # (Redshift's schemas on the same server)
            root, engine, src = project_for(kind, tmp_path / kind, rx.url, tag_of_kind)
            load(engine, src, dataset())
            engine.dispose()
            for args in (["init", "-q", "-b", "main"], ["config", "user.name", "R"], ["config", "user.email", "r@example.com"]):
                git(root, *args)
            (root / ".gitignore").write_text("*.duckdb*\n")
            git(root, "add", ".")
            git(root, "commit", "-q", "-m", "base")
            Project(root, rx).cli("run")
            y = root / "syncs.yaml"
            edit(y, 'where: "ltv >= 100"', 'where: "ltv >= 120"')
            edit(y, "fields: {plan: plan,", 'fields: {plan: "{{ row.plan | upper }}",')
            edit(y, "sum(amount) as ltv", "sum(amount) + 5 as ltv")
            review = review_project(load_project(root), "main").model_dump(exclude={"base", "base_commit"})
            got[kind] = json.loads(json.dumps(review, default=str).replace(f"_{tag_of_kind}", "_TAG"))
            if kind == "redshift":
                with pg_engine.begin() as c:
                    for schema in (f"src_{tag_of_kind}", f"act_{tag_of_kind}", f"state_{tag_of_kind}"):
                        c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    users = {s["sync"]: s for s in got["duckdb"]["syncs"]}["users"]["effect"]
    assert users["counts"]["changed"] == 150 and users["field_changes"]["plan"] == 150
    for kind in ("postgres", "redshift", "bigquery"):
        assert got[kind] == got["duckdb"], f"{kind} differs from duckdb"


def test_a_base_config_that_no_longer_fits_the_data_is_reported_not_fatal(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = repo(tmp_path, rx)
    p.sql("ALTER TABLE src.users RENAME COLUMN plan TO tier")  # the warehouse moved on; the branch follows
    edit(p.root / "syncs.yaml", "fields: {plan: plan,", "fields: {plan: tier,")
    edit(p.root / "syncs.yaml", '"{{ row.plan | upper }}"', '"{{ row.tier | upper }}"')
    review = p.json("plan", "--base", "main")
    [warning] = review["warnings"]
    assert warning["kind"] == "base_not_computed" and warning["sync"] == "users_to_hook"
    assert "fields.plan uses column 'plan', which the model lacks" in warning["message"]
    assert warning["message"].endswith("its effect is shown as a first load")
    users = review["syncs"][0]
    assert users["base_rows"] is None and users["effect"]["counts"]["added"] == 200
