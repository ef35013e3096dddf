"""`plan --base REV`: the working tree's project against the project at REV.

Steps, each in its own read-only session on the working tree's warehouse:
1. extract the project at REV's merge base into a temporary directory and load it there,
   pointed at the working tree's warehouse (the DuckDB file is usually untracked);
2. diff the two configs (keys, model definitions by compiled SQL, destinations, vars);
3. read the project's state store: what each sync delivered (what a change leaves behind);
4. map the base config's rows into a throwaway store, then plan the working tree's config
   against it: the effect of the change, per sync and per field, on today's data.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from activation.lint import lint_project
from activation.models.compiler import compile_offline
from activation.project.loader import LoadedProject, ProjectError, load_project
from activation.project.spec import Project
from activation.review.checks import Facts, audience_warnings, sync_warnings
from activation.review.configdiff import diff_projects
from activation.review.effect import compute_base_rows, plan_effects, read_real_state
from activation.review.git import BaseRevision, export_project, repo_root, resolve_base
from activation.review.model import Review, ReviewWarning, SyncReview

#: Warnings first by how much they can hurt at the destination.
PRIORITY = [
    "base_invalid",
    "removal_above_limit",
    "sync_removed",
    "match_changed",
    "target_changed",
    "key_changed",
    "audience_renamed",
    "sync_renamed",
    "audience_below_minimum",
    "destination_changed",
    "mode_changed",
    "field_not_seen",
    "base_not_computed",
]  # then lint findings


def _same_warehouse(new: LoadedProject, project: Project) -> Project:
    """The base project, reading the working tree's warehouse (same data for both configs)."""
    wh = new.project.warehouse
    if wh.type == "duckdb" and wh.path and wh.path != ":memory:" and not Path(wh.path).is_absolute():
        wh = wh.model_copy(update={"path": str((new.root / wh.path).resolve())})
    return project.model_copy(update={"warehouse": wh})


def load_base(new: LoadedProject, base: BaseRevision, dest: Path) -> tuple[LoadedProject, ReviewWarning | None]:
    """The project at `base`, or an empty one (and why) when there is none or it is invalid."""
    root = export_project(new.root, base.commit, dest)
    warning = None
    if root is not None and (root / new.file.name).exists():
        try:
            loaded = load_project(root / new.file.name)
            compile_offline(loaded)
            return loaded, None
        except ProjectError as e:
            first = str(e.issues[0]) if e.issues else "invalid"
            warning = ReviewWarning(
                kind="base_invalid", message=f"the project at {base.label} is invalid ({first}); every sync is shown as new"
            )
    else:
        warning = ReviewWarning(kind="base_invalid", message=f"there is no {new.file.name} at {base.label}: every sync is new")
    root = root or dest
    return LoadedProject(Project(warehouse=new.project.warehouse), root, root / new.file.name, {}), warning


def review_project(new: LoadedProject, rev: str, names: list[str] | None = None, selectors: list[str] | None = None) -> Review:
    base = resolve_base(repo_root(new.root), rev)
    nc = compile_offline(new)  # ProjectError: the working tree is invalid (exit 2)
    with tempfile.TemporaryDirectory(prefix="activation-review-") as tmp_name:
        tmp = Path(tmp_name)
        old, base_warning = load_base(new, base, tmp / "base")
        diff = diff_projects(old, new, compile_offline(old), nc)
        real, chosen = read_real_state(new, [*dict.fromkeys([*new.project.syncs, *old.project.syncs])], names, selectors)
        shown = {n: d for n, d in diff.syncs.items() if chosen is None or n in chosen}
        effect = [n for n, d in shown.items() if d.status != "removed" and d.needs_effect]
        wanted: dict[str, bool] = {}
        for n, d in shown.items():
            if d.status == "renamed" and d.renamed_from:
                wanted[d.renamed_from] = False
            elif d.old is not None and (d.needs_effect or d.status == "removed"):
                wanted[n] = d.status != "removed" and not d.new_target
        store = f"sqlite:///{tmp / 'base-rows.db'}"
        on_same_data = LoadedProject(_same_warehouse(new, old.project), old.root, old.file, old.locations)
        base_rows = compute_base_rows(on_same_data, wanted, store, tmp)
        retag = {n for n in effect if wanted.get(n) and n not in base_rows.failed and diff.syncs[n].old.mode != diff.syncs[n].new.mode}  # type: ignore[union-attr]
        plans = plan_effects(new, effect, store, retag)
        lint = _new_lint(old, new, {n: p.counts.model_rows for n, p in plans.items()})  # reads the base's files
    facts = Facts(old.project, new.project, diff, base_rows, real, plans)
    review = Review(base=base.label, base_commit=base.commit, project_changes=diff.project_changes, models=diff.models)
    project_warnings = [base_warning] if base_warning else []
    by_sync: dict[str, list[ReviewWarning]] = {}
    for w in audience_warnings(facts):
        if w.sync:
            by_sync.setdefault(w.sync, []).append(w)
        else:
            project_warnings.append(w)
    for n, d in shown.items():
        if d.status == "unchanged" and not d.needs_effect:
            review.unchanged_syncs.append(n)
            continue
        spec = d.new or d.old
        assert spec is not None
        review.syncs.append(
            SyncReview(
                sync=n,
                status=d.status,
                renamed_from=d.renamed_from,
                destination=spec.to,
                mode=spec.mode,
                config_changes=d.changes,
                upstream_changes=d.upstream,
                new_target=d.new_target,
                base_rows=base_rows.rows.get(d.renamed_from or n),
                delivered=real.delivered.get(n),
                effect=plans.get(n),
                warnings=sorted(sync_warnings(facts, d) + by_sync.get(n, []), key=_rank),
            )
        )
    project_warnings += lint
    review.warnings = sorted(project_warnings + [w for s in review.syncs for w in s.warnings], key=_rank)
    return review


def _rank(w: ReviewWarning) -> int:
    return PRIORITY.index(w.kind) if w.kind in PRIORITY else len(PRIORITY)


def _new_lint(old: LoadedProject, new: LoadedProject, rows: dict[str, int]) -> list[ReviewWarning]:
    """Lint findings the change introduces (present in the working tree, not at the base)."""
    before = {(f.rule, f.subject, f.message) for f in lint_project(old).findings}
    return [
        ReviewWarning(
            kind=f"lint:{f.rule}",
            sync=f.subject.split(" ", 1)[1] if f.subject.startswith("sync ") else None,
            message=f"{f.subject}: {f.message}",
        )
        for f in lint_project(new, rows).findings
        if (f.rule, f.subject, f.message) not in before
    ]
