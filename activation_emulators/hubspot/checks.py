"""Compiled checks: each documented operation's schemas turned once into plain Python checks.

The OAS 3.0 subset HubSpot's documents use (type, enum, format, pattern, required, properties,
additionalProperties, items, oneOf/anyOf/allOf, nullable); an unknown keyword refuses to compile
and the operation falls back to openapi-core, so nothing is skipped silently. Failures carry
their path, filled in only on the way back up, so the happy path builds no strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .spec import Match, Operation


class Fail:
    """A compiled check's failure; the path is filled in on the way back up (only on failure)."""

    __slots__ = ("message", "path")

    def __init__(self, message: str) -> None:
        self.message = message
        self.path: list[str | int] = []

    def at(self, step: str | int) -> Fail:
        self.path.append(step)
        return self

    def __str__(self) -> str:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(self.path)).lstrip(".")
        return f"{self.message}{_at(where)}"


Checker = Callable[[Any], "Fail | None"]


class Unsupported(Exception):
    """A schema keyword the compiler does not implement: the operation falls back to openapi-core."""


_IGNORED = {"description", "example", "title", "default", "deprecated", "externalDocs", "xml"}
_HANDLED = {
    "type",
    "nullable",
    "enum",
    "format",
    "pattern",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "oneOf",
    "anyOf",
    "allOf",
    "readOnly",
    "writeOnly",
}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: type(v) is bool,
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _format_checker() -> Callable[[Any, str], bool]:
    # The same format functions openapi-core uses (jsonschema's, plus OAS 3.0's int32/int64).
    from datetime import datetime

    from openapi_schema_validator import oas30_format_checker

    conforms = oas30_format_checker.conforms

    def check(value: Any, fmt: str) -> bool:
        if fmt == "date-time" and type(value) is str and _RFC3339.match(value):
            try:  # fast path for the common shape; anything unusual goes to the reference check
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return True
            except ValueError:
                pass
        return conforms(value, fmt)

    return check


class SchemaCompiler:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.refs: dict[str, Checker] = {}
        self.conforms = _format_checker()

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self._pointer(node["$ref"])
        return node

    def _pointer(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise Unsupported(f"external $ref {ref}")
        node: Any = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def compile(self, schema: dict[str, Any]) -> Checker:
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref not in self.refs:
                cell: list[Checker] = []
                self.refs[ref] = lambda v: cell[0](v)  # placeholder: schemas may recurse
                compiled = self.compile(self._pointer(ref))
                cell.append(compiled)
                self.refs[ref] = compiled  # later users call it directly
            return self.refs[ref]
        return self._compile_node(schema)

    def _compile_node(self, s: dict[str, Any]) -> Checker:
        keys = {k for k in s if k not in _IGNORED and not k.startswith("x-")}
        if keys - _HANDLED:
            raise Unsupported(f"keywords {sorted(keys - _HANDLED)}")
        nullable = bool(s.get("nullable", False))
        type_name = s.get("type")
        is_type = _TYPES[type_name] if type_name else None
        if keys == {"type"}:  # the common leaf: one type test

            def leaf(v: Any) -> Fail | None:
                if is_type(v) or (nullable and v is None):  # type: ignore[misc]
                    return None
                return Fail(f"{v!r} is not of type '{type_name}'")

            return leaf

        checks: list[Checker] = []
        if "enum" in s:
            allowed = s["enum"]
            checks.append(lambda v: None if v in allowed else Fail(f"{v!r} is not one of {allowed!r}"))
        if "format" in s:
            fmt, conforms = s["format"], self.conforms
            checks.append(lambda v: None if conforms(v, fmt) else Fail(f"{v!r} is not a '{fmt}'"))
        if "pattern" in s:
            regex, pattern = re.compile(s["pattern"]), s["pattern"]
            checks.append(lambda v: Fail(f"{v!r} does not match {pattern!r}") if type(v) is str and not regex.search(v) else None)
        if keys & {"required", "properties", "additionalProperties"}:
            checks.append(self._object_check(s))
        if "items" in s:
            item_check = self.compile(s["items"])

            def check_items(v: Any) -> Fail | None:
                if type(v) is list:
                    for i, item in enumerate(v):
                        err = item_check(item)
                        if err:
                            return err.at(i)
                return None

            checks.append(check_items)
        for combinator in ("oneOf", "anyOf", "allOf"):
            if combinator in s:
                checks.append(self._combinator(combinator, [self.compile(sub) for sub in s[combinator]]))

        def check(v: Any) -> Fail | None:
            if v is None and (nullable or not type_name):  # OAS 3.0: null only where nullable
                return None
            if is_type is not None and not is_type(v):
                return Fail(f"{v!r} is not of type '{type_name}'")
            for c in checks:
                err = c(v)
                if err:
                    return err
            return None

        return check

    def _object_check(self, s: dict[str, Any]) -> Checker:
        required: list[str] = list(s.get("required", []))
        props = {name: self.compile(sub) for name, sub in s.get("properties", {}).items()}
        extra = s.get("additionalProperties", True)
        extra_check = self.compile(extra) if isinstance(extra, dict) else None
        closed = extra is False

        def check_object(v: Any) -> Fail | None:
            if type(v) is not dict:
                return None
            for name in required:
                if name not in v:
                    return Fail(f"{name!r} is a required property")
            if extra_check is None and not closed:  # only the listed properties need a look
                for name, sub in props.items():
                    if name in v:
                        err = sub(v[name])
                        if err:
                            return err.at(name)
                return None
            for name, value in v.items():
                sub = props.get(name)
                if sub is None:
                    if closed:
                        return Fail(f"Additional properties are not allowed ({name!r} was unexpected)")
                    sub = extra_check
                err = sub(value)  # type: ignore[misc]
                if err:
                    return err.at(name)
            return None

        return check_object

    @staticmethod
    def _combinator(kind: str, subs: list[Checker]) -> Checker:
        def check(v: Any) -> Fail | None:
            ok = sum(1 for sub in subs if sub(v) is None)
            if kind == "oneOf" and ok != 1:
                return Fail(f"{v!r} is valid under {ok} of the oneOf schemas, not exactly one")
            if kind == "anyOf" and ok == 0:
                return Fail(f"{v!r} is not valid under any of the given schemas")
            if kind == "allOf" and ok != len(subs):
                return Fail(f"{v!r} is not valid under all of the allOf schemas")
            return None

        return check


def _at(where: str) -> str:
    return f" (at {where})" if where else ""


@dataclass
class _Param:
    name: str
    location: str
    required: bool
    schema: dict[str, Any]
    check: Checker


@dataclass
class CompiledOperation:
    params: list[_Param]
    body: Checker | None
    body_required: bool
    body_media: list[str]  # the request media types the document lists
    responses: dict[str, Checker | None]  # status code or "default" -> body check (None: no body)


def _media_schema(content: dict[str, Any]) -> dict[str, Any] | None:
    for media in ("application/json", "*/*"):
        if media in content:
            return content[media].get("schema")
    return None


def compile_operation(compiler: SchemaCompiler, doc: dict[str, Any], op: Operation) -> CompiledOperation:
    item = doc["paths"][op.template]
    spec_op = item[op.method]
    params: dict[tuple[str, str], _Param] = {}
    for raw in list(item.get("parameters", [])) + list(spec_op.get("parameters", [])):
        p = compiler.resolve(raw)
        schema = p.get("schema", {})
        params[(p["name"], p["in"])] = _Param(p["name"], p["in"], bool(p.get("required")), schema, compiler.compile(schema))
    body_check, body_required, body_media = None, False, []
    if "requestBody" in spec_op:
        rb = compiler.resolve(spec_op["requestBody"])
        body_required = bool(rb.get("required"))
        body_media = list(rb.get("content", {}))
        schema = _media_schema(rb.get("content", {}))
        body_check = compiler.compile(schema) if schema is not None else None
    responses: dict[str, Checker | None] = {}
    for status, raw in spec_op.get("responses", {}).items():
        resp = compiler.resolve(raw)
        schema = _media_schema(resp.get("content", {}))
        responses[status] = compiler.compile(schema) if schema is not None else None
    return CompiledOperation(list(params.values()), body_check, body_required, body_media, responses)


def _cast_param(param: _Param, values: list[str]) -> Any:
    """Like openapi-core's casting: form-exploded arrays take every value, primitives the first."""
    kind = param.schema.get("type")
    if kind == "array":
        item_type = param.schema.get("items", {}).get("type")
        return [_cast_primitive(item_type, v) for v in values]
    return _cast_primitive(kind, values[0])


_TRUE = ("y", "yes", "t", "true", "on", "1")
_FALSE = ("n", "no", "f", "false", "off", "0")


def _cast_primitive(kind: str | None, value: str) -> Any:
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        low = value.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"invalid truth value {value!r}")
    return value


