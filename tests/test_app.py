"""The application facade on its own, without the CLI: a new project (as `activation init`
creates it) validated, planned, run, reported and reset through `activation.app`."""

from __future__ import annotations

from pathlib import Path

import pytest

from activation import app
from activation.project.loader import ProjectError, load_project
from activation.scaffold import scaffold


@pytest.fixture
def project(tmp_path: Path) -> Path:
    scaffold(tmp_path, sample_data=True)
    return tmp_path


def test_the_facade_runs_a_project_without_the_cli(project: Path) -> None:
    loaded = load_project(project)
    summary = app.validate(loaded)
    assert summary.syncs == len(loaded.project.syncs) >= 1
    assert [s.sql for s in app.compile_sql(loaded)], "every model compiles to SQL"

    with app.workspace(loaded, dry_run=True) as w:
        names = w.prepare(None, None)
        plans = w.plan(names)
    added = sum(p.counts.added for p in plans)
    assert added > 0
    assert all(r["status"] == "never run" for r in app.statuses(loaded)), "a plan records no run"

    with app.workspace(loaded, dry_run=False) as w:
        results = list(w.run(w.prepare(None, None)))
    assert [r.status for r in results] == ["success"] * len(names)
    assert sum(r.sent for r in results) == added

    with app.workspace(loaded, dry_run=True) as w:
        again = w.plan(w.prepare(None, None))
    assert all(not p.counts.added and not p.counts.changed and not p.counts.removed for p in again)

    rows = app.statuses(loaded)
    assert {r["status"] for r in rows} == {"success"}
    assert sum(r["delivered_rows"] for r in rows) == added
    name = names[0]
    assert app.history(loaded, name)[0]["status"] == "success"

    asked: list[str] = []
    assert app.reset(loaded, name, history=False, confirm=lambda what: asked.append(what) is not None) is None
    assert "delivered rows" in asked[0], "nothing is forgotten unless confirmed"
    gone = app.reset(loaded, name, history=False, confirm=lambda _what: True)
    assert gone is not None and gone["delivered"] == next(r["delivered_rows"] for r in rows if r["sync"] == name)
    assert app.statuses(loaded, [name])[0]["delivered_rows"] == 0


def test_the_facade_raises_the_error_root_not_exit_codes(project: Path) -> None:
    loaded = load_project(project)
    with pytest.raises(ProjectError, match="no sync named 'nope'"):
        app.history(loaded, "nope")
    with pytest.raises(ProjectError, match="no sync, trait, audience or entity named 'nope'"):
        from activation.preview import preview

        preview(loaded, "nope")
