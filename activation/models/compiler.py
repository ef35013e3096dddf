"""Traits, scored traits, audiences and sync models → SQL, in dependency order.

Each model becomes a node with rendered SQL and the nodes it reads. Naming is injected
(`namer`) because the same project materialises into our schema on `run` and into
temporary relations on `plan`, which must not write anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any, Literal

from activation.models.readonly import without_final_semicolon, write_problem
from activation.project.loader import LoadedProject, ProjectError, ProjectIssue
from activation.project.spec import ScoreComponent
from activation.project.templating import TemplateProblem, render_sql

NodeKind = Literal["trait", "traits", "audience", "model"]
Namer = Callable[[str], str]  # logical relation name -> SQL relation


@dataclass
class ModelNode:
    id: str  # logical relation name, e.g. "trait__lifetime_value", "user__traits"
    kind: NodeKind
    name: str  # the trait / entity / audience / sync name
    entity: str | None
    sql: str
    deps: set[str] = field(default_factory=set)
    origin: str = ""  # "trait lifetime_value (syncs/traits/ltv.sql)" for error messages
    expect_columns: list[str] | None = None  # columns the SQL must return


@dataclass
class SyncModel:
    sync: str
    sql: str  # a SELECT over materialised relations
    key: list[str]
    deps: set[str]


@dataclass
class CompiledProject:
    nodes: dict[str, ModelNode]
    order: list[str]
    syncs: dict[str, SyncModel]

    def needed_for(self, syncs: list[str]) -> list[str]:
        """Node ids the given syncs need, in dependency order."""
        wanted: set[str] = set()
        stack = [d for s in syncs for d in self.syncs[s].deps]
        while stack:
            n = stack.pop()
            if n not in wanted:
                wanted.add(n)
                stack.extend(self.nodes[n].deps)
        return [n for n in self.order if n in wanted]


def trait_id(name: str) -> str:
    return f"trait__{name}"


def traits_id(entity: str) -> str:
    return f"{entity}__traits"


def audience_id(name: str) -> str:
    return f"audience__{name}"


def model_id(sync: str) -> str:
    return f"sync__{sync}"


class _Context:
    """The jinja context of one SQL template; records what it references."""

    def __init__(self, compiler: Compiler, origin: str) -> None:
        self.c = compiler
        self.origin = origin
        self.deps: set[str] = set()

    def ref(self, name: str) -> str:
        p = self.c.loaded.project
        if name in p.traits:
            node = trait_id(name)
        elif name in p.entities:
            node = traits_id(name)
        elif name in p.audiences:
            node = audience_id(name)
        else:
            raise TemplateProblem(f"{self.origin}: ref({name!r}) names no trait, entity or audience")
        self.deps.add(node)
        return self.c.namer(node)

    def source(self, entity: str) -> str:
        p = self.c.loaded.project
        if entity not in p.entities:
            raise TemplateProblem(f"{self.origin}: source({entity!r}) names no entity")
        return p.entities[entity].table

    def var(self, name: str, default: Any = None) -> Any:
        p = self.c.loaded.project
        if name in p.vars:
            return p.vars[name]
        if default is not None:
            return default
        raise TemplateProblem(f"{self.origin}: var({name!r}) is not defined in `vars:`")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "source": self.source,
            "var": self.var,
            "target": {"type": self.c.dialect},
        }


#: a score's type where the engine does not call it DOUBLE PRECISION
FLOAT_TYPE = {"bigquery": "FLOAT64"}


class Compiler:
    def __init__(self, loaded: LoadedProject, namer: Namer, quote: Callable[[str], str], dialect: str) -> None:
        self.loaded = loaded
        self.namer = namer
        self.q = quote
        self.dialect = dialect
        self.issues: list[ProjectIssue] = []

    def render(self, source: str, origin: str, path: tuple[str, ...], *, fragment: bool = False) -> tuple[str, set[str]]:
        """Render a template; the result must be one read-only query (or condition)."""
        ctx = _Context(self, origin)
        try:
            sql = render_sql(source, ctx.as_dict(), origin=origin)
        except TemplateProblem as e:
            self.issues.append(self.loaded.issue(str(e), *path))
            return "", ctx.deps
        problem = write_problem(sql, fragment=fragment)
        if problem:
            self.issues.append(self.loaded.issue(f"{origin}: {problem}", *path))
        return without_final_semicolon(sql), ctx.deps

    def sql_of(self, text: str, path: tuple[str, ...], what: str) -> tuple[str, str]:
        try:
            sql, file = self.loaded.read_sql(text)
        except OSError as e:
            self.issues.append(self.loaded.issue(f"cannot read {text}: {e.strerror}", *path))
            return "", what
        return sql, f"{what} ({file})" if file else what

    def compile(self) -> CompiledProject:
        p = self.loaded.project
        nodes: dict[str, ModelNode] = {}
        for name, t in p.traits.items():
            if t.entity not in p.entities:
                self.issues.append(self.loaded.issue(f"unknown entity {t.entity!r}", "traits", name, "entity"))
                continue
            key = p.entities[t.entity].key_columns
            if t.sql is not None:
                text, origin = self.sql_of(t.sql, ("traits", name, "sql"), f"trait {name}")
                sql, deps = self.render(text, origin, ("traits", name, "sql"))
            else:
                assert t.score is not None
                origin = f"trait {name}"
                sql, deps = self.score_sql(name, t.entity, t.score)
            nodes[trait_id(name)] = ModelNode(trait_id(name), "trait", name, t.entity, sql, deps, origin, key + [name])
        for entity in p.entities:
            mine = [n for n, t in p.traits.items() if t.entity == entity]
            nodes[traits_id(entity)] = ModelNode(
                traits_id(entity),
                "traits",
                entity,
                entity,
                self.traits_sql(entity, mine),
                {trait_id(n) for n in mine},
                f"entity {entity} traits",
            )
        for name, a in p.audiences.items():
            if a.entity not in p.entities:
                self.issues.append(self.loaded.issue(f"unknown entity {a.entity!r}", "audiences", name, "entity"))
                continue
            key = p.entities[a.entity].key_columns
            cols = ", ".join(self.q(k) for k in key)
            if a.where is not None:
                origin = f"audience {name} (where: {a.where})"
                where, deps = self.render(a.where, origin, ("audiences", name, "where"), fragment=True)
                sql = f"SELECT {cols} FROM {self.namer(traits_id(a.entity))} WHERE ({where})"
                deps.add(traits_id(a.entity))
            else:
                text, origin = self.sql_of(a.sql or "", ("audiences", name, "sql"), f"audience {name}")
                inner, deps = self.render(text, origin, ("audiences", name, "sql"))
                sql = f"SELECT DISTINCT {cols} FROM (\n{inner}\n) AS members"
            nodes[audience_id(name)] = ModelNode(audience_id(name), "audience", name, a.entity, sql, deps, origin)
        self.check_exclusive_destinations()
        syncs: dict[str, SyncModel] = {}
        for name, s in p.syncs.items():
            model = self.sync_model(name, s, nodes)
            if model is not None:
                syncs[name] = model
        order = self.order(nodes)
        if self.issues:
            raise ProjectError(self.issues)
        return CompiledProject(nodes, order, syncs)

    def check_exclusive_destinations(self) -> None:
        """A file holds one sync's rows: two syncs writing one file would overwrite each other."""
        p = self.loaded.project
        users: dict[str, list[str]] = {}
        for name, s in p.syncs.items():
            dest = p.destinations.get(s.to)
            if dest is not None and dest.type == "file":
                users.setdefault(s.to, []).append(name)
        for dest_name, syncs in users.items():
            if len(syncs) > 1:
                self.issues.append(
                    self.loaded.issue(
                        f"file destination {dest_name!r} is used by syncs {', '.join(syncs)}; a file holds one "
                        "sync's rows, so give each sync its own file destination",
                        "destinations",
                        dest_name,
                    )
                )

    def sync_model(self, name: str, s: Any, nodes: dict[str, ModelNode]) -> SyncModel | None:
        p = self.loaded.project
        if s.to not in p.destinations:
            known = ", ".join(p.destinations) or "none"
            self.issues.append(
                self.loaded.issue(f"destination {s.to!r} is not defined (defined: {known})", "syncs", name, "to", where=f"sync {name}")
            )
        if s.sql is not None:
            text, origin = self.sql_of(s.sql, ("syncs", name, "sql"), f"sync {name}")
            sql, deps = self.render(text, origin, ("syncs", name, "sql"))
            key = [s.key] if isinstance(s.key, str) else list(s.key)
            deps |= self.depends_on(name, s)  # the model reads them: refresh them before it
            nodes[model_id(name)] = ModelNode(model_id(name), "model", name, None, sql, deps, origin)
            return SyncModel(name, f"SELECT * FROM {self.namer(model_id(name))}", key, {model_id(name)})
        src = s.from_
        if src in p.entities:
            entity = src
            sql = f"SELECT * FROM {self.namer(traits_id(entity))}"
            deps = {traits_id(entity)}
        elif src in p.audiences:
            entity = p.audiences[src].entity
            if entity not in p.entities:
                return None
            keys = p.entities[entity].key_columns
            join = " AND ".join(f"t.{self.q(k)} = a.{self.q(k)}" for k in keys)
            sql = (
                f"SELECT t.* FROM {self.namer(traits_id(entity))} AS t "
                f"WHERE EXISTS (SELECT 1 FROM {self.namer(audience_id(src))} AS a WHERE {join})"
            )
            deps = {traits_id(entity), audience_id(src)}
        else:
            sources = sorted(set(p.entities) | set(p.audiences))
            self.issues.append(
                self.loaded.issue(
                    f"`from: {src}` names no entity or audience (known: {', '.join(sources) or 'none'})", "syncs", name, "from"
                )
            )
            return None
        key = p.entities[entity].key_columns if s.key is None else ([s.key] if isinstance(s.key, str) else list(s.key))
        return SyncModel(name, sql, key, deps | self.depends_on(name, s))

    def depends_on(self, name: str, s: Any) -> set[str]:
        """The nodes a sync's `depends_on` names: traits, audiences or entities (their traits table)."""
        p = self.loaded.project
        ids = set()
        for i, dep in enumerate(s.depends_on):
            found = [node for known, node in ((p.traits, trait_id), (p.audiences, audience_id), (p.entities, traits_id)) if dep in known]
            if not found:
                known = sorted(set(p.traits) | set(p.audiences) | set(p.entities))
                self.issues.append(
                    self.loaded.issue(
                        f"depends_on: {dep!r} names no trait, audience or entity (known: {', '.join(known) or 'none'})",
                        "syncs",
                        name,
                        "depends_on",
                        i,
                        where=f"sync {name}",
                    )
                )
            ids |= {node(dep) for node in found}
        return ids

    def score_sql(self, name: str, entity: str, score: dict[str, ScoreComponent]) -> tuple[str, set[str]]:
        p = self.loaded.project
        e = p.entities[entity]
        keys = e.key_columns
        joins, terms, deps = [], [], set()
        for comp, spec in score.items():
            if comp in p.traits:
                if p.traits[comp].entity != entity:
                    self.issues.append(
                        self.loaded.issue(f"score input {comp!r} is a trait of another entity", "traits", name, "score", comp)
                    )
                    continue
                alias = f"s_{comp}"
                using = " AND ".join(f"e.{self.q(k)} = {alias}.{self.q(k)}" for k in keys)
                joins.append(f"LEFT JOIN {self.namer(trait_id(comp))} AS {alias} ON {using}")
                value = f"{alias}.{self.q(comp)}"
                deps.add(trait_id(comp))
            else:
                value = f"e.{self.q(comp)}"  # an entity column; checked against the warehouse
            cases = " ".join(f"WHEN {value} >= {t!r} THEN {pts!r}" for t, pts in reversed(spec.points))
            terms.append(f"{spec.weight!r} * (CASE {cases} ELSE 0 END)")
        cols = ", ".join(f"e.{self.q(k)}" for k in keys)
        # GROUP BY keeps one row per key even if the entity table repeats one (those rows
        # are rejected by the sync; multiplying them here would only blur the report).
        sql = (
            f"SELECT {cols}, MAX(CAST({' + '.join(terms) or '0'} AS {FLOAT_TYPE.get(self.dialect, 'DOUBLE PRECISION')})) AS {self.q(name)}\n"
            f"FROM {e.table} AS e\n" + "\n".join(joins) + f"\nGROUP BY {cols}"
        )
        return sql, deps

    def traits_sql(self, entity: str, traits: list[str]) -> str:
        e = self.loaded.project.entities[entity]
        keys = e.key_columns
        select = ["e.*"]
        joins = []
        for i, t in enumerate(traits):
            alias = f"t{i}"
            on = " AND ".join(f"e.{self.q(k)} = {alias}.{self.q(k)}" for k in keys)
            joins.append(f"LEFT JOIN {self.namer(trait_id(t))} AS {alias} ON {on}")
            select.append(f"{alias}.{self.q(t)}")
        return f"SELECT {', '.join(select)}\nFROM {e.table} AS e\n" + "\n".join(joins)

    def order(self, nodes: dict[str, ModelNode]) -> list[str]:
        graph = {n.id: {d for d in n.deps} for n in nodes.values()}
        for n in nodes.values():
            for d in n.deps:
                if d not in nodes:
                    self.issues.append(ProjectIssue(f"{n.origin} reads {d}, which is not defined"))
        try:
            return list(TopologicalSorter(graph).static_order())
        except CycleError as e:
            # graphlib lists the cycle backwards (each node followed by one it depends on)
            ids = list(reversed(e.args[1]))
            cycle = " -> ".join(nodes[i].origin.split(" (")[0] if i in nodes else i for i in ids)
            first = nodes.get(ids[0])
            section = {"trait": "traits", "audience": "audiences", "model": "syncs", "traits": "entities"}
            loc = self.loaded.locate(section[first.kind], first.name) if first else None
            hint = "".join(
                f"; ref({nodes[i].name!r}) reads every trait of {nodes[i].name}, so none of them can use it"
                for i in dict.fromkeys(ids)
                if i in nodes and nodes[i].kind == "traits"
            )
            self.issues.append(ProjectIssue(f"models read each other in a cycle: {cycle}{hint}", loc))
            return []


def compile_project(loaded: LoadedProject, namer: Namer, quote: Callable[[str], str], dialect: str) -> CompiledProject:
    return Compiler(loaded, namer, quote, dialect).compile()


def compile_offline(loaded: LoadedProject) -> CompiledProject:
    """Every model with logical names and no warehouse: checks references and templates
    (validate --offline, lint) and gives SQL comparable across revisions (plan --base)."""
    return compile_project(loaded, lambda n: n, lambda n: f'"{n}"', loaded.project.warehouse.type)
