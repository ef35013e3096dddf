"""In-memory HubSpot portal: object types, property definitions, records and lists.

Property values are strings, as HubSpot stores them. Values are checked against their property's
type the way HubSpot's CRM object APIs do (the error codes and messages are HubSpot's where a
public example confirms them; see `check_value`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

PropertyType = str  # "string" | "number" | "bool" | "enumeration" | "date" | "datetime" | "phone_number"

_FIELD_TYPES = {
    "string": "text",
    "number": "number",
    "bool": "booleancheckbox",
    "enumeration": "select",
    "date": "date",
    "datetime": "date",
    "phone_number": "phonenumber",
}
# HubSpot's rule (per its developer community): RFC-valid, no quoted local part, a real TLD.
# The TLD list is not shipped here, so any alphabetic TLD of 2+ letters passes.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})$"
)


def now_iso() -> str:
    """ISO 8601 with milliseconds and Z, as HubSpot writes timestamps."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class PropertyDef:
    name: str
    type: PropertyType = "string"
    label: str = ""
    field_type: str = ""
    group_name: str = "contactinformation"
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    has_unique_value: bool = False
    hubspot_defined: bool = False
    read_only: bool = False  # written by HubSpot itself (hs_object_id, createdate, ...)
    created_at: str = field(default_factory=now_iso)

    def __post_init__(self) -> None:
        self.label = self.label or self.name.replace("_", " ").title()
        self.field_type = self.field_type or _FIELD_TYPES.get(self.type, "text")
        if self.type == "bool" and not self.options:
            self.options = [_option("Yes", "true", 0), _option("No", "false", 1)]

    @property
    def option_values(self) -> list[str]:
        return [o["value"] for o in self.options]

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": False,
            "hubspotDefined": self.hubspot_defined,
            "formField": not self.read_only,
            "archived": False,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "dataSensitivity": "non_sensitive",
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
        }


def _option(label: str, value: str, order: int) -> dict[str, Any]:
    return {"label": label, "value": value, "displayOrder": order, "hidden": False}


def options_from(values: Iterable[str | dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, dict):
            out.append(_option(v.get("label", v["value"]), v["value"], v.get("displayOrder", i)) | {"hidden": bool(v.get("hidden", False))})
        else:
            out.append(_option(v.replace("_", " ").title(), v, i))
    return out


def check_value(object_type: str, prop: PropertyDef, value: str) -> tuple[str, str] | None:
    """(error code, message) when HubSpot would refuse the value, else None. "" clears a value.

    Confirmed by HubSpot's answers seen in public reports: INVALID_EMAIL, INVALID_OPTION,
    LEADING_TRAILING_WHITESPACE and INVALID_DATE's "... UTC, not midnight!"; the other codes
    and wordings are unconfirmed.
    """
    if value == "":
        return None
    if object_type == "contacts" and prop.name == "email":
        if not _EMAIL.match(value):
            return "INVALID_EMAIL", f"Email address {value} is invalid"  # HubSpot's wording
        return None
    if prop.type in ("string", "phone_number"):
        return None
    if value != value.strip():  # HubSpot refuses this for non-string properties since 2025-01
        return "LEADING_TRAILING_WHITESPACE", f'"{value}" includes leading or trailing whitespace.'
    if prop.type == "number":
        try:
            ok = math.isfinite(float(value))
        except ValueError:
            ok = False
        return None if ok else ("INVALID_NUMBER", f"{value} was not a valid number.")
    if prop.type == "bool":
        return None if value in ("true", "false") else ("INVALID_BOOLEAN", f"{value} was not a valid boolean.")
    if prop.type == "enumeration":
        allowed = prop.option_values
        chosen = value.split(";") if prop.field_type == "checkbox" else [value]
        bad = [v for v in chosen if v not in allowed]
        if bad:
            return "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{', '.join(allowed)}]"
        return None
    if prop.type in ("date", "datetime"):
        when = parse_when(value)
        if when is None:
            return "INVALID_DATE", f"{value} was not a valid {prop.type}."
        if prop.type == "date" and when.time() != dt.time():
            return "INVALID_DATE", f"{value} is at {when:%H:%M:%S}.{when.microsecond // 1000:03d} UTC, not midnight!"
    return None


def parse_when(value: str) -> dt.datetime | None:
    """Epoch milliseconds or ISO 8601 (a date, or a date-time; naive = UTC) as a UTC datetime."""
    try:
        if value.isdigit():
            return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=int(value))
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.timezone.utc)
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)


def stored_value(prop: PropertyDef, value: str) -> str:
    """A valid date or datetime value as HubSpot keeps and returns it: dates as YYYY-MM-DD,
    datetimes as ISO 8601 UTC with milliseconds (whichever of the accepted forms was written)."""
    if value:
        when = parse_when(value)
        if when is not None:
            if prop.type == "date":
                return when.date().isoformat()
            return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


@dataclass
class Record:
    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    archived: bool = False
    archived_at: str | None = None


