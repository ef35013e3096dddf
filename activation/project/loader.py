"""Load `syncs.yaml` (+ includes) into a `Project`, keeping file:line for every key.

Errors come out as `ProjectError`s whose lines read like a compiler's:
`syncs.yaml:14:5: syncs.users_to_crm.mode: Input should be 'upsert', …`.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from activation.project.spec import Project

# Guards against hostile input: a config file is small; anything bigger is a mistake.
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64
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

    def read_sql(self, sql_or_path: str) -> tuple[str, str | None]:
        """Inline SQL, or the content of a `.sql` file relative to the project: (sql, file)."""
        text = sql_or_path.strip()
        if text.endswith(".sql") and "\n" not in text and " " not in text:
            path = self.root / text
            return path.read_text(encoding="utf-8"), str(path.relative_to(self.root))
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
            [ProjectIssue(f"file is {size} bytes; config files over {MAX_FILE_BYTES} are refused", Location(name, 1))]
        )
    raw = path.read_bytes()
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
        msg = " ".join(filter(None, [e.context, e.problem])) or "invalid YAML"
        raise ProjectError([ProjectIssue(f"invalid YAML: {msg}", loc)]) from e
    except (YAMLError, RecursionError) as e:
        raise ProjectError([ProjectIssue(f"invalid YAML: {e}", Location(name, 1))]) from e
    locations: dict[Path_, Location] = {}
    plain = _to_plain(data, (), name, locations, depth=0, seen=set())
    return plain, locations


def _to_plain(node: Any, path: Path_, file: str, out: dict[Path_, Location], depth: int, seen: set[int]) -> Any:
    if depth > MAX_DEPTH:
        loc = out.get(path) or Location(file, 1)
        raise ProjectError([ProjectIssue(f"nesting deeper than {MAX_DEPTH} levels", loc)])
    if isinstance(node, (CommentedMap, CommentedSeq)):
        # Aliases let a tiny file expand exponentially ("billion laughs"); config has no need.
        if id(node) in seen:
            loc = out.get(path) or Location(file, 1)
            raise ProjectError([ProjectIssue("YAML aliases (*ref) are not supported", loc)])
        seen = seen | {id(node)}
    if isinstance(node, CommentedMap):
        result: dict[str, Any] = {}
        for key in node:
            line, col = node.lc.key(key)
            out[path + (str(key),)] = Location(file, line + 1, col + 1)
            result[str(key)] = _to_plain(node[key], path + (str(key),), file, out, depth + 1, seen)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            line, col = node.lc.item(i)
            out[path + (i,)] = Location(file, line + 1, col + 1)
            items.append(_to_plain(item, path + (i,), file, out, depth + 1, seen))
        return items
    return node


def load_project(path: str | os.PathLike[str]) -> LoadedProject:
    """Read the project at `path` (a syncs.yaml, or a directory holding one)."""
    file = Path(path)
    if file.is_dir():
        file = file / "syncs.yaml"
    if not file.exists():
        raise ProjectError([ProjectIssue(f"{file}: no such file (run `activation init` to create a project)")])
    root = file.parent
    data, locations = _read_yaml(file, root)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProjectError([ProjectIssue("the top level must be a mapping of keys", Location(_rel(file, root), 1))])
    issues: list[ProjectIssue] = []
    for pattern in data.get("include") or []:
        if not isinstance(pattern, str):
            continue  # reported by validation below
        matches = sorted(glob.glob(str(root / pattern), recursive=True))
        if not matches and not glob.has_magic(pattern):
            issues.append(ProjectIssue(f"included file {pattern!r} does not exist", locations.get(("include",))))
        for inc in matches:
            inc_data, inc_loc = _read_yaml(Path(inc), root)
            if inc_data is None:
                continue
            if not isinstance(inc_data, dict):
                issues.append(ProjectIssue("an included file must be a mapping", Location(_rel(Path(inc), root), 1)))
                continue
            for section, entries in inc_data.items():
                if section not in MERGED_SECTIONS:
                    issues.append(
                        ProjectIssue(
                            f"unknown section {section!r} in an included file "
                            f"(allowed: {', '.join(MERGED_SECTIONS)})",
                            inc_loc.get((section,)),
                        )
                    )
                    continue
                if not isinstance(entries, dict):
                    issues.append(ProjectIssue(f"{section} must be a mapping", inc_loc.get((section,))))
                    continue
                target = data.setdefault(section, {})
                if target is None:
                    target = data[section] = {}
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
        issues.extend(_issue_from_pydantic(loaded, err) for err in e.errors())
    if issues:
        raise ProjectError(issues)
    return LoadedProject(project, root, file, locations)


def _issue_from_pydantic(loaded: LoadedProject, err: dict[str, Any]) -> ProjectIssue:
    # pydantic adds the union member's tag (destinations.NAME.<type>.…) and function names
    # (`function-after[...]`) to loc; drop them so the path matches the YAML.
    loc = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
    if len(loc) > 2 and loc[0] == "destinations":
        del loc[2]
    path = tuple(loc)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}" + _suggest(loaded, path)
    elif err["type"] == "missing":
        msg = f"missing required key {loc[-1]!r}"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return ProjectIssue(msg, loaded.locate(*path), ".".join(map(str, path)) or None)


def _suggest(loaded: LoadedProject, path: Path_) -> str:
    """'did you mean …' for a misspelled key, from the model's own field names."""
    import difflib

    from activation.project import spec

    models: dict[str, type] = {
        "warehouse": spec.WarehouseSpec,
        "state": spec.StateSpec,
        "entities": spec.EntitySpec,
        "traits": spec.TraitSpec,
        "audiences": spec.AudienceSpec,
        "syncs": spec.SyncSpec,
    }
    model = spec.Project if len(path) == 1 else models.get(str(path[0]))
    if model is None:
        return ""
    names = [f.alias or n for n, f in model.model_fields.items()]  # type: ignore[attr-defined]
    close = difflib.get_close_matches(str(path[-1]), names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
