"""Sandboxed Jinja for SQL models and field mappings.

SQL templates and field expressions come from a reviewed YAML file, but a config file is
still input: the sandbox refuses attribute access to Python internals (`__class__`,
`__globals__`, …) and undefined names are errors rather than empty strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from operator import itemgetter
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate, native_concat
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateProblem(Exception):
    """A template failed to parse or render; the message says why."""


def _sql_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    return env


class _NativeSandbox(ImmutableSandboxedEnvironment):
    """Sandboxed environment whose single-expression templates return native values.

    `{{ row.ltv }}` stays a Decimal/number; `{{ row.plan | upper }}` is a str. This matters
    because the destination should receive typed values, not everything as a string.
    """

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(native_concat)  # type: ignore[assignment]
    template_class = NativeTemplate  # type: ignore[assignment]


SQL_ENV = _sql_env()
FIELD_ENV = _NativeSandbox(undefined=StrictUndefined, autoescape=False)


def render_sql(source: str, context: dict[str, Any], *, origin: str) -> str:
    try:
        return SQL_ENV.from_string(source).render(**context)
    except TemplateError as e:
        line = getattr(e, "lineno", None)
        where = f"{origin}, template line {line}" if line else origin
        raise TemplateProblem(f"{where}: {type(e).__name__}: {e}") from e


def is_expression(mapping: str) -> bool:
    return "{{" in mapping or "{%" in mapping


@lru_cache(maxsize=512)
def compile_field(expression: str) -> Callable[[dict[str, Any]], Any]:
    """Compile a field mapping: a plain column name, or a jinja expression over `row`."""
    if not is_expression(expression):
        return itemgetter(expression.strip())
    try:
        template = FIELD_ENV.from_string(expression)
    except TemplateError as e:
        raise TemplateProblem(f"invalid template {expression!r}: {e}") from e

    def render(row: dict[str, Any]) -> Any:
        return template.render(row=row)

    return render


def columns_used(expression: str, available: Iterable[str]) -> set[str]:
    """Columns of the model a field mapping reads.

    `row.x` and `row['x']` name a column; any other use of `row` (e.g. `row | tojson`)
    reads them all. Raises TemplateProblem on a syntax error.
    """
    if not is_expression(expression):
        return {expression.strip()}
    try:
        ast = FIELD_ENV.parse(expression)
    except TemplateError as e:
        raise TemplateProblem(f"invalid template {expression!r}: {e}") from e
    used: set[str] = set()
    whole_row = False
    attr_of_row: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node.node, nodes.Name) and node.node.name == "row":
            attr_of_row.add(id(node.node))
            if isinstance(node, nodes.Getattr):
                used.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                used.add(node.arg.value)
            else:
                whole_row = True
    for name in ast.find_all(nodes.Name):
        if name.name == "row" and id(name) not in attr_of_row:
            whole_row = True
        elif name.name != "row" and name.ctx == "load":
            raise TemplateProblem(f"{expression!r} uses {name.name!r}; only `row` is available")
    return set(available) if whole_row else used