@dataclass
class ObjectType:
    name: str  # as used in paths: contacts, companies, p_orders
    type_id: str  # 0-1, 0-2, 2-<n>
    singular: str  # CONTACT, COMPANY ... (HubSpot's wording in messages)
    properties: dict[str, PropertyDef] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    unique_index: dict[str, dict[str, str]] = field(default_factory=dict)  # property -> value -> id
    default_read: tuple[str, ...] = ()  # properties a read returns when none are asked for
    modified_property: str = "hs_lastmodifieddate"
    _indexed: list[str] | None = None

    def is_unique(self, name: str) -> bool:
        prop = self.properties.get(name)
        return bool(prop and prop.has_unique_value)

    @staticmethod
    def index_key(name: str, value: str) -> str:
        return value.lower() if name == "email" else value  # email is case-insensitive

    def lookup(self, name: str, value: str) -> Record | None:
        if name in ("hs_object_id", "id"):
            rec = self.records.get(value)
        else:
            rec_id = self.unique_index.get(name, {}).get(self.index_key(name, value))
            rec = self.records.get(rec_id) if rec_id else None
        return rec

    def indexed(self) -> list[str]:
        """Properties with a value index: the unique ones, and email on contacts."""
        if self._indexed is None:  # cached: call schema_changed() after changing properties
            names = [n for n, p in self.properties.items() if p.has_unique_value]
            self._indexed = names + (["email"] if self.name == "contacts" else [])
        return self._indexed

    def schema_changed(self) -> None:
        self._indexed = None

    def reindex(self, rec: Record, old: dict[str, str]) -> None:
        for name in self.indexed():
            index = self.unique_index.setdefault(name, {})
            if name in old and old[name]:
                index.pop(self.index_key(name, old[name]), None)
            if not rec.archived and rec.properties.get(name):
                index[self.index_key(name, rec.properties[name])] = rec.id


@dataclass
class HubSpotList:
    list_id: str
    name: str
    object_type_id: str
    processing_type: str
    created_at: str
    updated_at: str
    version: int = 1
    members: dict[str, str] = field(default_factory=dict)  # record id -> membership timestamp

    def to_api(self, search: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "listId": self.list_id,
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingStatus": "COMPLETE",
            "processingType": self.processing_type,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "filtersUpdatedAt": self.created_at,
            "createdById": "1",
            "updatedById": "1",
        }
        if search:
            body["additionalProperties"] = {"hs_list_size": str(len(self.members)), "hs_last_record_added_at": self.updated_at}
        else:
            body["size"] = len(self.members)
        return body


def _p(
    name: str,
    type: PropertyType = "string",
    label: str = "",
    group: str = "contactinformation",
    options: Iterable[str] = (),
    read_only: bool = False,
    field_type: str = "",
) -> PropertyDef:
    return PropertyDef(name, type, label, field_type, group, options=options_from(options), hubspot_defined=True, read_only=read_only)


LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist", "other")


def default_contact_properties() -> list[PropertyDef]:
    return [
        _p("email", label="Email"),
        _p("firstname", label="First Name"),
        _p("lastname", label="Last Name"),
        _p("jobtitle", label="Job Title"),
        _p("phone", "phone_number", "Phone Number"),
        _p("mobilephone", "phone_number", "Mobile Phone Number"),
        _p("company", label="Company Name"),
        _p("website", label="Website URL"),
        _p("address", label="Street Address"),
        _p("city", label="City"),
        _p("state", label="State/Region"),
        _p("zip", label="Postal Code"),
        _p("country", label="Country/Region"),
        _p("lifecyclestage", "enumeration", "Lifecycle Stage", options=LIFECYCLE, field_type="radio"),
        _p(
            "hs_lead_status",
            "enumeration",
            "Lead Status",
            options=("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"),
        ),
        _p("hs_object_id", "number", "Record ID", read_only=True),
        _p("createdate", "datetime", "Create Date", read_only=True),
        _p("lastmodifieddate", "datetime", "Last Modified Date", read_only=True),
    ]


def default_company_properties() -> list[PropertyDef]:
    g = "companyinformation"
    return [
        _p("name", label="Company name", group=g),
        _p("domain", label="Company Domain Name", group=g),
        _p(
            "industry",
            "enumeration",
            "Industry",
            g,
            options=(
                "ACCOUNTING",
                "AIRLINES_AVIATION",
                "BANKING",
                "COMPUTER_SOFTWARE",
                "CONSUMER_GOODS",
                "EDUCATION_MANAGEMENT",
                "FINANCIAL_SERVICES",
                "HOSPITAL_HEALTH_CARE",
                "INFORMATION_TECHNOLOGY_AND_SERVICES",
                "INTERNET",
                "MARKETING_AND_ADVERTISING",
                "RETAIL",
                "TELECOMMUNICATIONS",
            ),
        ),
        _p("numberofemployees", "number", "Number of Employees", g),
        _p("annualrevenue", "number", "Annual Revenue", g),
        _p("phone", "phone_number", "Phone Number", g),
        _p("website", label="Website URL", group=g),
        _p("city", label="City", group=g),
        _p("state", label="State/Region", group=g),
        _p("country", label="Country/Region", group=g),
        _p("description", label="Description", group=g),
        _p("lifecyclestage", "enumeration", "Lifecycle Stage", g, options=LIFECYCLE, field_type="radio"),
        _p("hs_object_id", "number", "Record ID", g, read_only=True),
        _p("createdate", "datetime", "Create Date", g, read_only=True),
        _p("hs_lastmodifieddate", "datetime", "Last Modified Date", g, read_only=True),
    ]


def seeded_types() -> dict[str, ObjectType]:
    contacts = ObjectType(
        "contacts",
        "0-1",
        "CONTACT",
        default_read=("email", "firstname", "lastname", "createdate", "lastmodifieddate", "hs_object_id"),
        modified_property="lastmodifieddate",
    )
    contacts.properties = {p.name: p for p in default_contact_properties()}
    companies = ObjectType(
        "companies", "0-2", "COMPANY", default_read=("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id")
    )
    companies.properties = {p.name: p for p in default_company_properties()}
    return {"contacts": contacts, "companies": companies}
