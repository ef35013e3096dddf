"""HubSpot's published OpenAPI documents: routing, and request/response validation against them.

Two validators read the same four documents (contacts, companies, lists, properties):

* ``openapi-core``: the reference. Per-operation lookups are cached (no path search per request),
  but its schema validation is pure-Python jsonschema: about 4-5 ms for a 100-input batch and
  7 ms for the 100-result answer, too slow for benchmarks.
* ``compiled``: each operation's schemas compiled once into plain Python checks (the OAS 3.0
  subset these documents use; an unknown keyword refuses to compile, so nothing is skipped
  silently). About 0.1 ms per batch. When it rejects something, openapi-core words the error so
  the message is the reference one.

``both`` runs the two and records any disagreement (tests assert there is none).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ValidationMode = Literal["compiled", "openapi-core", "both", "off"]
SPEC_FILES = ("contacts.json", "companies.json", "lists.json", "properties.json")
HOST_URL = "https://api.hubapi.com"  # the documents' server; requests are validated as if sent there

# Places where the published documents are stricter than the live API, each relaxed with its
# evidence. Without these the official SDK's own requests would be "invalid".
# (schema name, property no longer required, why)
RELAXATIONS: tuple[tuple[str, str, str], ...] = (
    ("SimplePublicObjectBatchInputForCreate", "associations",
     "the SDK model makes it optional and HubSpot's maintainers show batch create without it "
     "(HubSpot/hubspot-api-python#134)"),
    ("SimplePublicObjectInputForCreate", "associations", "same as batch create"),
    ("BatchReadInputSimplePublicObjectId", "propertiesWithHistory",
     "optional in the SDK model and in HubSpot's own batch-read examples"),
    ("BatchReadInputSimplePublicObjectId", "properties",
     "optional in the SDK model; HubSpot answers with the default properties"),
    *(("PublicObjectSearchRequest", name, "HubSpot's own search examples send only filterGroups")
      for name in ("after", "limit", "properties", "sorts")),
)


def find_specs_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the four documents: explicit, $ACTIVATION_HUBSPOT_SPECS, or shared/ beside the repo."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("ACTIVATION_HUBSPOT_SPECS"):
        candidates.append(Path(os.environ["ACTIVATION_HUBSPOT_SPECS"]))
    here = Path(__file__).resolve()
    candidates.append(here.parent / "specs")
    for parent in here.parents:  # the repo is cloned with shared/ beside it
        candidates.append(parent / "shared" / "vendor-specs" / "hubspot")
    for candidate in candidates:
        if all((candidate / name).is_file() for name in SPEC_FILES):
            return candidate
    raise FileNotFoundError(
        "HubSpot OpenAPI documents not found (looked for shared/vendor-specs/hubspot beside the repo); "
        "set ACTIVATION_HUBSPOT_SPECS or pass validation='off'"
    )


def load_documents(specs_dir: Path) -> dict[str, dict[str, Any]]:
    docs = {name: json.loads((specs_dir / name).read_text()) for name in SPEC_FILES}
    for doc in docs.values():
        schemas = doc.get("components", {}).get("schemas", {})
        for schema_name, prop, _why in RELAXATIONS:
            schema = schemas.get(schema_name)
            if schema and prop in schema.get("required", []):
                schema["required"] = [r for r in schema["required"] if r != prop]
    return docs


# --------------------------------------------------------------------------------------------
# Routing


@dataclass(frozen=True)
class Operation:
    doc: str  # file name of the document that defines it
    method: str  # lower case
    template: str  # path template as written in the document
    operation_id: str

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.template}"


@dataclass(frozen=True)
class Match:
    operation: Operation
    spec_path: str  # the path as the document sees it (custom object types mapped onto contacts)
    variables: dict[str, str]  # path variables by the document's names
    object_type: str | None  # the object type segment as sent (objects API only)


class Router:
    """Finds the documented operation for a request; literal segments win over variables."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.by_segments: dict[int, list[tuple[tuple[str | None, ...], tuple[str, ...], dict[str, Operation]]]] = {}
        for doc_name, doc in docs.items():
            for template, item in doc["paths"].items():
                ops = {
                    method: Operation(doc_name, method, template, op.get("operationId", ""))
                    for method, op in item.items()
                    if method in ("get", "post", "put", "patch", "delete")
                }
                parts = template.strip("/").split("/")
                pattern = tuple(None if p.startswith("{") else p for p in parts)
                names = tuple(p[1:-1] for p in parts if p.startswith("{"))
                self.by_segments.setdefault(len(parts), []).append((pattern, names, ops))
        for entries in self.by_segments.values():  # most literal first
            entries.sort(key=lambda e: -sum(p is not None for p in e[0]))

    def match(self, method: str, path: str, objects_doc_type: Callable[[str], str | None]) -> Match | int:
        """The match, or 404 (no such path) / 405 (path without that method)."""
        parts = path.strip("/").split("/")
        object_type = None
        if len(parts) >= 4 and parts[:3] == ["crm", "v3", "objects"]:
            object_type = parts[3]
            mapped = objects_doc_type(object_type)  # contacts, companies, or contacts for custom types
            if mapped is None:
                return 404
            parts = parts[:3] + [mapped] + parts[4:]
        path_exists = False
        for pattern, names, ops in self.by_segments.get(len(parts), []):
            if all(p is None or p == s for p, s in zip(pattern, parts)):
                path_exists = True
                op = ops.get(method.lower())
                if op is None:
                    continue
                values = [s for p, s in zip(pattern, parts) if p is None]
                return Match(op, "/" + "/".join(parts), dict(zip(names, values)), object_type)
        return 405 if path_exists else 404


