"""The `syncs.yaml` key tables, generated from the models that read the file.

`docs/schema.md` is this module's output (`make docs` writes it; a test fails when the
committed page differs), so the reference cannot drift from what `validate` accepts: a key,
its type, its default and its description come from the pydantic model itself.

    python -m activation.project.reference > docs/schema.md
"""

from __future__ import annotations

import re
import sys
from types import ModuleType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from activation.project import spec
from activation.project.strict import Strict
from activation.warehouse import spec as warehouse_spec

HEADER = """# `syncs.yaml` keys (generated)

Every key of every section, with its type, default and description, generated from the
models `activation validate` reads the file with (`python -m activation.project.reference`;
do not edit by hand). The prose reference, with examples, is [reference.md](reference.md).
"""


def models() -> list[type[Strict]]:
    """The models of syncs.yaml: the project's, the warehouses', each destination type's."""
    from activation.destinations import REGISTRY

    modules: list[ModuleType] = [spec, warehouse_spec]
    modules += [sys.modules[p.spec.__module__] for p in REGISTRY.values()]
    found = [
        c
        for mod in modules
        for c in vars(mod).values()
        if isinstance(c, type) and issubclass(c, Strict) and c is not Strict and c.__module__ == mod.__name__
    ]
    return list(dict.fromkeys(found))


def _plain(annotation: Any) -> Any:
    """`annotation` without its Annotated metadata (validators print with their addresses)."""
    if get_origin(annotation) is Annotated:
        return _plain(get_args(annotation)[0])
    args = get_args(annotation)
    if args and get_origin(annotation) in (Union, UnionType):
        return " | ".join(_type(a) for a in args)
    if args and get_origin(annotation) in (list, dict, tuple, set, frozenset):
        return f"{get_origin(annotation).__name__}[{', '.join(_type(a) for a in args)}]"
    return annotation


def _type(annotation: Any) -> str:
    annotation = _plain(annotation)
    if isinstance(annotation, str):
        text = annotation
    elif isinstance(annotation, type) and not get_args(annotation):
        text = annotation.__name__
    else:
        text = re.sub(r"\b(?:typing|[a-z_]+(?:\.[a-z_]+)+)\.", "", str(annotation))
    return text.replace("NoneType", "None")


def _default(f: FieldInfo) -> str:
    if f.default is PydanticUndefined and f.default_factory is None:
        return "required"
    value = f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]
    if value is None or value == {} or value == []:
        return ""
    if isinstance(value, BaseModel):
        return ""
    return f"`{value!r}`".replace("|", "\\|")


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def markdown() -> str:
    out = [HEADER]
    for model in models():  # the project's sections, the warehouses', each destination type's
        out.append(f"\n## {model.__name__}\n")
        if model.__doc__:
            out.append(_cell(model.__doc__.strip().split("\n\n")[0]) + "\n")
        out.append("| key | type | default | |\n|---|---|---|---|")
        for name, f in model.model_fields.items():
            out.append(f"| `{f.alias or name}` | {_cell(_type(f.annotation))} | {_default(f)} | {_cell(f.description)} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
