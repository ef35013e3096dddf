"""Request and response validation against HubSpot's documents, in one of four modes.

* ``openapi-core``: the reference. Per-operation lookups are cached (no path search per request),
  but its schema validation is pure-Python jsonschema: about 4.5 ms for a 100-input batch and
  8 ms for the 100-result answer, too slow for benchmarks.
* ``compiled``: the same schemas compiled once per operation (`checks`): about 0.1 ms and 0.4 ms.
  When it rejects something, openapi-core words the error so the message is the reference one.
* ``both``: runs the two and records any disagreement (tests assert there is none).
* ``off``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import checks
from .checks import CompiledOperation, Problem, SchemaCompiler, Unsupported, compile_operation
from .spec import HOST_URL, Match, Operation, Router, ValidationMode


@dataclass
class SpecValidator:
    """Routes requests and checks them (and our answers) against the documents."""

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

    def check_request(
        self, match: Match, query: list[tuple[str, str]], headers: dict[str, str], body: bytes, parsed_body: Any
    ) -> Problem | None:
        if self.mode == "off":
            return None
        compiled = self.compiled(match.operation)
        if self.mode == "openapi-core" or compiled is None:
            return self._core().check_request(match, query, headers, body)
        problem = checks.check_request(compiled, match, query, headers, body, parsed_body)
        if self.mode == "both":
            reference = self._core().check_request(match, query, headers, body)
            if (problem is None) != (reference is None):
                self.disagreements.append(f"request {match.operation.key}: compiled={problem} openapi-core={reference}")
            return reference
        if problem is not None:  # word it as openapi-core does (rare path, cost irrelevant)
            return self._core().check_request(match, query, headers, body) or problem
        return None

    # -- responses

    def check_response(
        self, match: Match, status: int, body: Any, raw: bytes, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> str | None:
        if self.mode == "off":
            return None
        compiled = self.compiled(match.operation)
        if self.mode == "openapi-core" or compiled is None:
            return self._core().check_response(match, status, raw, query, headers)
        problem = checks.check_response(compiled, status, body)
        if self.mode == "both":
            reference = self._core().check_response(match, status, raw, query, headers)
            if (problem is None) != (reference is None):
                self.disagreements.append(f"response {match.operation.key} {status}: compiled={problem} openapi-core={reference}")
            return reference
        return problem


@dataclass
class _CoreRequest:
    """openapi-core's Request protocol, plus the operation found by our router."""

    found: Any
    method: str
    host_url: str
    path: str
    body: bytes
    content_type: str
    parameters: Any


@dataclass
class _CoreResponse:
    status_code: int
    content_type: str
    headers: Any
    data: bytes


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

        self.docs = docs
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

        return _CoreRequest(
            found=found,
            method=op.method,
            host_url=HOST_URL,
            path=match.spec_path,
            body=body,
            content_type=headers.get("content-type", "application/json"),
            parameters=RequestParameters(
                path=dict(match.variables),
                query=ImmutableMultiDict(query),
                header=Headers(list(headers.items())),
                cookie=ImmutableMultiDict(),
            ),
        )

    def check_request(self, match: Match, query: list[tuple[str, str]], headers: dict[str, str], body: bytes) -> Problem | None:
        request = self._request(match, query, headers, body)
        for err in self.request_validators[match.operation.doc].iter_errors(request):
            where: Literal["parameters", "body"] = "body" if "Body" in type(err).__name__ else "parameters"
            return Problem(where, _describe(err))
        return None

    def check_response(self, match: Match, status: int, raw: bytes, query: list[tuple[str, str]], headers: dict[str, str]) -> str | None:
        from werkzeug.datastructures import Headers

        op = match.operation
        documented = self.docs[op.doc]["paths"][op.template][op.method]["responses"].get(str(status), {})
        if not raw and "content" in documented and not documented["content"]:
            return None  # "content: {}" means no body; openapi-core would ask for one

        response = _CoreResponse(status, "application/json", Headers([("Content-Type", "application/json")]), raw)
        request = self._request(match, query, headers, b"")
        for err in self.response_validators[match.operation.doc].iter_errors(request, response):
            return _describe(err)
        return None


def _describe(err: BaseException) -> str:
    """openapi-core's exception plus the jsonschema detail it wraps."""
    cause = err.__cause__
    schema_errors: Iterable[Any] = getattr(cause, "schema_errors", ()) or ()
    details = []
    for e in schema_errors:
        where = ".".join(str(p) for p in e.absolute_path)
        details.append(f"{e.message} (at {where})" if where else e.message)
    if details:
        return "; ".join(details)
    if cause is not None:
        return f"{err}: {cause}"
    return str(err) or type(err).__name__