# --------------------------------------------------------------------------------------------
# Compiled checks (OAS 3.0 subset)

Checker = Callable[[Any, str], "str | None"]  # (value, where) -> first error, or None


class Unsupported(Exception):
    """A schema keyword the compiler does not implement: the operation falls back to openapi-core."""


_IGNORED = {"description", "example", "title", "default", "deprecated", "externalDocs", "xml"}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _format_checker() -> Callable[[Any, str], bool]:
    # The same format functions openapi-core uses (jsonschema's plus OAS 3.0's int32/int64).
    from openapi_schema_validator import oas30_format_checker

    return lambda value, fmt: oas30_format_checker.conforms(value, fmt)


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
                self.refs[ref] = lambda v, w: cell[0](v, w)  # placeholder: schemas may recurse
                cell.append(self.compile(self._pointer(ref)))
            return self.refs[ref]
        return self._compile_node(schema)

    def _compile_node(self, s: dict[str, Any]) -> Checker:
        unknown = {k for k in s if k not in _IGNORED and not k.startswith("x-")} - {
            "type", "nullable", "enum", "format", "pattern", "required", "properties",
            "additionalProperties", "items", "oneOf", "anyOf", "allOf", "readOnly", "writeOnly",
        }
        if unknown:
            raise Unsupported(f"keywords {sorted(unknown)}")
        checks: list[Checker] = []
        nullable = bool(s.get("nullable", False))
        if "type" in s:
            type_name = s["type"]
            is_type = _TYPES[type_name]

            def check_type(v: Any, w: str) -> str | None:
                return None if is_type(v) else f"{v!r} is not of type '{type_name}'{_at(w)}"

            checks.append(check_type)
        if "enum" in s:
            allowed = s["enum"]

            def check_enum(v: Any, w: str) -> str | None:
                return None if v in allowed else f"{v!r} is not one of {allowed!r}{_at(w)}"

            checks.append(check_enum)
        if "format" in s:
            fmt, conforms = s["format"], self.conforms

            def check_format(v: Any, w: str) -> str | None:
                return None if conforms(v, fmt) else f"{v!r} is not a '{fmt}'{_at(w)}"

            checks.append(check_format)
        if "pattern" in s:
            regex = re.compile(s["pattern"])

            def check_pattern(v: Any, w: str) -> str | None:
                if isinstance(v, str) and not regex.search(v):
                    return f"{v!r} does not match {s['pattern']!r}{_at(w)}"
                return None

            checks.append(check_pattern)
        if "required" in s or "properties" in s or "additionalProperties" in s:
            checks.append(self._object_check(s))
        if "items" in s:
            item_check = self.compile(s["items"])

            def check_items(v: Any, w: str) -> str | None:
                if isinstance(v, list):
                    for i, item in enumerate(v):
                        err = item_check(item, f"{w}[{i}]")
                        if err:
                            return err
                return None

            checks.append(check_items)
        for combinator in ("oneOf", "anyOf", "allOf"):
            if combinator in s:
                checks.append(self._combinator(combinator, [self.compile(sub) for sub in s[combinator]]))

        def check(v: Any, w: str) -> str | None:
            if v is None:  # OAS 3.0: null only where nullable
                return None if nullable or "type" not in s else f"None is not of type '{s['type']}'{_at(w)}"
            for c in checks:
                err = c(v, w)
                if err:
                    return err
            return None

        return check

    def _object_check(self, s: dict[str, Any]) -> Checker:
        required: list[str] = list(s.get("required", []))
        props = {name: self.compile(sub) for name, sub in s.get("properties", {}).items()}
        extra = s.get("additionalProperties", True)
        extra_check = self.compile(extra) if isinstance(extra, dict) else None

        def check_object(v: Any, w: str) -> str | None:
            if not isinstance(v, dict):
                return None
            for name in required:
                if name not in v:
                    return f"{name!r} is a required property{_at(w)}"
            for name, value in v.items():
                sub = props.get(name)
                if sub is not None:
                    err = sub(value, f"{w}.{name}" if w else name)
                elif extra is False:
                    return f"Additional properties are not allowed ({name!r} was unexpected){_at(w)}"
                elif extra_check is not None:
                    err = extra_check(value, f"{w}.{name}" if w else name)
                else:
                    err = None
                if err:
                    return err
            return None

        return check_object

    @staticmethod
    def _combinator(kind: str, subs: list[Checker]) -> Checker:
        def check(v: Any, w: str) -> str | None:
            ok = sum(1 for sub in subs if sub(v, w) is None)
            if kind == "oneOf" and ok != 1:
                return f"{v!r} is valid under {ok} of the oneOf schemas, not exactly one{_at(w)}"
            if kind == "anyOf" and ok == 0:
                return f"{v!r} is not valid under any of the given schemas{_at(w)}"
            if kind == "allOf" and ok != len(subs):
                return f"{v!r} is not valid under all of the allOf schemas{_at(w)}"
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
    body_check, body_required = None, False
    if "requestBody" in spec_op:
        rb = compiler.resolve(spec_op["requestBody"])
        body_required = bool(rb.get("required"))
        schema = _media_schema(rb.get("content", {}))
        body_check = compiler.compile(schema) if schema is not None else None
    responses: dict[str, Checker | None] = {}
    for status, raw in spec_op.get("responses", {}).items():
        resp = compiler.resolve(raw)
        schema = _media_schema(resp.get("content", {}))
        responses[status] = compiler.compile(schema) if schema is not None else None
    return CompiledOperation(list(params.values()), body_check, body_required, responses)


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


