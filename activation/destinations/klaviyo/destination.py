"""Klaviyo profiles and list membership through the official SDK (klaviyo-api).

Profiles are matched by email (`match: {email: <column>}`); Klaviyo keys a profile by email,
phone number or external id, so `phone_number` and `external_id` may be mapped as fields and
are written as the profile's identifiers. `fields:` map Klaviyo's standard attributes
(first_name, last_name, organization, title, locale, image, phone_number, external_id) and
any other name as a custom property, typed as Klaviyo types it (strings, numbers, booleans,
lists and objects as JSON has them; timestamps as ISO 8601 in UTC).

- Writes go through the Bulk Profile Import job (`POST /api/profile-bulk-import-jobs`, up to
  10,000 profiles / 5 MB): an upsert by identity, so a resent job changes nothing. The job is
  polled until it completes; its import errors (`…/import-errors`) name the refused profiles
  (by their original payload), which become rejected rows with Klaviyo's reason; the others
  are delivered. A changed row sends only its changed fields; a cleared value is sent as null.
- `mirror`: a row leaving the model is suppressed (`on_remove: suppress`, the default:
  `POST /api/profile-suppression-bulk-create-jobs`, 100 emails a call), or deleted with a
  Data Privacy deletion request (`on_remove: delete`, one call per profile). A suppressed
  profile whose row returns is unsuppressed (`…/profile-suppression-bulk-delete-jobs`, which
  only lifts manual suppressions: unsubscribes and bounces stay).
- `audience`: membership of a static list (`list_id`, or the list named by `audience:`,
  created when missing). Entering rows are imported with the list as the job's relationship
  (the import adds them); leaving rows are looked up by email (`GET /api/profiles`,
  `filter=any(email,[…])`, 100 a call) and removed from the list (`DELETE
  /api/lists/{id}/relationships/profiles`, 1000 a call); the profiles stay.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

from activation.destinations.base import (
    ConfigError,
    Destination,
    DestinationError,
    DestinationReport,
    IdentityModel,
    RowOp,
    RowResult,
    SyncTarget,
    find_or_create,
)
from activation.destinations.klaviyo.api import KlaviyoApi, Refused, errors_text
from activation.project.secrets import redact, resolve_env, scrub_personal_data

EMAIL = "email"
STANDARD = frozenset({"first_name", "last_name", "organization", "title", "locale", "image", "phone_number", "external_id"})
MAX_JOB_BYTES = 5 * 1024 * 1024
SUPPRESS_LIMIT = 100  # emails per (un)suppression job
LOOKUP_LIMIT = 100  # emails per GET /api/profiles (page[size] ≤ 100)
MEMBERS_LIMIT = 1000  # profile ids per list relationship call
#: An address Klaviyo may know (others are refused by the import, with its reason).
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def klaviyo_value(value: Any) -> Any:
    """A model value as Klaviyo types a profile property: numbers, booleans, lists and objects
    as JSON has them; a timestamp as ISO 8601 in UTC (one without a zone is taken as UTC); a
    date as YYYY-MM-DD; other text as it is."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in "T ":
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
        except ValueError:
            return value
        return klaviyo_value(when)
    if isinstance(value, datetime):
        when = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return when.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (list, tuple)):
        return [klaviyo_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): klaviyo_value(v) for k, v in value.items()}
    return value


def _email(values: dict[str, Any]) -> str:
    return str(values.get(EMAIL) or "").strip()