@dataclass
class Problem:
    """Why a request (or one of our responses) does not conform."""

    where: Literal["parameters", "body"]
    detail: str


def check_request(
    compiled: CompiledOperation, match: Match, query: list[tuple[str, str]], headers: dict[str, str], body: bytes, parsed_body: Any
) -> Problem | None:
    """The first way the request departs from the operation's parameters or body, if any."""
    for param in compiled.params:
        if param.location == "path":
            values = [match.variables[param.name]] if param.name in match.variables else []
        elif param.location == "query":
            values = [v for k, v in query if k == param.name]
        elif param.location == "header":
            value = headers.get(param.name.lower())
            values = [value] if value is not None else []
        else:
            values = []
        if not values:
            if param.required:
                return Problem("parameters", f"Missing required {param.location} parameter: {param.name}")
            continue
        try:
            value = _cast_param(param, values)
        except ValueError as exc:
            return Problem("parameters", f"Failed to cast {param.location} parameter {param.name}: {exc}")
        err = param.check(value)
        if err:
            return Problem("parameters", f"Invalid {param.location} parameter {param.name}: {err}")
    if compiled.body is not None or compiled.body_required:
        if not body:
            return Problem("body", "Missing required request body") if compiled.body_required else None
        mimetype = headers.get("content-type", "").split(";")[0].strip().lower()
        if "*/*" not in compiled.body_media and mimetype not in compiled.body_media:
            return Problem("body", f"Content for the following mimetype not found: {mimetype}. Valid mimetypes: {compiled.body_media}")
        if compiled.body is not None:
            err = compiled.body(parsed_body)
            if err:
                return Problem("body", str(err))
    return None


def check_response(compiled: CompiledOperation, status: int, body: Any) -> str | None:
    """Whether our answer has a documented status and the documented shape."""
    key = str(status)
    if key not in compiled.responses:
        key = f"{key[0]}XX" if f"{key[0]}XX" in compiled.responses else "default"
    if key not in compiled.responses:
        return f"status {status} is not documented for this operation"
    check = compiled.responses[key]
    if check is None or body is None:
        return None
    err = check(body)
    return str(err) if err else None