# --------------------------------------------------------------------------------------------
# The validator the server uses


@dataclass
class Problem:
    """Why a request (or one of our responses) does not conform."""

    where: Literal["parameters", "body"]
    detail: str


@dataclass
class SpecValidator:
    docs: dict[str, dict[str, Any]]
    mode: ValidationMode
    disagreements: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.router = Router(self.docs)
        self._compilers = {name: SchemaCompiler(doc) for name, doc in self.docs.items()}
        self._compiled: dict[str, CompiledOperation | None] = {}
        self._oc: _OpenApiCore | None = None
        if self.mode in ("openapi-core", "both"):
            self._oc = _OpenApiCore(self.docs)

    def compiled(self, op: Operation) -> CompiledOperation | None:
        if op.key not in self._compiled:  # compiled once per operation; None = needs openapi-core
            try:
                self._compiled[op.key] = compile_operation(self._compilers[op.doc], self.docs[op.doc], op)
            except Unsupported:
                self._compiled[op.key] = None
        return self._compiled[op.key]

    def _core(self) -> _OpenApiCore:
        if self._oc is None:
            self._oc = _OpenApiCore(self.docs)  # lazily, to word an error or for an uncompilable op
        return self._oc

    # -- requests

    def check_request(self, match: Match, query: list[tuple[str, str]], headers: dict[str, str],
                      body: bytes, parsed_body: Any) -> Problem | None:
        if self.mode == "off":
            return None
        compiled = self.compiled(match.operation)
        if self.mode == "openapi-core" or compiled is None:
            return self._core().check_request(match, query, headers, body)
        problem = _check_request_compiled(compiled, match, query, headers, body, parsed_body)
        if self.mode == "both":
            reference = self._core().check_request(match, query, headers, body)
            if (problem is None) != (reference is None):
                self.disagreements.append(f"request {match.operation.key}: compiled={problem} openapi-core={reference}")
            return reference
        if problem is not None:  # word it as openapi-core does (rare path, cost irrelevant)
            return self._core().check_request(match, query, headers, body) or problem
        return None

    # -- responses

    def check_response(self, match: Match, status: int, body: Any, raw: bytes,
                       query: list[tuple[str, str]], headers: dict[str, str]) -> str | None:
        if self.mode == "off":
            return None
        compiled = self.compiled(match.operation)
        if self.mode == "openapi-core" or compiled is None:
            return self._core().check_response(match, status, raw, query, headers)
        problem = _check_response_compiled(compiled, status, body)
        if self.mode == "both":
            reference = self._core().check_response(match, status, raw, query, headers)
            if (problem is None) != (reference is None):
                self.disagreements.append(f"response {match.operation.key} {status}: compiled={problem} openapi-core={reference}")
            return reference
        return problem


