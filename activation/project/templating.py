"""Sandboxed Jinja for SQL models and field mappings.

SQL templates and field expressions come from a reviewed YAML file, but a config file is
still input: the sandbox refuses attribute access to Python internals (`__class__`,
`__globals__`, …) and undefined names are errors rather than empty strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import chain, islice
from operator import itemgetter
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.nativetypes import NativeCodeGenerator, NativeEnvironment, NativeTemplate
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateProblem(Exception):
    """A template failed to parse or render; the message says why."""


def _sql_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    return env


def _typed_concat(values: Iterable[Any]) -> Any:
    """The value of a rendered field: a single expression's value as it is, else the text.

    Jinja's own native concat parses text output with `ast.literal_eval`, so a string column
    holding '1234', 'None' or '[1]' would turn into a number, null or list: data changing type
    depending on its content. Here text stays text, and only an expression's own value keeps
    its type.
    """
    head = list(islice(values, 2))
    if not head:
        return None
    if len(head) == 1:
        return head[0]
    return "".join(str(v) for v in chain(head, values))


class _NativeSandbox(ImmutableSandboxedEnvironment, NativeEnvironment):
    """Sandboxed environment whose single-expression templates return native values.

    `{{ row.ltv }}` stays a Decimal/number; `{{ row.plan | upper }}` is a str, and so is a
    string column whose text looks like a number. This matters because the destination
    should receive typed values, not everything as a string. (A NativeEnvironment too, as
    NativeTemplate expects; the sandbox's methods come first.)
    """

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(_typed_concat)


class _TypedTemplate(NativeTemplate):
    environment_class = _NativeSandbox  # NativeTemplate.render calls environment_class.concat


_NativeSandbox.template_class = _TypedTemplate


SQL_ENV = _sql_env()
FIELD_ENV = _NativeSandbox(undefined=StrictUndefined, autoescape=False)


_DUNDER = re.compile(r"__\w*[A-Za-z0-9]\w*")


def _check_safe(source: str, ast: nodes.Template, what: str) -> None:
    """Refuse, before anything runs, a template reaching for Python internals.

    The sandbox would refuse them too, but only when the template runs (for a field: per
    row); a template that can never work is a configuration error, reported up front.
    """
    found: set[str] = set()
    used = [*(n.attr for n in ast.find_all(nodes.Getattr)), *(n.value for n in ast.find_all(nodes.Const))]
    for name in used:
        if isinstance(name, str) and _DUNDER.fullmatch(name):
            found.add(name)
    if found:
        names = ", ".join(repr(n) for n in sorted(found, key=source.find))
        raise TemplateProblem(f"{what} uses {names}: Python internals (names starting with '__') are not allowed in templates")


def render_sql(source: str, context: dict[str, Any], *, origin: str) -> str:
    try:
        _check_safe(source, SQL_ENV.parse(source), origin)
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
        problem = TemplateProblem(f"invalid template {expression!r}: {e}")

        # `columns_used` reports this when the sync is prepared, with the field's location;
        # it never gets to map a row.
        def fail(row: dict[str, Any]) -> Any:
            raise problem

        return fail

    def render(row: dict[str, Any]) -> Any:
        return template.render(row=row)

    return render


def columns_used(expression: str, available: Iterable[str]) -> set[str]:
    """Columns of the model a field mapping reads.

    `row.x` and `row['x']` name a column; any other use of `row` (e.g. `row | tojson`)
    reads them all. Raises TemplateProblem for a template that cannot work: a syntax error,
    an unknown filter, a name other than `row`, a reach for Python internals.
    """
    if not is_expression(expression):
        return {expression.strip()}
    try:
        ast = FIELD_ENV.parse(expression)
        _check_safe(expression, ast, repr(expression))
        FIELD_ENV.compile(ast)  # unknown filters and tests are found when compiling
    except TemplateError as e:
        raise TemplateProblem(f"invalid template {expression!r}: {e}") from e
    used: set[str] = set()
    whole_row = False
    attr_of_row: set[int] = set()
    # (one find_all per node class: given a tuple of classes, its annotation yields plain Expr)
    accesses: list[nodes.Getattr | nodes.Getitem] = [*ast.find_all(nodes.Getattr), *ast.find_all(nodes.Getitem)]
    for node in accesses:
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
