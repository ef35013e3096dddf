"""sObject schema for the Salesforce emulator: fields, the seeded standard objects, describe output.

Field attributes mirror the REST describe (`DescribeFieldResult`): a field is *required* on
create when it is `nillable: false`, `createable: true` and not `defaultedOnCreate` — the same
rule a destination should apply to a real org's describe, so the emulator seeds its required
fields (Account.Name, Contact.LastName, Lead.LastName/Company, ...) exactly that way.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist"}
NUMBER_TYPES = {"double", "currency", "percent", "int"}
FIELD_TYPES = TEXT_TYPES | NUMBER_TYPES | {"id", "reference", "boolean", "date", "datetime"}

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}  # every text type is xsd:string
_DEFAULT_LENGTH = {"email": 80, "phone": 40, "textarea": 32768, "multipicklist": 4099}
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


def _label(name: str) -> str:
    base = name[:-3] if name.endswith("__c") else name
    base = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base.replace("_", " "))
    return re.sub(r"\bId$", "ID", base)


@dataclass
class Field:
    """One sObject field. `required=True` means `nillable: false` with no default."""

    name: str
    type: str = "string"
    label: str | None = None
    length: int | None = None
    required: bool = False
    nillable: bool | None = None
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False  # unique / external-id matching ignores case unless set
    picklist: list[str] | None = None
    restricted: bool = False  # restricted picklist: other values are refused
    reference_to: list[str] | str | None = None
    relationship_name: str | None = None
    createable: bool = True
    updateable: bool = True
    default: Any = None  # value set on create when absent (→ defaultedOnCreate)
    calculated: bool = False
    custom: bool | None = None

    def __post_init__(self) -> None:
        self.type = self.type.lower()
        if self.type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {self.type!r} for {self.name}")
        self.label = self.label or _label(self.name)
        if self.length is None:
            self.length = (
                18 if self.type in ("id", "reference") else (_DEFAULT_LENGTH.get(self.type, 255) if self.type in TEXT_TYPES else 0)
            )
        if self.type == "boolean":  # real booleans are never null and default to false
            self.nillable, self.default = False, bool(self.default)
        if self.nillable is None:
            self.nillable = not self.required
        if isinstance(self.reference_to, str):
            self.reference_to = [self.reference_to]
        if self.type == "reference" and not self.relationship_name:
            n = self.name
            self.relationship_name = n[:-3] + "__r" if n.endswith("__c") else (n[:-2] if n.endswith("Id") else n)
        if self.custom is None:
            self.custom = self.name.endswith("__c")

    @property
    def defaulted_on_create(self) -> bool:
        return self.default is not None or self.calculated

    @property
    def is_required(self) -> bool:
        return not self.nillable and self.createable and not self.defaulted_on_create

    @property
    def indexed(self) -> bool:
        # references too: CampaignMember's (CampaignId, ContactId) check must not scan
        return self.unique or self.external_id or self.type in ("id", "reference")

    def describe(self) -> dict[str, Any]:
        text = self.type in TEXT_TYPES
        return {
            "aggregatable": self.type != "textarea",
            "autoNumber": False,
            "byteLength": (self.length or 0) * 3 if text or self.type in ("id", "reference") else 0,
            "calculated": self.calculated,
            "caseSensitive": self.case_sensitive,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default if self.type in ("boolean", "picklist") else None,
            "defaultedOnCreate": self.defaulted_on_create,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": 9 if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": self.type != "textarea",
            "groupable": self.type not in NUMBER_TYPES | {"textarea", "datetime"},
            "idLookup": self.type == "id" or self.external_id or self.name == "Email",
            "label": self.label,
            "length": self.length if text or self.type in ("id", "reference") else 0,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "validFor": None, "value": v} for v in (self.picklist or [])
            ],
            "precision": 18 if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": list(self.reference_to or []),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "scale": 2 if self.type in ("currency", "percent") else 0,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea",
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass
class SObjectType:
    """An sObject: its fields (canonical names, case-insensitive lookup) and extra rules."""

    name: str
    key_prefix: str
    fields: dict[str, Field]
    label: str = ""
    custom: bool = False
    #: (fields, message): one live record per combination of values (CampaignMember).
    unique_together: list[tuple[tuple[str, ...], str]] = dc_field(default_factory=list)
    #: at least one of these fields must be set on create (CampaignMember: ContactId/LeadId).
    one_of_required: list[tuple[str, ...]] = dc_field(default_factory=list)
    #: derives calculated fields (Contact.Name) from a stored record.
    compute: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.label = self.label or _label(self.name)
        self._lower = {n.lower(): f for n, f in self.fields.items()}
        self._rels = {f.relationship_name.lower(): f for f in self.fields.values() if f.type == "reference" and f.relationship_name}

    def add_field(self, f: Field) -> None:
        self.fields[f.name] = f
        self.__post_init__()

    def field(self, name: str) -> Field | None:
        return self._lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        return self._rels.get(name.lower())

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "compactLayouts": f"{base}/describe/compactLayouts",
            "rowTemplate": f"{base}/{{ID}}",
            "describe": f"{base}/describe",
            "sobject": base,
        }

    def global_entry(self, version: str) -> dict[str, Any]:
        return {
            "activateable": False,
            "createable": True,
            "custom": self.custom,
            "customSetting": False,
            "deletable": True,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "hasSubtypes": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label + "s",
            "layoutable": True,
            "mergeable": False,
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": True,
            "updateable": True,
            "urls": self.urls(version),
        }

    def describe(self, version: str) -> dict[str, Any]:
        out = self.global_entry(version)
        out.update(
            {
                "actionOverrides": [],
                "childRelationships": [],
                "compactLayoutable": True,
                "fields": [f.describe() for f in self.fields.values()],
                "namedLayoutInfos": [],
                "networkScopeFieldName": None,
                "recordTypeInfos": [],
                "supportedScopes": [{"label": "All " + self.label + "s", "name": "everything"}],
            }
        )
        return out


# ---------------------------------------------------------------- ids

_CHECKSUM = string.ascii_uppercase + "012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?")


def id18(id15: str) -> str:
    """The real 15→18 case-safe suffix: one char per 5-char chunk encoding its capitals."""
    suffix = ""
    for i in range(3):
        bits = sum(1 << j for j, c in enumerate(id15[i * 5 : i * 5 + 5]) if "A" <= c <= "Z")
        suffix += _CHECKSUM[bits]
    return id15 + suffix


def normalize_id(raw: Any) -> str | None:
    """Canonical 18-char id for a 15- or 18-char id (any case for 18), else None (malformed)."""
    if not isinstance(raw, str) or not _ID_RE.fullmatch(raw):
        return None
    if len(raw) == 15:
        return id18(raw)
    chars = list(raw[:15])
    for i in range(3):  # an 18-char id is case-insensitive: the suffix restores the case
        bits = _CHECKSUM.index(raw[15 + i].upper())
        for j in range(5):
            c = chars[i * 5 + j]
            chars[i * 5 + j] = c.upper() if bits >> j & 1 else c.lower()
    return id18("".join(chars))


def make_id(prefix: str, n: int) -> str:
    """prefix(3) + pod "Em" + reserved "0" + base62 counter(9) = 15 chars, then the suffix."""
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = _BASE62[r] + digits
    return id18(prefix + "Em0" + digits.rjust(9, "0"))


# ---------------------------------------------------------------- seeded objects


def _system_fields() -> list[Field]:
    ro = {"createable": False, "updateable": False}
    return [
        Field("Id", "id", nillable=False, **ro),
        Field("IsDeleted", "boolean", **ro),
        Field("CreatedDate", "datetime", nillable=False, default="", **ro),
        Field("LastModifiedDate", "datetime", nillable=False, default="", **ro),
        Field("SystemModstamp", "datetime", nillable=False, default="", **ro),
    ]


def make_sobject(name: str, fields: list[Field], key_prefix: str, **kw: Any) -> SObjectType:
    all_fields = _system_fields() + fields
    return SObjectType(name, key_prefix, {f.name: f for f in all_fields}, **kw)


def _ext_id() -> Field:
    return Field("External_Id__c", label="External ID", external_id=True, unique=True)


def _full_name(rec: dict[str, Any]) -> dict[str, Any]:
    return {"Name": " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p) or None}


LEAD_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]


def default_sobjects() -> list[SObjectType]:
    """Account, Contact, Lead, Campaign, CampaignMember with realistic required/external fields."""
    name_ro = {"createable": False, "updateable": False, "calculated": True}
    account = make_sobject(
        "Account",
        [
            Field("Name", required=True, label="Account Name"),
            Field("AccountNumber", length=40),
            Field("Industry", "picklist", picklist=["Technology", "Finance", "Healthcare", "Retail"]),
            Field("Type", "picklist", label="Account Type", picklist=["Prospect", "Customer", "Partner"]),
            Field("Website", "url"),
            Field("Phone", "phone"),
            Field("AnnualRevenue", "currency"),
            Field("NumberOfEmployees", "int", label="Employees"),
            Field("BillingCity", length=40),
            Field("BillingCountry", length=80),
            Field("Description", "textarea", length=32000),
            _ext_id(),
        ],
        "001",
    )
    contact = make_sobject(
        "Contact",
        [
            Field("FirstName", length=40),
            Field("LastName", required=True, length=80),
            Field("Name", length=121, label="Full Name", **name_ro),
            Field("Email", "email"),
            Field("Phone", "phone"),
            Field("Title", length=128),
            Field("AccountId", "reference", reference_to="Account"),
            Field("LeadSource", "picklist", picklist=LEAD_SOURCES),
            Field("Birthdate", "date"),
            Field("HasOptedOutOfEmail", "boolean", label="Email Opt Out"),
            _ext_id(),
            Field("Plan__c", "picklist", picklist=["free", "pro", "enterprise"], restricted=True),
            Field("Lifetime_Value__c", "double"),
            Field("Last_Seen_At__c", "datetime"),
        ],
        "003",
        compute=_full_name,
    )
    lead = make_sobject(
        "Lead",
        [
            Field("FirstName", length=40),
            Field("LastName", required=True, length=80),
            Field("Name", length=121, label="Full Name", **name_ro),
            Field("Company", required=True),
            Field("Email", "email"),
            Field("Phone", "phone"),
            Field(
                "Status",
                "picklist",
                label="Lead Status",
                nillable=False,
                default="Open - Not Contacted",
                picklist=["Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"],
            ),
            Field("LeadSource", "picklist", picklist=LEAD_SOURCES),
            _ext_id(),
        ],
        "00Q",
        compute=_full_name,
    )
    campaign = make_sobject(
        "Campaign",
        [
            Field("Name", required=True, length=80, label="Campaign Name"),
            Field("Type", "picklist", picklist=["Email", "Webinar", "Advertisement", "Other"]),
            Field("Status", "picklist", picklist=["Planned", "In Progress", "Completed", "Aborted"]),
            Field("IsActive", "boolean", label="Active"),
            Field("StartDate", "date"),
            _ext_id(),
        ],
        "701",
    )
    member = make_sobject(
        "CampaignMember",
        [
            Field("CampaignId", "reference", reference_to="Campaign", required=True, updateable=False),
            Field("ContactId", "reference", reference_to="Contact", updateable=False),
            Field("LeadId", "reference", reference_to="Lead", updateable=False),
            Field("Status", "picklist", label="Member Status", default="Sent", picklist=["Planned", "Sent", "Received", "Responded"]),
        ],
        "00v",
        unique_together=[
            (("CampaignId", "ContactId"), "Already a campaign member."),
            (("CampaignId", "LeadId"), "Already a campaign member."),
        ],
        one_of_required=[("ContactId", "LeadId")],
    )
    return [account, contact, lead, campaign, member]
