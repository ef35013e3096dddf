"""A working session on a project: warehouse + state store + compiled models.

`Session(dry_run=True)` opens the warehouse and state read-only and materialises models
as temporary relations: a plan writes nothing anywhere. `check()` is what `validate` runs;
`prepare()` materialises what the chosen syncs need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from sqlalchemy.engine import Connection

from activation.destinations import REGISTRY, MissingExtra, build_destination
from activation.destinations.base import ConfigError, Destination, DestinationError, SyncTarget
from activation.diff.differ import Differ, DiffQuery, KeyStats, SharedIdentities, differ_for
from activation.diff.mapping import FieldMapper
from activation.identity import SyncIdentities
from activation.models.compiler import CompiledProject, ModelNode, compile_project
from activation.project.loader import LoadedProject, ProjectError, ProjectIssue
from activation.project.secrets import MissingSecret
from activation.project.spec import Project
from activation.project.templating import TemplateProblem, columns_used, is_expression
from activation.state.budget import AccountBudget
from activation.state.store import StateStore, open_state
from activation.warehouse.base import Warehouse, WarehouseError
from activation.warehouse.registry import open_warehouse

Materialise = Literal["view", "table"]
#: node id -> a context manager around its materialisation, yielding whether it is needed
Refresh = Callable[[str], AbstractContextManager[bool]]


@dataclass
class PreparedSync:
    name: str
    query: DiffQuery
    mapper: FieldMapper
    target: SyncTarget
    destination: Destination  # built once: checks, plans and the run share it
    identities: SyncIdentities
    stats: KeyStats | None = None  # set by planning; the push reuses it


class ColumnMismatch(WarehouseError):
    """A model ran but returned other columns than it must."""


class Session:
    def __init__(self, loaded: LoadedProject, *, dry_run: bool, sandbox_state: str | None = None) -> None:
        """`sandbox_state`: a throwaway state store written even in a dry run (--sandbox)."""
        self.loaded = loaded
        self.project = loaded.project
        self.dry_run = dry_run
        self._stack = ExitStack()
        try:
            self.warehouse: Warehouse = open_warehouse(self.project.warehouse, loaded.root, read_only=dry_run)
            self.conn: Connection = self._stack.enter_context(self.warehouse.session())
            state_url = sandbox_state or _state_url(self.project.state.url, loaded.root)
            spec = self.project.state
            self.state: StateStore = open_state(
                state_url,
                spec.schema_,
                self.warehouse.engine,
                read_only=dry_run and not sandbox_state,
                lock_timeout=spec.lock_timeout,
                statement_timeout=spec.statement_timeout,
            )
        except MissingSecret as e:
            self.close()
            raise ProjectError([loaded.issue(str(e), "warehouse")]) from e
        except WarehouseError as e:
            self.close()
            raise ProjectError([ProjectIssue(f"cannot open the warehouse: {e}", loaded.locate("warehouse"))]) from e
        temp = dry_run
        try:
            self.compiled: CompiledProject = compile_project(
                loaded, lambda n: self.warehouse.relation(n, temp=temp), self.warehouse.quote, self.warehouse.dialect
            )
        except BaseException:
            self.close()  # or the warehouse connection outlives the error (DuckDB: a file lock)
            raise
        self.differ: Differ = differ_for(self.warehouse, self.state)
        self._materialised: dict[str, Materialise] = {}

    # -- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        if hasattr(self, "warehouse"):
            self.warehouse.dispose()
            if hasattr(self, "state") and self.state.engine is not self.warehouse.engine:
                self.state.engine.dispose()

    # -- selection ------------------------------------------------------------------

    def select(self, names: list[str] | None = None, selectors: list[str] | None = None) -> list[str]:
        """Sync names by name, `tag:x`, `destination:x` (or plain names matching those)."""
        return select_syncs(self.project, names, selectors)

    # -- checks and materialisation -------------------------------------------------

    def prepare(
        self,
        syncs: list[str],
        how: Materialise = "table",
        *,
        check_env: bool | None = None,
        every_model: bool = False,
        refresh: Refresh | None = None,
    ) -> dict[str, PreparedSync]:
        """Materialise what `syncs` need and check every mapping against the real columns.

        `check_env` (default: on a real run) also requires every `${ENV}` the syncs'
        destinations use to be set, so a missing token stops the run before anything is sent.
        `every_model` (validate) also checks the traits and audiences no sync uses yet.
        `refresh(node_id)` (the daemon) is entered around each model's materialisation and
        says whether it is still needed (another process may have just refreshed it).
        """
        issues: list[ProjectIssue] = missing_extras(self.loaded, syncs)  # before any model runs
        if check_env if check_env is not None else not self.dry_run:
            for dest in dict.fromkeys(self.project.syncs[n].to for n in syncs):
                if dest in self.project.destinations:
                    issues += self.loaded.missing_env(self.project.destinations[dest], "destinations", dest)
        duplicated: set[str] = set()  # nodes with duplicate keys: those reading them are not blamed too
        for node_id in self.compiled.order if every_model else self.compiled.needed_for(syncs):
            node = self.compiled.nodes[node_id]
            if node_id in self._materialised and (self._materialised[node_id] == "table" or how == "view"):
                continue
            try:
                if refresh is None:
                    self._materialise(node, how)
                else:
                    with refresh(node_id) as needed:
                        if needed:
                            self._materialise(node, how)
                        else:
                            self._materialised[node_id] = how
                # validate: a model whose keys repeat would have its rows rejected by every plan
                # as "duplicate key", naming no model; say here which one yields them
                if every_model and not node.deps & duplicated and (problem := self._duplicate_keys(node)):
                    duplicated.add(node_id)
                    issues.append(self._node_issue(node, problem, rejected=False))
            except ColumnMismatch as e:
                issues.append(self._node_issue(node, str(e), rejected=False))
                break
            except WarehouseError as e:
                issues.append(self._node_issue(node, str(e)))
                break  # later models depend on this one; their errors would only be noise
        if issues:
            raise ProjectError(issues)
        prepared = {}
        for name in syncs:
            try:
                prepared[name] = self._prepare_sync(name)
            except ProjectError as e:
                issues.extend(i for i in e.issues if i not in issues)  # syncs to one destination share its issues
        if issues:
            raise ProjectError(issues)
        return prepared

    def _materialise(self, node: ModelNode, how: Materialise) -> None:
        wh = self.warehouse
        temp = self.dry_run
        if not temp:
            wh.ensure_schema(self.conn, wh.schema)
        relation = wh.relation(node.id, temp=temp)
        # Views are cheap (validate); tables make a stable snapshot for the diff and the push.
        # An entity without traits needs no copy in a dry run: its view is the table itself.
        view = how == "view" or (temp and node.kind == "traits" and not node.deps)
        wh.materialise(self.conn, relation, node.sql, temp=temp, view=view)
        if not temp:
            self.conn.commit()
        self._materialised[node.id] = how
        if node.expect_columns is not None:
            got = wh.columns(self.conn, f"SELECT * FROM {relation}")
            if [c.lower() for c in got] != [c.lower() for c in node.expect_columns]:
                raise ColumnMismatch(f"must return exactly the columns {', '.join(node.expect_columns)}; it returned {', '.join(got)}")

    def materialise_node(self, node_id: str) -> str:
        """Materialise one trait, audience or entity's traits model and what it reads (`show`);
        its relation. A model the warehouse rejects is a ProjectError naming it."""
        wanted: set[str] = set()
        stack = [node_id]
        while stack:
            n = stack.pop()
            if n not in wanted:
                wanted.add(n)
                stack.extend(self.compiled.nodes[n].deps)
        for n in self.compiled.order:
            if n in wanted and n not in self._materialised:
                node = self.compiled.nodes[n]
                try:
                    self._materialise(node, "table")
                except WarehouseError as e:
                    raise ProjectError([self._node_issue(node, str(e), rejected=not isinstance(e, ColumnMismatch))]) from e
        return self.warehouse.relation(node_id, temp=self.dry_run)

    def _duplicate_keys(self, node: ModelNode, examples: int = 3) -> str | None:
        """What is wrong when `node`'s rows repeat a key (an entity's key, a sync model's), with
        examples; None when every key is unique."""
        if node.kind == "model":
            key = self.compiled.syncs[node.name].key
        elif node.entity is not None and node.entity in self.project.entities:
            entity_key = self.project.entities[node.entity].key
            key = [entity_key] if isinstance(entity_key, str) else list(entity_key)
        else:
            return None
        wh = self.warehouse
        relation = wh.relation(node.id, temp=self.dry_run)
        actual = {c.lower(): c for c in wh.columns(self.conn, f"SELECT * FROM {relation}")}
        if any(k.lower() not in actual for k in key):
            return None  # a missing key column is reported where the model is used
        quoted = [wh.quote(actual[k.lower()]) for k in key]
        cols = ", ".join(quoted)
        not_null = " AND ".join(f"{c} IS NOT NULL" for c in quoted)  # null keys are another rejection
        rows = wh.execute(
            self.conn,
            (
                f"SELECT {cols}, n, COUNT(*) OVER () AS keys FROM (SELECT {cols}, COUNT(*) AS n FROM {relation} "
                f"WHERE {not_null} GROUP BY {cols} HAVING COUNT(*) > 1) AS d ORDER BY n DESC, {cols} LIMIT {examples}"
            ),
        ).fetchall()
        if not rows:
            return None
        shown = ", ".join(f"{'/'.join(map(str, r[: len(key)]))} ({r[len(key)]} rows)" for r in rows)
        total = rows[0][-1]
        what = "keys appear" if total != 1 else "key appears"
        return (
            f"returns duplicate keys ({', '.join(key)}): {total} {what} more than once, e.g. {shown}; "
            "plan would reject those rows as 'duplicate key'. Make it return one row per key "
            "(GROUP BY the key, or pick one row with row_number())"
        )

    def _node_issue(self, node: ModelNode, message: str, *, rejected: bool = True) -> ProjectIssue:
        section = {"trait": "traits", "audience": "audiences", "model": "syncs"}.get(node.kind)
        loc = self.loaded.locate(section, node.name) if section else self.loaded.locate("entities", node.name)
        return ProjectIssue(f"the warehouse rejected it: {message}" if rejected else message, loc, node.origin)

    def _prepare_sync(self, name: str) -> PreparedSync:
        spec = self.project.syncs[name]
        model = self.compiled.syncs[name]
        issue = lambda msg, *p: self.loaded.issue(msg, "syncs", name, *p, where=f"sync {name}")  # noqa: E731
        available = self.warehouse.columns(self.conn, model.sql)
        lower = {c.lower(): c for c in available}
        issues = [
            issue(f"key column {k!r} is not in the model (columns: {', '.join(available)})", "key")
            for k in model.key
            if k.lower() not in lower
        ]
        mapper = FieldMapper(spec)
        used: set[str] = set()
        for section, mapping in (("match", spec.match), ("fields", spec.fields)):
            for dest, expr in mapping.items():
                try:
                    cols = columns_used(expr, available)
                except TemplateProblem as e:
                    issues.append(issue(f"{section}.{dest}: {e}", section, dest))
                    continue
                missing = sorted(c for c in cols if c.lower() not in lower)
                if missing:
                    issues.append(
                        issue(
                            f"{section}.{dest} uses column {', '.join(map(repr, missing))}, which the model lacks "
                            f"(columns: {', '.join(available)})",
                            section,
                            dest,
                        )
                    )
                used |= {lower.get(c.lower(), c) for c in cols}
        destination = self.destination(spec.to, name)
        if not self.state.read_only:  # a run that sends: calls take slots of the account's shared budget
            destination.share_budget(lambda account: AccountBudget(self.state, account))
        target = SyncTarget.of(name, spec)
        try:
            destination.check_target(target)
            if (transform := destination.value_transform(target)) is not None:
                mapper.set_transform(transform.version, transform.apply)
        except ConfigError as e:
            issues.append(issue(str(e), "to"))
        if issues:
            raise ProjectError(issues)
        key = [lower[k.lower()] for k in model.key]
        where = f"{spec.to}|{spec.object}|{spec.mode}|{sorted(spec.match)}|{spec.audience}"
        target_tag = hashlib.md5(where.encode()).hexdigest()[:8]  # not the mapping: only where rows go
        identities = SyncIdentities(destination, target)
        shared = None
        if identities.shares_records and spec.identity_conflicts != "merge":
            # a match field that names a column is compared in SQL; a template needs the rows mapped
            match_sql = {
                f: None if is_expression(expr) else f"src.{self.warehouse.quote(lower[expr.strip().lower()])}"
                for f, expr in spec.match.items()
            }
            shared = SharedIdentities(
                spec.identity_conflicts, destination.identity_sql(target, match_sql, self.warehouse.as_text), spec.identity_order
            )
        query = DiffQuery(name, model.sql, key, sorted(used), mapper.fingerprint(), target_tag, shared)
        return PreparedSync(name, query, mapper, target, destination, identities)

    def check_remote(self, prepared: dict[str, PreparedSync]) -> None:
        """Ask each destination's API whether it can take these syncs (credentials, objects,
        fields, types); sends no data. Raises ProjectError naming every problem."""
        issues: list[ProjectIssue] = []
        for name, p in prepared.items():
            dest = self.destination(self.project.syncs[name].to, name)
            try:
                problems = dest.check_remote(p.target)
            except (ConfigError, DestinationError) as e:
                problems = [str(e)]
            finally:
                dest.close()
            issues += [self.loaded.issue(msg, "syncs", name, "to", where=f"sync {name}") for msg in problems]
        if issues:
            raise ProjectError(issues)

    def destination(self, name: str, sync: str) -> Destination:
        spec = self.project.destinations.get(name)
        if spec is None:
            known = ", ".join(self.project.destinations) or "none"
            raise ProjectError(
                [self.loaded.issue(f"destination {name!r} is not defined (defined: {known})", "syncs", sync, "to", where=f"sync {sync}")]
            )
        try:
            return build_destination(name, spec, str(self.loaded.root))
        except MissingExtra as e:
            raise ProjectError([self.loaded.issue(str(e), "destinations", name, "type")]) from e


def missing_extras(loaded: LoadedProject, syncs: list[str] | None = None) -> list[ProjectIssue]:
    """An issue for each destination `syncs` (default: all) use whose type needs an extra that
    is not installed (what `Session.destination` says when it builds one)."""
    destinations = loaded.project.destinations
    chosen = [loaded.project.syncs[n] for n in syncs] if syncs is not None else list(loaded.project.syncs.values())
    used = [name for name in dict.fromkeys(s.to for s in chosen) if name in destinations]
    return [
        loaded.issue(problem, "destinations", name, "type")
        for name in used
        if (problem := REGISTRY[destinations[name].type].missing()) is not None
    ]


def select_syncs(project: Project, names: list[str] | None = None, selectors: list[str] | None = None) -> list[str]:
    """Sync names by name, `tag:x`, `destination:x` (or plain names matching those)."""
    syncs = project.syncs
    chosen = list(syncs) if not names and not selectors else []
    issues = []
    for item in (names or []) + (selectors or []):
        kind, _, value = item.partition(":") if ":" in item else ("", "", item)
        found = [
            n
            for n, s in syncs.items()
            if (kind in ("", "sync") and n == value)
            or (kind in ("", "tag") and value in s.tags)
            or (kind in ("", "destination", "to") and s.to == value)
        ]
        if not found:
            issues.append(ProjectIssue(f"no sync matches {item!r} (syncs: {', '.join(syncs) or 'none'})"))
        chosen += [n for n in found if n not in chosen]
    if issues:
        raise ProjectError(issues)
    return chosen


def _state_url(url: str | None, root: Path) -> str | None:
    """Relative SQLite paths are relative to the project, not to the working directory."""
    prefix = "sqlite:///"
    if url and url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(root / url[len(prefix) :])
    return url
