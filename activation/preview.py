"""`show`: a few rows of a trait, an audience, an entity's traits or a sync's mapped payload,
read in the read-only session (as `plan`), without running a sync."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from activation.diff.mapping import FieldMapper, MappingError
from activation.project.loader import LoadedProject, ProjectError, ProjectIssue
from activation.session import Session
from activation.values import to_jsonable


@dataclass(frozen=True)
class Preview:
    kind: str  # sync · trait · audience · entity
    name: str
    #: A sync's rows are its mapped payload (what it would send, with "key", or "rejected" and
    #: why); the others are the model's own columns.
    mapped: bool
    rows: list[dict[str, Any]]


def preview(loaded: LoadedProject, name: str, *, limit: int = 10, where: str | None = None) -> Preview:
    """The first `limit` rows (by key) of `name`, filtered by the SQL condition `where`."""
    from activation.models.compiler import audience_id, trait_id, traits_id
    from activation.models.readonly import write_problem
    from activation.warehouse.base import WarehouseError

    p = loaded.project
    if where is not None and (problem := write_problem(where, fragment=True)) is not None:
        raise ProjectError([ProjectIssue(f"--where: {problem}")])
    kinds = (
        ("sync", p.syncs, None),
        ("trait", p.traits, trait_id),
        ("audience", p.audiences, audience_id),
        ("entity", p.entities, traits_id),
    )
    found = next(((kind, id_of) for kind, names, id_of in kinds if name in names), None)
    if found is None:
        plural = {"entity": "entities"}
        known = "; ".join(f"{plural.get(kind, kind + 's')}: {', '.join(names) or 'none'}" for kind, names, _ in kinds)
        raise ProjectError([ProjectIssue(f"no sync, trait, audience or entity named {name!r} ({known})")])
    kind, id_of = found
    mapper: FieldMapper | None = None
    with Session(loaded, dry_run=True) as s:
        q = s.warehouse.quote
        if id_of is None:
            prepared = s.prepare([name])[name]
            sql, key, mapper = prepared.query.model_sql, prepared.query.key, prepared.mapper
        else:
            relation = s.materialise_node(id_of(name))
            entity_name = name if kind == "entity" else p.traits[name].entity if kind == "trait" else p.audiences[name].entity
            entity = p.entities[entity_name]
            key = [entity.key] if isinstance(entity.key, str) else list(entity.key)
            sql = f"SELECT * FROM {relation}"
            if kind == "audience":  # its members, with their traits (the membership table holds only keys)
                traits = s.materialise_node(traits_id(entity_name))
                same = " AND ".join(f"t.{q(k)} = a.{q(k)}" for k in key)
                sql = f"SELECT t.* FROM {traits} AS t WHERE EXISTS (SELECT 1 FROM {relation} AS a WHERE {same})"
        actual = {c.lower(): c for c in s.warehouse.columns(s.conn, sql)}
        order = ", ".join(q(actual.get(k.lower(), k)) for k in key)
        query = f"SELECT * FROM ({sql}) AS q{f' WHERE {where}' if where else ''} ORDER BY {order} LIMIT {limit}"
        try:
            rows = [dict(r._mapping) for chunk in s.warehouse.stream(s.conn, query) for r in chunk]
        except WarehouseError as e:
            raise ProjectError([ProjectIssue(f"--where {where!r}: the warehouse rejected it: {e}" if where else str(e))]) from e
    shown: list[dict[str, Any]] = []
    for row in rows:
        if mapper is None:  # the model's own columns (its key among them)
            shown.append({c: to_jsonable(v) for c, v in row.items()})
            continue
        item: dict[str, Any] = {"key": "/".join(str(row[actual.get(k.lower(), k)]) for k in key)}
        try:  # what the sync would send for the row: its mapped fields (hashed where the destination hashes)
            item.update(mapper.map(row))
        except MappingError as e:
            item["rejected"] = str(e)
        shown.append(item)
    return Preview(kind, name, mapper is not None, shown)
