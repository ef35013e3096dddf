"""HubSpot's published OpenAPI documents: where they are, how they are loaded, and routing by them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ValidationMode = Literal["compiled", "openapi-core", "both", "off"]
SPEC_FILES = ("contacts.json", "companies.json", "lists.json", "properties.json")
HOST_URL = "https://api.hubapi.com"  # the documents' server; requests are validated as if sent there

# Places where the published documents are stricter than the live API, each relaxed with its
# evidence. Without these the official SDK's own requests would be "invalid".
# (schema name, property no longer required, why)
# `propertiesWithHistory` of a batch read is NOT relaxed: the documents require it and the SDK
# model leaves it out unless given, so a client must send it (an empty list).
RELAXATIONS: tuple[tuple[str, str, str], ...] = (
    (
        "SimplePublicObjectBatchInputForCreate",
        "associations",
        "the SDK model makes it optional and HubSpot's maintainers show batch create without it (HubSpot/hubspot-api-python#134)",
    ),
    ("SimplePublicObjectInputForCreate", "associations", "same as batch create"),
    ("BatchReadInputSimplePublicObjectId", "properties", "optional in the SDK model; HubSpot answers with the default properties"),
    *(
        ("PublicObjectSearchRequest", name, "HubSpot's own search examples send only filterGroups")
        for name in ("after", "limit", "properties", "sorts")
    ),
)


def beside_the_repository() -> Path:
    """The one documented default place of the documents: shared/vendor-specs/hubspot in the
    directory that holds this checkout (not any parent's: a clone must not find another
    clone's copy further up)."""
    checkout = Path(__file__).resolve().parents[2]  # <checkout>/activation_emulators/hubspot/spec.py
    return checkout.parent / "shared" / "vendor-specs" / "hubspot"


def find_specs_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the four documents: `explicit`, else $ACTIVATION_HUBSPOT_SPECS, else
    shared/vendor-specs/hubspot beside the checkout; the first of these given is the only one
    looked at."""
    env = os.environ.get("ACTIVATION_HUBSPOT_SPECS")
    where, candidate = (
        ("the folder given", Path(explicit))
        if explicit
        else ("$ACTIVATION_HUBSPOT_SPECS", Path(env))
        if env
        else ("beside the checkout", beside_the_repository())
    )
    if all((candidate / name).is_file() for name in SPEC_FILES):
        return candidate
    raise FileNotFoundError(
        f"HubSpot OpenAPI documents not found in {candidate} ({where}: needs {', '.join(SPEC_FILES)}); "
        "set ACTIVATION_HUBSPOT_SPECS to their folder, or pass validation='off'"
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
            if all(p is None or p == s for p, s in zip(pattern, parts, strict=False)):
                path_exists = True
                op = ops.get(method.lower())
                if op is None:
                    continue
                values = [s for p, s in zip(pattern, parts, strict=False) if p is None]
                return Match(op, "/" + "/".join(parts), dict(zip(names, values, strict=False)), object_type)
        return 405 if path_exists else 404


#: What the emulator serves, as (document, method, path template): its routes when HubSpot's
#: documents are not on this machine. Then nothing is validated (the emulator says so).
ROUTES: tuple[tuple[str, str, str], ...] = tuple(
    [
        (f"{doc}.json", method, template.format(doc=doc, id=id_name))
        for doc, id_name in (("contacts", "{contactId}"), ("companies", "{companyId}"))
        for method, template in (
            ("get", "/crm/v3/objects/{doc}"),
            ("post", "/crm/v3/objects/{doc}"),
            ("post", "/crm/v3/objects/{doc}/search"),
            ("get", "/crm/v3/objects/{doc}/{id}"),
            ("patch", "/crm/v3/objects/{doc}/{id}"),
            ("delete", "/crm/v3/objects/{doc}/{id}"),
            *(("post", f"/crm/v3/objects/{{doc}}/batch/{b}") for b in ("archive", "create", "read", "update", "upsert")),
        )
    ]
    + [
        ("lists.json", method, template)
        for method, template in (
            ("get", "/crm/v3/lists"),
            ("post", "/crm/v3/lists"),
            ("post", "/crm/v3/lists/search"),
            ("get", "/crm/v3/lists/{listId}"),
            ("delete", "/crm/v3/lists/{listId}"),
            ("get", "/crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}"),
            ("get", "/crm/v3/lists/{listId}/memberships"),
            ("put", "/crm/v3/lists/{listId}/memberships/add"),
            ("put", "/crm/v3/lists/{listId}/memberships/remove"),
            ("put", "/crm/v3/lists/{listId}/memberships/add-and-remove"),
        )
    ]
    + [
        ("properties.json", method, template)
        for method, template in (
            ("get", "/crm/v3/properties/{objectType}"),
            ("post", "/crm/v3/properties/{objectType}"),
            ("get", "/crm/v3/properties/{objectType}/{propertyName}"),
        )
    ]
)


def route_documents() -> dict[str, dict[str, Any]]:
    """Stand-in documents holding only the paths of ROUTES (for routing, not validation)."""
    docs: dict[str, dict[str, Any]] = {name: {"openapi": "3.0.1", "paths": {}} for name in SPEC_FILES}
    for name, method, template in ROUTES:
        docs[name]["paths"].setdefault(template, {})[method] = {"operationId": f"{method}-{template}"}
    return docs
