"""The config diff of two projects: syncs' keys, model definitions, destinations, vars.

Model definitions are compared by their compiled SQL (logical names, no warehouse), so a
changed `.sql` file, a changed `where:`, a changed score or a changed `var` all count; what
is shown is the source text the user edited (the compiled SQL when only a var changed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from activation.models.compiler import CompiledProject, ModelNode
from activation.project.loader import LoadedProject
from activation.project.secrets import env_refs, redact
from activation.project.spec import SyncSpec
from activation.review.model import ChangeStatus, ConfigChange, ModelChange

#: Where rows go: a change (or one of `match`'s fields) means every row goes to a new target.
TARGET_KEYS = ("to", "object", "audience")
_SECRET_KEY = re.compile(r"token|password|secret|authorization|session|private|api_key|apikey", re.I)
_NODE_KINDS = {"trait": "trait", "audience": "audience", "model": "model"}


@dataclass
class SyncDiff:
    name: str
    status: ChangeStatus
    old: SyncSpec | None
    new: SyncSpec | None
    changes: list[ConfigChange] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)
    renamed_from: str | None = None
    sql_changed: bool = False  # a model it reads compiles to other SQL

    @property
    def target_keys_changed(self) -> list[str]:
        """to/object/audience, and `match` when its destination fields differ."""
        if self.old is None or self.new is None:
            return []
        changed = [k for k in TARGET_KEYS if _dump(self.old).get(k) != _dump(self.new).get(k)]
        if sorted(self.old.match) != sorted(self.new.match):
            changed.append("match")
        return changed

    @property
    def key_changed(self) -> bool:
        return self.old is not None and self.new is not None and self.old.key != self.new.key

    @property
    def new_target(self) -> bool:
        return self.status in ("added", "renamed") or bool(self.target_keys_changed)

    @property
    def needs_effect(self) -> bool:
        return self.status != "unchanged" or self.sql_changed or bool(self.upstream)


@dataclass
class ProjectDiff:
    project_changes: list[ConfigChange]
    models: list[ModelChange]
    syncs: dict[str, SyncDiff]
    destinations_changed: set[str]


def _dump(spec: Any) -> dict[str, Any]:
    return spec.model_dump(by_alias=True, mode="json") if spec is not None else {}


def _flat(data: dict[str, Any], nested: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in nested and isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def key_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "", nested: tuple[str, ...] = ()) -> list[ConfigChange]:
    a, b = _flat(old, nested), _flat(new, nested)
    return [ConfigChange(path=prefix + k, before=a.get(k), after=b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]


def _masked(path: str, value: Any) -> Any:
    """A destination setting as it may be shown in a pull request: secrets never are."""
    if isinstance(value, dict):
        return {k: _masked(f"{path}.{k}", v) for k, v in value.items()}
    if isinstance(value, str):
        if _SECRET_KEY.search(path) and not (env_refs(value) and re.fullmatch(r"(\$\{[^}]*\}|\s|Bearer|Basic)*", value)):
            return "***"
        return redact(value)
    return value


def source_text(loaded: LoadedProject, node: ModelNode) -> str:
    """What the user wrote for a model: the SQL (file content), `where:` or the score."""
    p = loaded.project
    if node.kind == "trait":
        t = p.traits[node.name]
        if t.score is not None:
            return json.dumps({k: v.model_dump() for k, v in t.score.items()}, sort_keys=True)
        return loaded.read_sql(t.sql or "")[0].strip()
    if node.kind == "audience":
        a = p.audiences[node.name]
        return f"where: {a.where}" if a.where is not None else loaded.read_sql(a.sql or "")[0].strip()
    if node.kind == "model":
        return loaded.read_sql(p.syncs[node.name].sql or "")[0].strip()
    e = p.entities[node.name]
    return f"table: {e.table}, key: {e.key}"


def _node_changes(old: LoadedProject, new: LoadedProject, oc: CompiledProject, nc: CompiledProject) -> tuple[list[ModelChange], set[str]]:
    """ModelChanges for traits, audiences and SQL models; and every node id whose SQL differs."""
    changes: list[ModelChange] = []
    differ: set[str] = set()
    for node_id in dict.fromkeys([*oc.nodes, *nc.nodes]):
        a, b = oc.nodes.get(node_id), nc.nodes.get(node_id)
        if a is not None and b is not None and a.sql == b.sql:
            continue
        differ.add(node_id)
        node = b or a
        assert node is not None
        if node.kind == "traits":
            continue  # an entity's wide table: reported through its traits and the entity itself
        before = source_text(old, a) if a is not None else None
        after = source_text(new, b) if b is not None else None
        if a is not None and b is not None and before == after:  # only a var (or a ref'd name) changed
            before, after = a.sql.strip(), b.sql.strip()
        status: ChangeStatus = "added" if a is None else "removed" if b is None else "changed"
        changes.append(ModelChange(kind=_NODE_KINDS[node.kind], name=node.name, change=status, before=before, after=after))
    for name in dict.fromkeys([*old.project.entities, *new.project.entities]):
        a_e, b_e = old.project.entities.get(name), new.project.entities.get(name)
        if _dump(a_e) != _dump(b_e):
            text = lambda e: None if e is None else f"table: {e.table}, key: {e.key}, identifiers: {e.identifiers}"  # noqa: E731
            status = "added" if a_e is None else "removed" if b_e is None else "changed"
            changes.append(ModelChange(kind="entity", name=name, change=status, before=text(a_e), after=text(b_e)))
    return changes, differ


def _pair_renames(changes: list[ModelChange], syncs: dict[str, SyncDiff], kind: str) -> list[ModelChange]:
    """A removed and an added audience (or trait) with the same definition, or one a sync
    switched its `from:` between, are one rename."""
    removed = [c for c in changes if c.kind == kind and c.change == "removed"]
    added = [c for c in changes if c.kind == kind and c.change == "added"]
    switched = {(d.old.from_, d.new.from_) for d in syncs.values() if d.old and d.new and d.old.from_ != d.new.from_}
    for r in removed:
        match = next((a for a in added if (r.name, a.name) in switched), None) or next((a for a in added if a.after == r.before), None)
        if match is None:
            continue
        added.remove(match)
        changes.remove(r)
        match.change, match.renamed_from, match.before = "renamed", r.name, r.before
    return changes


def _closure(compiled: CompiledProject, sync: str) -> set[str]:
    return set(compiled.needed_for([sync])) if sync in compiled.syncs else set()


def _node_id(change: ModelChange) -> str:
    prefix = {"trait": "trait__", "audience": "audience__", "model": "sync__"}.get(change.kind)
    return f"{prefix}{change.name}" if prefix else f"{change.name}__traits"


def diff_projects(old: LoadedProject, new: LoadedProject, oc: CompiledProject, nc: CompiledProject) -> ProjectDiff:
    po, pn = old.project, new.project
    project_changes = key_changes(
        {"warehouse": _dump(po.warehouse), "state": _dump(po.state), "vars": po.vars},
        {"warehouse": _dump(pn.warehouse), "state": _dump(pn.state), "vars": pn.vars},
        nested=("warehouse", "state", "vars"),
    )
    for c in project_changes:  # a URL may hold a literal password
        c.before, c.after = _masked(c.path, c.before), _masked(c.path, c.after)
    dest_changes: set[str] = set()
    for name in dict.fromkeys([*po.destinations, *pn.destinations]):
        a, b = _dump(po.destinations.get(name)), _dump(pn.destinations.get(name))
        found = key_changes(a, b, f"destinations.{name}.", nested=("headers",))
        for c in found:
            c.before, c.after = _masked(c.path, c.before), _masked(c.path, c.after)
        if found and name in po.destinations and name in pn.destinations:
            dest_changes.add(name)
        project_changes += found
    syncs: dict[str, SyncDiff] = {}
    for name in dict.fromkeys([*pn.syncs, *po.syncs]):
        a_s, b_s = po.syncs.get(name), pn.syncs.get(name)
        status: ChangeStatus = "added" if a_s is None else "removed" if b_s is None else "unchanged"
        d = SyncDiff(name, status, a_s, b_s)
        if a_s is not None and b_s is not None:
            d.changes = key_changes(_dump(a_s), _dump(b_s), nested=("match", "fields"))
            d.status = "changed" if d.changes else "unchanged"
        syncs[name] = d
    _pair_sync_renames(syncs)
    models, differ = _node_changes(old, new, oc, nc)
    models = _pair_renames(models, syncs, "audience")
    for name, d in syncs.items():
        if d.status in ("removed", "added", "renamed"):
            continue
        closure = _closure(oc, name) | _closure(nc, name)
        d.sql_changed = bool(closure & differ) or nc.syncs[name].sql != oc.syncs[name].sql
        d.upstream = [
            f"{m.kind} {m.name}"
            + (f" (renamed from {m.renamed_from})" if m.renamed_from else "")
            + ("" if m.change in ("changed", "renamed") else f" ({m.change})")
            for m in models
            if _node_id(m) in closure or (m.renamed_from and f"audience__{m.renamed_from}" in closure)
        ]
        if pn.syncs[name].to in dest_changes:
            d.upstream.append(f"destination {pn.syncs[name].to}")
    return ProjectDiff(project_changes, models, syncs, dest_changes)


def _pair_sync_renames(syncs: dict[str, SyncDiff]) -> None:
    """A removed sync and an added one with the same spec: a rename (the state is per name)."""
    removed = [d for d in syncs.values() if d.status == "removed"]
    for d in [d for d in syncs.values() if d.status == "added"]:
        same = next((r for r in removed if _dump(r.old) == _dump(d.new)), None)
        if same is not None:
            removed.remove(same)
            del syncs[same.name]
            d.status, d.renamed_from, d.old = "renamed", same.name, same.old