class KlaviyoDestination(Destination):
    type: ClassVar[str] = "klaviyo"
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror", "audience"})
    max_batch_size: ClassVar[int] = 10000
    identity_model: ClassVar[IdentityModel] = "record"  # a profile per email, compared without case
    identity_folds_case: ClassVar[bool] = True

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self.api = KlaviyoApi(name, spec, sleep=sleep)
        self._sleep = sleep
        self._list_id: str | None = None
        self.counts: dict[str, int] = {}
        self.jobs: list[str] = []

    # -- configuration ------------------------------------------------------------------

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if target.match_fields != [EMAIL]:
            raise ConfigError("a klaviyo sync matches profiles by email: use `match: {email: <email column>}`")
        if target.object not in (None, "profiles"):
            raise ConfigError(f"a klaviyo destination writes profiles; `object:` must be omitted or 'profiles', not {target.object!r}")
        if target.mode == "audience" and not (target.audience or self.spec.list_id):
            raise ConfigError("mode audience needs `audience:` (the Klaviyo list's name) or the destination's `list_id`")
        if target.mode != "mirror" and self.spec.on_remove != "suppress":
            raise ConfigError("on_remove applies to mode mirror (mode audience removes leaving profiles from the list)")

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.spec.batch_size, self.spec.batch_size, self.max_batch_size)

    def check_remote(self, target: SyncTarget) -> list[str]:
        try:
            self.api.call("Accounts", "get_accounts")
            if target.mode == "audience":
                found = self._find_list(target)
                if found is None and self.spec.list_id:
                    return [f"Klaviyo has no list with id {resolve_env(self.spec.list_id)!r}"]
        except Refused as e:
            return [f"Klaviyo refused the request: {e}"]
        except DestinationError as e:
            return [str(e)]
        return []

    # -- the list (mode audience) -----------------------------------------------------------

    def _find_list(self, target: SyncTarget) -> str | None:
        if self.spec.list_id:
            list_id = resolve_env(self.spec.list_id)
            try:
                self.api.call("Lists", "get_list", list_id)
            except Refused as e:
                if e.status == 404:
                    return None
                raise
            return list_id
        name = str(target.audience).replace("\\", "\\\\").replace('"', '\\"')
        found = self.api.pages("Lists", "get_lists", filter=f'equals(name,"{name}")', fields_list=["name"])
        return next((str(x["id"]) for x in found if (x.get("attributes") or {}).get("name") == target.audience), None)

    def _create_list(self, target: SyncTarget) -> str:
        body = {"data": {"type": "list", "attributes": {"name": target.audience}}}
        reply = self.api.call("Lists", "create_list", body)
        return str(reply["data"]["id"])

    def _prepare(self, target: SyncTarget) -> str | None:
        if target.mode != "audience" or self._list_id is not None:
            return self._list_id
        try:
            if self.spec.list_id:
                self._list_id = self._find_list(target)
                if self._list_id is None:
                    raise DestinationError(f"Klaviyo has no list with id {self.spec.list_id!r}", retryable=False)
            else:
                self._list_id = find_or_create(lambda: self._find_list(target), lambda: self._create_list(target), attempts=3)
        except Refused as e:
            raise DestinationError(f"Klaviyo refused to look up or create the list: {e}", retryable=False) from None
        return self._list_id

    # -- push -------------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        list_id = self._prepare(target)
        errors: dict[str, str] = {}
        unknown: set[str] = set()
        writes, leaving = [o for o in ops if o.kind != "remove"], [o for o in ops if o.kind == "remove"]
        seen: dict[str, str] = {}
        profiles: list[tuple[RowOp, dict[str, Any]]] = []
        for op in writes:
            email = _email(op.values)
            if email.lower() in seen:
                errors[op.key] = f"another row ({seen[email.lower()]}) in this batch has the same email"
                continue
            seen[email.lower()] = op.key
            profiles.append((op, self._profile(op)))
        if target.mode == "mirror" and self.spec.on_remove == "suppress":
            # a returning row (nothing delivered under it) may be one this sync suppressed
            fresh = [(op, e) for op, _ in profiles if op.previous is None and _EMAIL_SHAPE.match(e := _email(op.values))]
            errors.update(self._suppression(fresh, unknown, create=False))
        errors.update(self._import(profiles, list_id, unknown))
        gone = [(op, _email(op.values)) for op in leaving]
        if target.mode == "audience":
            errors.update(self._leave_list(list_id or "", gone, unknown))
        elif target.mode == "mirror" and self.spec.on_remove == "suppress":
            errors.update(self._suppression(gone, unknown, create=True))
        elif target.mode == "mirror":
            errors.update(self._delete(gone, unknown))
        return [
            RowResult(key=o.key, ok=o.key not in errors, error=errors.get(o.key), unknown=o.key in unknown and o.key in errors) for o in ops
        ]

    def _profile(self, op: RowOp) -> dict[str, Any]:
        """A profile's attributes: every mapped field for a profile new under this email, else
        only the changed ones (null clears a value at Klaviyo)."""
        known = op.previous is not None and op.changed_fields is not None
        names = op.changed_fields if known and op.changed_fields is not None else list(op.values)
        attributes: dict[str, Any] = {EMAIL: _email(op.values)}
        properties: dict[str, Any] = {}
        for f in names:
            if f == EMAIL or f not in op.values:
                continue
            value = klaviyo_value(op.values[f])
            if f in STANDARD:
                attributes[f] = None if value is None else str(value)
            else:
                properties[f] = value
        if properties:
            attributes["properties"] = properties
        return attributes

    def _import(self, profiles: list[tuple[RowOp, dict[str, Any]]], list_id: str | None, unknown: set[str]) -> dict[str, str]:
        if not profiles:
            return {}
        out: dict[str, str] = {}
        for chunk in _by_size([p for p in profiles], MAX_JOB_BYTES - 64 * 1024):
            body: dict[str, Any] = {
                "data": {
                    "type": "profile-bulk-import-job",
                    "attributes": {"profiles": {"data": [{"type": "profile", "attributes": a} for _, a in chunk]}},
                }
            }
            if list_id:
                body["data"]["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
            try:
                reply, ambiguous = self.api.call_with_outcome("Profiles", "bulk_import_profiles", body)
            except Refused as e:
                raise DestinationError(f"Klaviyo refused the import job ({e.status}): {e}") from None
            job = str(reply["data"]["id"])
            self.jobs.append(job)
            refused = self._wait(job)
            for op, attributes in chunk:
                why = refused.get(attributes[EMAIL].lower())
                if why is not None:
                    out[op.key] = why
                    if ambiguous:
                        unknown.add(op.key)
            self._bump("imported", len(chunk) - sum(1 for op, _ in chunk if op.key in out))
        return out

    def _wait(self, job: str) -> dict[str, str]:
        """Poll the import job until it is done; the refused profiles (email -> reason)."""
        deadline = time.monotonic() + self.spec.job_timeout_seconds
        while True:
            attributes = (self.api.call("Profiles", "get_bulk_import_profiles_job", job) or {}).get("data", {}).get("attributes", {})
            status = attributes.get("status")
            if status == "complete":
                break
            if status == "cancelled":
                raise DestinationError(f"Klaviyo cancelled import job {job}")
            if time.monotonic() > deadline:
                raise DestinationError(f"Klaviyo import job {job} is still {status} after {self.spec.job_timeout_seconds:g}s")
            self._sleep(self.spec.poll_seconds)
        if not attributes.get("failed_count"):
            return {}
        refused: dict[str, str] = {}
        for error in self.api.pages("Profiles", "get_errors_for_bulk_import_profiles_job", job, page_size=100):
            a = error.get("attributes") or {}
            email = str((a.get("original_payload") or {}).get(EMAIL) or "").strip().lower()
            refused[email] = redact(scrub_personal_data(f"{a.get('code')}: {a.get('detail') or a.get('title')}"))
        return refused

    def _suppression(self, gone: list[tuple[RowOp, str]], unknown: set[str], *, create: bool) -> dict[str, str]:
        """Suppress (`create`) or unsuppress these emails, 100 a call."""
        kind = "profile-suppression-bulk-create-job" if create else "profile-suppression-bulk-delete-job"
        method = "bulk_suppress_profiles" if create else "bulk_unsuppress_profiles"
        out: dict[str, str] = {}
        for i in range(0, len(gone), SUPPRESS_LIMIT):
            chunk = gone[i : i + SUPPRESS_LIMIT]
            profiles = [{"type": "profile", "attributes": {EMAIL: e}} for _, e in chunk]
            body = {"data": {"type": kind, "attributes": {"profiles": {"data": profiles}}}}
            try:
                self.api.call("Profiles", method, body)
            except Refused as e:
                out.update({op.key: f"Klaviyo refused to {'suppress' if create else 'unsuppress'}: {e}" for op, _ in chunk})
                if e.after_ambiguous:
                    unknown.update(op.key for op, _ in chunk)
                continue
            self._bump("suppressed" if create else "unsuppressed", len(chunk))
        return out

    def _delete(self, gone: list[tuple[RowOp, str]], unknown: set[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for op, email in gone:
            body = {
                "data": {
                    "type": "data-privacy-deletion-job",
                    "attributes": {"profile": {"data": {"type": "profile", "attributes": {EMAIL: email}}}},
                }
            }
            try:
                self.api.call("Data_Privacy", "request_profile_deletion", body)
            except Refused as e:
                if e.status != 404:  # gone already: removal is idempotent
                    out[op.key] = f"Klaviyo refused the deletion request: {e}"
                    if e.after_ambiguous:
                        unknown.add(op.key)
                continue
            self._bump("deletion_requested")
        return out

    def _leave_list(self, list_id: str, gone: list[tuple[RowOp, str]], unknown: set[str]) -> dict[str, str]:
        ids: list[str] = []
        for i in range(0, len(gone), LOOKUP_LIMIT):
            emails = ",".join(json.dumps(e) for _, e in gone[i : i + LOOKUP_LIMIT])
            found = self.api.pages("Profiles", "get_profiles", filter=f"any(email,[{emails}])", fields_profile=["email"], page_size=100)
            ids += [str(p["id"]) for p in found]  # a profile not found is on no list: gone already
        for i in range(0, len(ids), MEMBERS_LIMIT):
            members = {"data": [{"type": "profile", "id": pid} for pid in ids[i : i + MEMBERS_LIMIT]]}
            try:
                self.api.call("Lists", "remove_profiles_from_list", list_id, members)
            except Refused as e:
                raise DestinationError(f"Klaviyo refused to remove profiles from the list: {e}", retryable=False) from None
            self._bump("left_list", len(members["data"]))
        return {}

    def _bump(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n

    def report(self) -> DestinationReport:
        details: dict[str, Any] = {"list_id": self._list_id} if self._list_id else {}
        if self.jobs:
            details["import_jobs"] = list(self.jobs)
        details.update(self.counts)
        return DestinationReport(requests=self.api.requests, retries=self.api.retries, throttled=self.api.throttled, details=details)

    def close(self) -> None:
        self.api.close()


def _by_size(profiles: list[tuple[RowOp, dict[str, Any]]], limit: int) -> list[list[tuple[RowOp, dict[str, Any]]]]:
    """The profiles in jobs of at most `limit` bytes of JSON (Klaviyo refuses a job over 5 MB)."""
    chunks: list[list[tuple[RowOp, dict[str, Any]]]] = [[]]
    size = 0
    for item in profiles:
        n = len(json.dumps(item[1], default=str)) + 32
        if chunks[-1] and size + n > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += n
    return chunks


__all__ = ["KlaviyoDestination", "errors_text", "klaviyo_value"]
