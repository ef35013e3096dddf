"""The data effect of a config change: the new config's rows diffed against the base
config's rows, both computed on today's warehouse data, read-only.

The ordinary plan machinery does the work. The base config's mapped rows are written to a
throwaway state store as if they had been delivered; then the working tree's config is
planned against that store, so the usual diff (added / changed per field / removed,
rejected rows, guards) *is* the effect of the change. The two configs are computed one
after the other, each in its own read-only session (DuckDB allows a single writer; temporary
models of both sessions would share names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from activation.diff.plan import SyncPlan, changes
from activation.project.loader import LoadedProject, ProjectError
from activation.project.secrets import redact
from activation.runner import plan_sync
from activation.session import Session
from activation.state.store import Delivered, StateStore, open_state

_BATCH = 5000


@dataclass
class BaseRows:
    rows: dict[str, int] = field(default_factory=dict)  # sync -> rows the base config maps today
    failed: dict[str, str] = field(default_factory=dict)  # sync -> why its base rows could not be computed


@dataclass
class RealState:
    """What the project's own state store says (read-only): for what a change leaves behind."""

    delivered: dict[str, int] = field(default_factory=dict)
    fields: dict[str, set[str]] = field(default_factory=dict)  # sync -> fields of a delivered row


def read_real_state(
    new: LoadedProject, syncs: list[str], names: list[str] | None = None, selectors: list[str] | None = None
) -> tuple[RealState, set[str] | None]:
    """The state store's counts for `syncs`, and the syncs `names`/`selectors` choose (None: all)."""
    out = RealState()
    with Session(new, dry_run=True) as s:
        chosen = set(s.select(names, selectors)) if names or selectors else None
        for name in syncs:
            out.delivered[name] = s.state.delivered_count(name)
            if out.delivered[name]:
                chunks = s.state.stream_delivered(name, batch=1)
                first = next(chunks, [])
                chunks.close()
                if first:
                    out.fields[name] = set(json.loads(first[0][2]))
    return out, chosen


def compute_base_rows(old: LoadedProject, wanted: dict[str, bool], store_url: str, tmp: Path) -> BaseRows:
    """Map each wanted sync's rows with the base config; store those marked True in the
    throwaway store under the sync's name, as delivered rows (the others are only counted)."""
    out = BaseRows()
    if not wanted:
        return out
    # An empty state for the base session: every row comes out of the differ as "added".
    with Session(old, dry_run=True, sandbox_state=f"sqlite:///{tmp / 'base-empty.db'}") as s:
        store = open_state(store_url, "activation_state", s.warehouse.engine, read_only=False)
        try:
            store.migrate()
            # Materialise every model before streaming any: once a connection has streamed
            # (SQLAlchemy keeps stream_results on it), Postgres would wrap DDL in a cursor.
            ready = {}
            for name in wanted:
                try:  # one by one: a sync the base config cannot compute today fails alone
                    ready[name] = s.prepare([name])[name]
                except ProjectError as e:
                    out.failed[name] = redact("; ".join(i.message for i in e.issues))
            for name, prepared in ready.items():
                keep = wanted[name]
                stats = s.differ.key_stats(s.conn, prepared.query)
                batch: list[Delivered] = []
                n = 0
                for c in changes(s.differ.rows(s.conn, prepared.query, stats), prepared.mapper, prepared.query.target):
                    if c.kind != "added":
                        continue  # a row the base config rejects was never deliverable
                    n += 1
                    if keep:
                        batch.append(Delivered(c.key or "", c.row_hash or "", c.values or {}, None))
                        if len(batch) >= _BATCH:
                            store.commit_batch(name, "review", batch)
                            batch = []
                if batch:
                    store.commit_batch(name, "review", batch)
                out.rows[name] = n
        finally:
            store.engine.dispose()
    return out


def _retag(store: StateStore, sync: str, tag: str) -> None:
    """Give the stored base rows the new config's target tag (a mode change alters it): the
    effect is then diffed field by field. A real run still resends every row once (said in
    a warning)."""
    d = store.t["delivered"]
    rest = sa.func.substr(d.c.row_hash, sa.func.instr(d.c.row_hash, ":"))
    with store.engine.begin() as c:
        c.execute(d.update().where(d.c.sync_name == sync).values(row_hash=sa.literal(tag) + rest))


def plan_effects(new: LoadedProject, syncs: list[str], store_url: str, retag: set[str]) -> dict[str, SyncPlan]:
    """Plan `syncs` of the working tree against the base rows in the throwaway store."""
    if not syncs:
        return {}
    with Session(new, dry_run=True, sandbox_state=store_url) as s:
        prepared = s.prepare(syncs)  # ProjectError: the working tree's config is invalid
        for name in retag:
            _retag(s.state, name, prepared[name].query.target)
        return {name: plan_sync(s, prepared[name]) for name in syncs}
