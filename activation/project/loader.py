"""Load `syncs.yaml` (+ includes) into a `Project`, keeping file:line for every key.

Errors come out as `ProjectError`s whose lines read like a compiler's:
`syncs.yaml:14:5: syncs.users_to_crm.mode: Input should be 'upsert', …`.
"""

from __future__ import annotations

import errno
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from activation.project.spec import Project

# Guards against hostile input: a config file is small; anything bigger is a mistake.
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_EXPANSION = 10_000
MERGED_SECTIONS = ("entities", "traits", "audiences", "destinations", "syncs", "vars")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class ProjectIssue:
    message: str
    location: Location | None = None
    where: str | None = None  # e.g. "syncs.users_to_crm.mode" or "trait lifetime_value"

    def __str__(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        where = f"{self.where}: " if self.where else ""
        return f"{prefix}{where}{self.message}"


class ProjectError(Exception):
    """The project is invalid; `issues` lists every problem found."""

    def __init__(self, issues: list[ProjectIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


@dataclass
class LoadedProject:
    project: Project
    root: Path  # the project directory
    file: Path  # the main syncs.yaml
    locations: dict[Path_, Location] = field(default_factory=dict)

    def locate(self, *path: str | int) -> Location | None:
        """The location of `path` or of its nearest located ancestor."""
        p: Path_ = tuple(path)
        while p:
            if p in self.locations:
                return self.locations[p]
            p = p[:-1]
        return None

    def issue(self, message: str, *path: str | int, where: str | None = None) -> ProjectIssue:
        return ProjectIssue(message, self.locate(*path), where or ".".join(map(str, path)) or None)

    def missing_env(self, value: Any, *path: str | int) -> list[ProjectIssue]:
        """An issue for each unset `${NAME}` (without a default) in `value`, the spec at `path`
        (e.g. a destination): checked before a run so that it fails before sending anything."""
        from pydantic import BaseModel

        from activation.project.secrets import missing_env

        if isinstance(value, BaseModel):
            value = value.model_dump(by_alias=True)
        if isinstance(value, str):
            return [self.issue(f"environment variable {name} is not set", *path) for name in missing_env(value)]
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        return [issue for k, v in items for issue in self.missing_env(v, *path, k)]

    def read_sql(self, sql_or_path: str) -> tuple[str, str | None]:
        """Inline SQL, or the content of a `.sql` file relative to the project: (sql, file)."""
        text = sql_or_path.strip()
        if text.endswith(".sql") and "\n" not in text and " " not in text:
            path = self.root / text
            raw = path.read_bytes()  # OSError: the caller reports "cannot read"
            try:
                return raw.decode("utf-8"), _rel(path, self.root)
            except UnicodeDecodeError as e:
                line = raw[: e.start].count(b"\n") + 1
                raise OSError(errno.EILSEQ, f"not valid UTF-8 (line {line})", str(path)) from e
        return sql_or_path, None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, root: Path) -> tuple[Any, dict[Path_, Location]]:
    name = _rel(path, root)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ProjectError([ProjectIssue(f"cannot read: {e.strerror}", Location(name, 1))]) from e
    if size > MAX_FILE_BYTES:
        raise ProjectError(
            [
                ProjectIssue(
                    f"file is {size / 2**20:.1f} MB; config files over {MAX_FILE_BYTES // 2**20} MB are refused",
                    Location(name, 1),
                )
            ]
        )
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ProjectError([ProjectIssue(f"cannot read: {e.strerror}", Location(name, 1))]) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ProjectError([ProjectIssue("file is not valid UTF-8", Location(name, line))]) from e
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location(name, mark.line + 1, mark.column + 1) if mark else Location(name, 1)
        context = e.context
        start = e.context_mark
        if context and start and e.problem_mark and start.line != e.problem_mark.line:
            # e.g. an unclosed quote or bracket: the problem shows up far from its cause
            context = f"{context} (started at line {start.line + 1}, column {start.column + 1})"
        msg = ": ".join(filter(None, [context, e.problem])) or "invalid YAML"
        dup = re.match(r'found duplicate key "(.*?)" with value', e.problem or "", re.S)
        if dup:  # ruamel quotes both values in full, which can be whole sections
            msg = f"key {dup.group(1)!r} appears twice in the same mapping" + (
                f" (the mapping starts at line {start.line + 1})" if start else ""
            )
        raise ProjectError([ProjectIssue(f"invalid YAML: {msg}", loc)]) from e
    except RecursionError as e:
        # The parser recurses per nesting level: a pathologically deep document ends here.
        raise ProjectError([ProjectIssue(f"nesting deeper than {MAX_DEPTH} levels", Location(name, 1))]) from e
    except YAMLError as e:
        raise ProjectError([ProjectIssue(f"invalid YAML: {e}", Location(name, 1))]) from e
    locations: dict[Path_, Location] = {}
    plain = _Plain(name, locations).convert(data, (), depth=0, ancestors=frozenset(), aliased=False)
    return plain, locations


class _Plain:
    """ruamel's round-trip nodes → plain dicts/lists, recording every key's location.

    Aliases (`&a` … `*a`, and `<<: *a` merge keys) are allowed, but what they expand to is
    bounded: a few lines of nested aliases ("billion laughs") would otherwise expand to
    billions of values. A recursive alias (a node containing itself) is refused.
    """

    def __init__(self, file: str, out: dict[Path_, Location]) -> None:
        self.file = file
        self.out = out
        self.visited: set[int] = set()
        self.expanded = 0  # values reached again through an alias

    def _fail(self, message: str, path: Path_) -> ProjectError:
        return ProjectError([ProjectIssue(message, self.out.get(path) or Location(self.file, 1))])

    def convert(self, node: Any, path: Path_, depth: int, ancestors: frozenset[int], aliased: bool) -> Any:
        if depth > MAX_DEPTH:
            raise self._fail(f"nesting deeper than {MAX_DEPTH} levels", path)
        if aliased:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_EXPANSION:
                raise self._fail(
                    f"YAML aliases (*name) expand to more than {MAX_ALIAS_EXPANSION} values; "
                    "this looks like an alias bomb, not a configuration",
                    path,
                )
        if not isinstance(node, (CommentedMap, CommentedSeq)):
            return node
        if id(node) in ancestors:
            raise self._fail("a YAML alias refers to a node that contains it (a recursive alias)", path)
        if id(node) in self.visited:
            aliased = True  # a second visit: we got here through an alias
        self.visited.add(id(node))
        ancestors = ancestors | {id(node)}
        if isinstance(node, CommentedMap):
            own = getattr(node.lc, "data", None) or {}
            result: dict[str, Any] = {}
            for key in node:
                # Keys brought in by a merge key (`<<: *defaults`) have no position of their
                # own in this mapping: point at the mapping.
                line, col = own[key][:2] if key in own else (node.lc.line, node.lc.col)
                self.out.setdefault(path + (str(key),), Location(self.file, line + 1, col + 1))
                result[str(key)] = self.convert(node[key], path + (str(key),), depth + 1, ancestors, aliased)
            return result
        items = []
        for i, item in enumerate(node):
            line, col = node.lc.item(i)
            self.out.setdefault(path + (i,), Location(self.file, line + 1, col + 1))
            items.append(self.convert(item, path + (i,), depth + 1, ancestors, aliased))
        return items


PROJECT_FILE = "syncs.yaml"


def find_project(start: Path) -> Path | None:
    """The project's syncs.yaml for a directory: in it or its nearest parent holding one (as
    git and dbt find theirs), so commands work from any subdirectory. A syncs.yaml that an
    enclosing project includes (`include: [syncs/*.yaml]` matching syncs/syncs.yaml) is part
    of that project, not a project of its own."""
    start = start.resolve()
    found = [d / PROJECT_FILE for d in (start, *start.parents) if (d / PROJECT_FILE).is_file()]
    for i, candidate in enumerate(found):
        if not any(candidate in _included_by(outer) for outer in found[i + 1 :]):
            return candidate
    return None


def _included_by(file: Path) -> set[Path]:
    """The files a project file's `include:` patterns match (nothing when it cannot be read)."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            return set()
        data = YAML(typ="safe").load(file.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - an unreadable outer file is simply not a project that includes ours
        return set()
    patterns = data.get("include") if isinstance(data, dict) else None
    return {
        Path(m).resolve()
        for pattern in (patterns if isinstance(patterns, list) else [])
        if isinstance(pattern, str)
        for m in glob.glob(str(file.parent / pattern), recursive=True)
    }


def load_project(path: str | os.PathLike[str]) -> LoadedProject:
    """Read the project at `path`: a syncs.yaml, or a directory in (or below) a project."""
    file = Path(path)
    if file.is_dir():
        found = find_project(file)
        if found is None:
            raise ProjectError(
                [
                    ProjectIssue(
                        f"no {PROJECT_FILE} in {file.resolve()} or any parent directory "
                        "(run `activation init` to create a project, or pass --project)"
                    )
                ]
            )
        file = found
    if not file.exists():
        raise ProjectError([ProjectIssue(f"{file}: no such file (run `activation init` to create a project)")])
    root = file.parent
    data, locations = _read_yaml(file, root)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProjectError([ProjectIssue("the top level must be a mapping of keys", Location(_rel(file, root), 1))])
    issues: list[ProjectIssue] = []
    read: set[Path] = {file.resolve()}  # the main file, and each included file once
    includes = data.get("include")
    for index, pattern in enumerate(includes if isinstance(includes, list) else []):
        if not isinstance(pattern, str):
            continue  # reported by validation below
        where = locations.get(("include", index)) or locations.get(("include",))
        matches = sorted(m for m in glob.glob(str(root / pattern), recursive=True) if not Path(m).is_dir())
        if not matches:  # a pattern that matches nothing is a typo or a moved folder: never silent
            issues.append(
                ProjectIssue(
                    f"included file {pattern!r} does not exist"
                    if not glob.has_magic(pattern)
                    else f"include pattern {pattern!r} matches no file (patterns are relative to the directory of {PROJECT_FILE})",
                    where,
                )
            )
        for inc in matches:
            if Path(inc).resolve() in read:
                continue  # e.g. `include: ["*.yaml"]` matches the main file itself
            read.add(Path(inc).resolve())
            try:
                inc_data, inc_loc = _read_yaml(Path(inc), root)
            except ProjectError as e:
                issues.extend(e.issues)
                continue
            if inc_data is None:
                continue
            if not isinstance(inc_data, dict):
                issues.append(ProjectIssue("an included file must be a mapping", Location(_rel(Path(inc), root), 1)))
                continue
            for section, entries in inc_data.items():
                if section not in MERGED_SECTIONS:
                    issues.append(
                        ProjectIssue(
                            f"unknown section {section!r} in an included file (allowed: {', '.join(MERGED_SECTIONS)})",
                            inc_loc.get((section,)),
                        )
                    )
                    continue
                if entries is None:
                    continue
                if not isinstance(entries, dict):
                    issues.append(ProjectIssue(f"{section} must be a mapping", inc_loc.get((section,))))
                    continue
                target = data.setdefault(section, {})
                if target is None:
                    target = data[section] = {}
                if not isinstance(target, dict):
                    continue  # the main file's section is already wrong; validation says so
                for name, value in entries.items():
                    if name in target:
                        first = locations.get((section, name))
                        issues.append(
                            ProjectIssue(
                                f"{section[:-1] if section != 'vars' else 'var'} {name!r} is defined twice"
                                + (f" (first at {first})" if first else ""),
                                inc_loc.get((section, name)),
                            )
                        )
                        continue
                    target[name] = value
                    for p, loc in inc_loc.items():
                        if p[:2] == (section, name):
                            locations[p] = loc
    try:
        project = Project.model_validate(data)
    except ValidationError as e:
        loaded = LoadedProject(Project(), root, file, locations)
        issues.extend(_issue_from_pydantic(loaded, err, data) for err in e.errors())
    if issues:
        raise ProjectError(issues)
    return LoadedProject(project, root, file, locations)


def _yaml_path(loc: tuple[Any, ...], data: Any) -> list[Any]:
    """pydantic's error location as a path in the YAML document.

    pydantic inserts its own tags into `loc`: union members (`destinations.hook.webhook.url`,
    `key.list[str]`), validators (`function-after[…]`), `[key]`. Walking the document tells
    them from real keys (a user's key may contain anything, even brackets); the one element
    not in the document that is kept is a missing key, which comes last."""
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif (
            i == len(loc) - 1
            and isinstance(node, dict)
            and isinstance(part, str)
            and "[" not in part
            and part != node.get("type", "duckdb" if path == ["warehouse"] else None)
        ):
            path.append(part)  # a missing key; not the union member's tag of an error about the whole mapping
    return path


def _issue_from_pydantic(loaded: LoadedProject, err: ErrorDetails, data: Any) -> ProjectIssue:
    bad_name = "[key]" in err["loc"]
    loc = _yaml_path(tuple(err["loc"]), data)
    path = tuple(loc)
    msg = err["msg"]
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}" + _suggest(path, data)
    elif kind == "missing":
        msg = f"missing required key {loc[-1]!r}"
    elif bad_name:
        msg = f"{loc[-1]!r} is not a valid name: use letters, digits and _, not starting with a digit"
    elif kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        key = str(ctx.get("discriminator", "type")).strip("'")
        msg = f"unknown {key} {ctx.get('tag')!r} (expected one of: {ctx.get('expected_tags')})"
        path = path + (key,)
    elif kind == "union_tag_not_found":
        key = str((err.get("ctx") or {}).get("discriminator", "type")).strip("'")
        msg = f"missing required key {key!r}"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif isinstance(err.get("input"), (str, int, float, bool)) and len(repr(err["input"])) <= 60:
        msg = f"{msg} (got {err['input']!r})"
    return ProjectIssue(msg, loaded.locate(*path), ".".join(map(str, path)) or None)


def _model_at(path: Path_, data: Any) -> Any:
    """The pydantic model describing the mapping at `path` of the raw document, if any."""
    from typing import Annotated, Union, get_args, get_origin

    from pydantic import BaseModel

    def unwrap(tp: Any, node: Any) -> Any:
        while True:
            origin = get_origin(tp)
            if origin is Annotated:
                tp = get_args(tp)[0]
            elif origin is Union or type(tp).__name__ == "UnionType":
                members = [a for a in get_args(tp) if a is not type(None)]
                models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
                if len(members) == 1:
                    tp = members[0]
                elif models and isinstance(node, dict):
                    # a discriminated union: choose the member whose `type` literal matches
                    chosen = [
                        m for m in models if "type" in m.model_fields and node.get("type") in get_args(m.model_fields["type"].annotation)
                    ]
                    return chosen[0] if len(chosen) == 1 else None
                else:
                    dicts = [m for m in members if get_origin(m) is dict]
                    if len(dicts) != 1:
                        return None
                    tp = dicts[0]
            else:
                return tp

    from activation.project import spec

    tp: Any = spec.Project
    node = data
    for key in path:
        tp = unwrap(tp, node)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {f.alias or n: f for n, f in tp.model_fields.items()}
            if key not in fields:
                return None
            tp = fields[key].annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list and isinstance(key, int):
            tp = get_args(tp)[0]
        else:
            return None
        node = node.get(key) if isinstance(node, dict) else None
    tp = unwrap(tp, node)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _suggest(path: Path_, data: Any) -> str:
    """'did you mean …' for a misspelled key, from the model's own field names."""
    import difflib

    model = _model_at(path[:-1], data)
    if model is None:
        return ""
    names = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(path[-1]), names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