def _check_request_compiled(compiled: CompiledOperation, match: Match, query: list[tuple[str, str]],
                            headers: dict[str, str], body: bytes, parsed_body: Any) -> Problem | None:
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
        err = param.check(value, "")
        if err:
            return Problem("parameters", f"Invalid {param.location} parameter {param.name}: {err}")
    if compiled.body is not None or compiled.body_required:
        if not body:
            return Problem("body", "Missing required request body") if compiled.body_required else None
        if compiled.body is not None:
            err = compiled.body(parsed_body, "")
            if err:
                return Problem("body", err)
    return None


def _check_response_compiled(compiled: CompiledOperation, status: int, body: Any) -> str | None:
    key = str(status)
    if key not in compiled.responses:
        key = f"{key[0]}XX" if f"{key[0]}XX" in compiled.responses else "default"
    if key not in compiled.responses:
        return f"status {status} is not documented for this operation"
    check = compiled.responses[key]
    if check is None or body is None:
        return None
    return check(body, "")


class _OpenApiCore:
    """openapi-core validators with a cached operation lookup instead of a path search per request."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        from jsonschema_path import SchemaPath
        from openapi_core import V30RequestValidator, V30ResponseValidator

        class RequestValidator(V30RequestValidator):
            def _find_path(self, request: Any) -> Any:
                return request.found

            def _get_security(self, parameters: Any, operation: Any) -> dict[str, Any]:
                return {}  # the emulator checks the bearer token itself (oauth2 is not checkable here)

        class ResponseValidator(V30ResponseValidator):
            def _find_path(self, request: Any) -> Any:
                return request.found

        self.specs = {name: SchemaPath.from_dict(copy.deepcopy(doc)) for name, doc in docs.items()}
        self.paths = {name: dict((sp / "paths").str_items()) for name, sp in self.specs.items()}
        # The documents give error bodies as */*: deserialize them as the JSON they are.
        extra = {"*/*": json.loads}
        self.request_validators = {n: RequestValidator(sp, extra_media_type_deserializers=extra) for n, sp in self.specs.items()}
        self.response_validators = {n: ResponseValidator(sp, extra_media_type_deserializers=extra) for n, sp in self.specs.items()}
        self._found: dict[str, Any] = {}

    def _request(self, match: Match, query: list[tuple[str, str]], headers: dict[str, str], body: bytes) -> Any:
        from openapi_core.datatypes import RequestParameters
        from openapi_core.templating.datatypes import TemplateResult
        from openapi_core.templating.paths.datatypes import PathOperationServer
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        op = match.operation
        found = self._found.get(op.key)
        if found is None:
            path = self.paths[op.doc][op.template]
            found = self._found[op.key] = PathOperationServer(path, path / op.method, None, TemplateResult(op.template, {}), None)

        class Request:
            pass

        request = Request()
        request.found = found  # type: ignore[attr-defined]
        request.method = op.method  # type: ignore[attr-defined]
        request.host_url = HOST_URL  # type: ignore[attr-defined]
        request.path = match.spec_path  # type: ignore[attr-defined]
        request.body = body  # type: ignore[attr-defined]
        request.content_type = headers.get("content-type", "application/json")  # type: ignore[attr-defined]
        request.parameters = RequestParameters(  # type: ignore[attr-defined]
            path=dict(match.variables), query=ImmutableMultiDict(query), header=Headers(list(headers.items())),
            cookie=ImmutableMultiDict(),
        )
        return request

    def check_request(self, match: Match, query: list[tuple[str, str]], headers: dict[str, str], body: bytes) -> Problem | None:
        request = self._request(match, query, headers, body)
        for err in self.request_validators[match.operation.doc].iter_errors(request):
            where: Literal["parameters", "body"] = "body" if "Body" in type(err).__name__ else "parameters"
            return Problem(where, _describe(err))
        return None

    def check_response(self, match: Match, status: int, raw: bytes, query: list[tuple[str, str]],
                       headers: dict[str, str]) -> str | None:
        from werkzeug.datastructures import Headers

        class Response:
            status_code = status
            data = raw
            content_type = "application/json"
            headers = Headers([("Content-Type", "application/json")])

        request = self._request(match, query, headers, b"")
        for err in self.response_validators[match.operation.doc].iter_errors(request, Response()):
            return _describe(err)
        return None


def _describe(err: BaseException) -> str:
    """openapi-core's exception plus the jsonschema detail it wraps."""
    cause = err.__cause__
    schema_errors: Iterable[Any] = getattr(cause, "schema_errors", ()) or ()
    details = []
    for e in schema_errors:
        where = ".".join(str(p) for p in e.absolute_path)
        details.append(f"{e.message}{_at(where)}")
    if details:
        return "; ".join(details)
    if cause is not None:
        return f"{err}: {cause}"
    return str(err) or type(err).__name__
