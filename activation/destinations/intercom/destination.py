"""Intercom contacts and companies through the official SDK (python-intercom).

One destination is one Intercom workspace (an app's access token, its region). `object:`
says what a sync writes:

- `contacts` (the default): users (or leads, `role: lead`), matched by `external_id` or by
  `email` (`match: {external_id: <col>}` / `match: {email: <col>}`, emails without case).
  Intercom has no bulk write for contacts: each row is found with `POST /contacts/search`
  (unless its Intercom id is known from an earlier run), then updated (`PUT /contacts/{id}`)
  or created (`POST /contacts`). A create refused with 409 "A contact matching those details
  already exists with id=…" (a contact search does not see yet, or our own earlier attempt
  whose answer was lost) updates that contact instead; an archived one is unarchived first.
  `fields:` are Intercom's contact fields (name, phone, signed_up_at…) or custom attributes,
  which must exist as data attributes (`validate --remote` checks them and their types).
- `companies`: matched by `company_id`; `POST /companies` creates or updates by company_id,
  one call per row.
- `mirror` removes contacts that left the model per `on_remove` (archive by default, or
  delete); companies are deleted. `audience` (`audience: <tag>`): contacts in the audience
  are written and tagged (the tag is created if missing); leaving ones are untagged, never
  archived. `upsert` leaves rows that left the model alone.

Values are typed as Intercom's data attribute says (date: UNIX seconds; integer, float,
boolean, string; a list is written as text, comma-separated). Per-row refusals (a 400, a 404,
a 409 that names no contact) reject that row with Intercom's reason; a refusal answering a
retry whose earlier attempt may have been applied leaves the row possibly delivered. 401/403
stop the sync as terminal; 429s are waited out until `X-RateLimit-Reset`; 5xx and lost
answers are retried (a resent write finds the contact by identity: no duplicate).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, ClassVar

from activation.destinations.base import (
    AmbiguousOutcome,
    ConfigError,
    Destination,
    DestinationError,
    DestinationReport,
    IdentityModel,
    RowOp,
    RowResult,
    SyncTarget,
    record_identity,
)
from activation.destinations.http import rejected
from activation.destinations.intercom.api import IntercomApi, Refused

CONTACT_FIELDS = frozenset(
    {"external_id", "email", "phone", "name", "avatar", "signed_up_at", "last_seen_at", "owner_id", "unsubscribed_from_emails"}
)
COMPANY_FIELDS = frozenset({"company_id", "name", "plan", "size", "website", "industry", "remote_created_at", "monthly_spend"})
#: Intercom's own fields and the type it stores them as.
STANDARD_TYPES = {
    "signed_up_at": "date",
    "last_seen_at": "date",
    "remote_created_at": "date",
    "owner_id": "integer",
    "size": "integer",
    "monthly_spend": "integer",
    "unsubscribed_from_emails": "boolean",
}
_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$")
_CONFLICT_ID = re.compile(r"\bid=(\w+)")


def epoch(text: str) -> int | None:
    """A date or timestamp (ISO-8601; zone-less means UTC) as UNIX seconds, or None."""
    if not _TIMESTAMP.match(text.strip()):
        return None
    value = text.strip().replace(" ", "T", 1).replace("Z", "+00:00")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp())


def intercom_value(data_type: str | None, value: Any) -> Any:
    """A mapped value as Intercom stores it in an attribute of `data_type` (None: unknown)."""
    if value is None:
        return None  # clears the attribute
    if isinstance(value, (list, tuple)):
        value = ", ".join("" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)
    if data_type == "date":
        if isinstance(value, str):
            stamp = epoch(value)
            return stamp if stamp is not None else value
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if data_type == "integer":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
        return value
    if data_type == "float":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if data_type == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value
    if data_type == "string":
        return ("true" if value else "false") if isinstance(value, bool) else value if isinstance(value, str) else str(value)
    return value


class IntercomDestination(Destination):
    type: ClassVar[str] = "intercom"
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror", "audience"})
    max_batch_size: ClassVar[int] = 500
    identity_model: ClassVar[IdentityModel] = "record"  # a contact is its external_id (exactly) or email (without case)
    identity_folds_case: ClassVar[bool] = False

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self.api = IntercomApi(name, spec, sleep=sleep)
        self._types: dict[str, str] | None = None
        self._tag_id: str | None = None
        self._lock = threading.Lock()
        self._fatal: DestinationError | None = None
        self.counts: dict[str, int] = {}

    # -- configuration ------------------------------------------------------------------

    @staticmethod
    def _object(target: SyncTarget) -> str:
        return target.object or "contacts"

    @staticmethod
    def _fold(target: SyncTarget) -> bool:
        return target.match_fields == ["email"]

    def identities(self, target: SyncTarget, key: str, values: dict[str, Any]) -> tuple[str, ...]:
        return (record_identity(values, target.match_fields, self._fold(target)),)

    def identity_sql(
        self, target: SyncTarget, match_sql: Mapping[str, str | None], as_text: Callable[[str], str] = lambda e: f"CAST({e} AS VARCHAR)"
    ) -> str | None:
        [field] = target.match_fields or [""]
        expr = match_sql.get(field)
        if expr is None:
            return None
        return f"LOWER(TRIM({as_text(expr)}))" if self._fold(target) else as_text(expr)

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        obj = self._object(target)
        if obj not in ("contacts", "companies"):
            raise ConfigError(f"an intercom destination writes `object: contacts` or `object: companies`, not {target.object!r}")
        if obj == "companies":
            if target.match_fields != ["company_id"]:
                raise ConfigError("intercom companies are matched by company_id: use `match: {company_id: <column>}`")
            if target.mode == "audience":
                raise ConfigError("mode audience tags contacts: use `object: contacts` (companies support upsert and mirror)")
        else:
            if target.match_fields not in (["external_id"], ["email"]):
                raise ConfigError(
                    "intercom contacts are matched by external_id or email: use `match: {external_id: <col>}` or `{email: <col>}`"
                )
            if self.spec.role == "lead" and target.match_fields == ["external_id"]:
                raise ConfigError("role: lead matches contacts by email (Intercom's users carry the external_id)")
            if target.mode == "audience" and not target.audience:
                raise ConfigError("mode audience needs `audience:`, the name of the Intercom tag that marks membership")
        bad = [f for f in target.fields if f in ("role", "custom_attributes", "id")]
        if bad:
            raise ConfigError(f"intercom `fields:` cannot map {', '.join(map(repr, bad))} (role is the destination's `role:`)")
        base = self.spec.base_url or ""
        if base and not base.startswith("${") and not base.lower().startswith(("http://", "https://")):
            raise ConfigError(f"intercom base_url must start with https://, got {base!r}")

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.spec.batch_size, self.spec.batch_size, self.max_batch_size)

    def _custom(self, target: SyncTarget) -> list[str]:
        standard = COMPANY_FIELDS if self._object(target) == "companies" else CONTACT_FIELDS
        return [f for f in target.fields if f not in standard]

    def _attributes(self, target: SyncTarget) -> dict[str, dict[str, Any]]:
        model = "company" if self._object(target) == "companies" else "contact"
        reply, _ = self.api.call("GET /data_attributes", self.api.client.data_attributes.list, model=model)
        return {str(a.name): a.dict() if hasattr(a, "dict") else dict(a) for a in (getattr(reply, "data", None) or [])}

    def check_remote(self, target: SyncTarget) -> list[str]:
        """The token works (it can list data attributes), every custom attribute mapped exists,
        is writable through the API and not archived."""
        try:
            known = self._attributes(target)
        except (Refused, DestinationError) as e:
            return [f"Intercom refused to list data attributes: {e}"]
        problems = []
        for f in self._custom(target):
            attr = known.get(f)
            if attr is None:
                problems.append(f"Intercom has no custom data attribute {f!r}: create it (Settings → Data → People/Companies)")
            elif attr.get("archived"):
                problems.append(f"the Intercom data attribute {f!r} is archived: writes to it are refused")
            elif attr.get("api_writable") is False:
                problems.append(f"the Intercom data attribute {f!r} is not writable through the API")
        return problems

    # -- set-up (lazy: an unchanged run makes no call) -------------------------------------

    def _prepare(self, target: SyncTarget) -> None:
        with self._lock:
            if self._types is None:  # one call before any other: a refused token stops here, once
                known = self._attributes(target)
                self._types = {n: str(a.get("data_type") or "") for n, a in known.items()}
            if target.mode == "audience" and self._tag_id is None:
                # POST /tags {name} creates the tag or answers the existing one: idempotent by name
                tag, _ = self.api.call("POST /tags", self.api.client.tags.create, request={"name": target.audience})
                self._tag_id = str(tag.id)

    def _bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    # -- push -------------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        self._prepare(target)
        companies = self._object(target) == "companies"
        key = target.match_fields[0]
        fold = self._fold(target)
        seen: dict[str, str] = {}
        results: dict[str, RowResult] = {}
        todo: list[RowOp] = []
        for op in ops:
            ident = str(op.values.get(key) if op.values.get(key) is not None else "").strip()
            norm = ident.lower() if fold else ident
            if not ident:
                results[op.key] = RowResult(op.key, ok=False, error=f"{key} is empty: Intercom needs it to find the record")
            elif op.kind != "remove" and norm in seen:
                results[op.key] = RowResult(op.key, ok=False, error=f"another row ({seen[norm]}) in this batch has the same {key}")
            else:
                seen.setdefault(norm, op.key)
                todo.append(op)

        def one(op: RowOp) -> RowResult:
            if self._fatal is not None:
                raise self._fatal
            try:
                if companies:
                    return self._remove_company(target, op) if op.kind == "remove" else self._write_company(target, op)
                return self._remove_contact(target, op) if op.kind == "remove" else self._write_contact(target, op)
            except Refused as e:
                return rejected(
                    op.key, f"Intercom refused this {'company' if companies else 'contact'}: {e}", after_ambiguous=e.after_ambiguous
                )
            except AmbiguousOutcome as e:
                return RowResult(op.key, ok=False, unknown=True, error=str(e))
            except DestinationError as e:
                self._fatal = self._fatal or e
                raise

        if len(todo) <= 1 or self.spec.concurrency == 1:
            done = [one(op) for op in todo]
        else:
            with ThreadPoolExecutor(max_workers=self.spec.concurrency, thread_name_prefix="intercom") as pool:
                done = list(pool.map(one, todo))
        results.update({r.key: r for r in done})
        return [results[op.key] for op in ops]

    def _body(self, target: SyncTarget, op: RowOp, standard: frozenset[str]) -> dict[str, Any]:
        """Intercom's fields at the top, the rest under custom_attributes, typed."""
        types = self._types or {}
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for f, v in op.values.items():
            if f in standard:
                body[f] = intercom_value(STANDARD_TYPES.get(f, "string" if f != "owner_id" else "integer"), v)
            else:
                custom[f] = intercom_value(types.get(f), v)
        if custom:
            body["custom_attributes"] = custom
        return body

    # -- contacts ---------------------------------------------------------------------------

    def _search(self, target: SyncTarget, ident: str) -> list[Any]:
        """Contacts (not archived) holding this identity; at most 2: one is expected."""
        field = target.match_fields[0]
        query: dict[str, Any] = {"field": field, "operator": "=", "value": ident}
        if field == "email":
            query = {"operator": "AND", "value": [query, {"field": "role", "operator": "=", "value": self.spec.role}]}
        pager, _ = self.api.call("POST /contacts/search", self.api.client.contacts.search, query=query, pagination={"per_page": 2})
        return list(pager.items or [])

    def _find(self, target: SyncTarget, ident: str) -> str | None:
        found = self._search(target, ident)
        if len(found) > 1:
            raise Refused(409, "multiple_matches", f"{len(found)} or more Intercom contacts hold this {target.match_fields[0]}: merge them")
        return str(found[0].id) if found else None

    def _write_contact(self, target: SyncTarget, op: RowOp) -> RowResult:
        key = target.match_fields[0]
        ident = str(op.values[key]).strip()
        body = self._body(target, op, CONTACT_FIELDS)
        body[key] = ident
        contacts = self.api.client.contacts
        contact_id: str | None = None
        if op.dest_id:
            try:
                self.api.call("PUT /contacts/{id}", contacts.update, op.dest_id, **body)
                contact_id = op.dest_id
            except Refused as e:
                if e.status != 404:
                    raise
                # merged or deleted at Intercom since: found again by identity below
        if contact_id is None and (contact_id := self._find(target, ident)) is not None:
            self.api.call("PUT /contacts/{id}", contacts.update, contact_id, **body)
            self._bump("updated")
        elif contact_id is None:
            contact_id = self._create(key, body)
        else:
            self._bump("updated")
        if target.mode == "audience":
            self.api.call("POST /contacts/{id}/tags", self.api.client.tags.tag_contact, contact_id, tag_id=self._tag_id)
            self._bump("tagged")
        return RowResult(op.key, ok=True, dest_id=contact_id)

    def _create(self, key: str, body: dict[str, Any]) -> str:
        contacts = self.api.client.contacts
        lead = self.spec.role == "lead"  # Intercom keeps leads with one email apart: a resent create would duplicate
        try:
            created, _ = self.api.call("POST /contacts", contacts.create, request={"role": self.spec.role, **body}, idempotent=not lead)
            self._bump("created")
            return str(created.id)
        except Refused as e:
            found = _CONFLICT_ID.search(e.message) if e.status == 409 else None
            if found is None:
                raise
            archived = "archived" in e.message.lower()
        # 409: the contact exists (search does not see it yet, or our lost attempt made it)
        contact_id = found.group(1)
        if archived:
            self.api.call("POST /contacts/{id}/unarchive", contacts.unarchive, contact_id)
            self._bump("unarchived")
        self.api.call("PUT /contacts/{id}", contacts.update, contact_id, **body)
        self._bump("updated")
        return contact_id

    def _remove_contact(self, target: SyncTarget, op: RowOp) -> RowResult:
        if target.mode not in ("mirror", "audience"):
            return RowResult(op.key, ok=True)  # upsert leaves contacts that left the model alone
        ident = str(op.values.get(target.match_fields[0])).strip()
        contact_id = op.dest_id or self._find(target, ident)
        while contact_id is not None:
            try:
                self._release(target, contact_id)
                break
            except Refused as e:
                if e.status != 404:
                    raise
            # 404: gone already, or merged into another contact since: look once by identity
            again = self._find(target, ident) if contact_id == op.dest_id else None
            contact_id = again if again != contact_id else None
        return RowResult(op.key, ok=True)

    def _release(self, target: SyncTarget, contact_id: str) -> None:
        contacts = self.api.client.contacts
        if target.mode == "audience":
            self.api.call("DELETE /contacts/{id}/tags/{tag}", self.api.client.tags.untag_contact, contact_id, self._tag_id)
            self._bump("untagged")
        elif self.spec.on_remove == "delete":
            self.api.call("DELETE /contacts/{id}", contacts.delete, contact_id)
            self._bump("deleted")
        else:
            self.api.call("POST /contacts/{id}/archive", contacts.archive, contact_id)
            self._bump("archived")

    # -- companies --------------------------------------------------------------------------

    def _write_company(self, target: SyncTarget, op: RowOp) -> RowResult:
        body = self._body(target, op, COMPANY_FIELDS)
        body["company_id"] = str(op.values["company_id"]).strip()
        company, _ = self.api.call("POST /companies", self.api.client.companies.create_or_update, request=body)
        self._bump("companies_written")
        return RowResult(op.key, ok=True, dest_id=str(company.id))

    def _remove_company(self, target: SyncTarget, op: RowOp) -> RowResult:
        if target.mode != "mirror":
            return RowResult(op.key, ok=True)  # upsert leaves companies that left the model alone
        companies = self.api.client.companies
        company_id = op.dest_id
        if company_id is None:
            try:
                found, _ = self.api.call("GET /companies", companies.retrieve, company_id=str(op.values.get("company_id")).strip())
            except Refused as e:
                if e.status == 404:
                    return RowResult(op.key, ok=True)
                raise
            company_id = str(getattr(found, "id", None) or found.data[0].id)
        try:
            self.api.call("DELETE /companies/{id}", companies.delete, company_id)
            self._bump("companies_deleted")
        except Refused as e:
            if e.status != 404:  # deleted already: removal is idempotent
                raise
        return RowResult(op.key, ok=True)

    def report(self) -> DestinationReport:
        details: dict[str, Any] = dict(self.counts)
        if self._tag_id:
            details["tag_id"] = self._tag_id
        if self.api.rate_limit.get("X-RateLimit-Remaining"):
            details["rate_limit_remaining"] = self.api.rate_limit["X-RateLimit-Remaining"]
        return DestinationReport(requests=self.api.requests, retries=self.api.retries, throttled=self.api.throttled, details=details)

    def close(self) -> None:
        self.api.close()
        self._fatal = None
