"""Zendesk Support users and organizations through the official SDK (zenpy).

- `object: users` (the default): `match: {email: <column>}` or `{external_id: <column>}`
  (Zendesk's own identities; both compared without case). Rows are written with
  `users/create_or_update_many` (≤ 100 per call, a background job polled through
  `job_statuses` until completed); the job's results come back in request order, each
  `Created`/`Updated` with the user's id, or `Failed` with Zendesk's reason: that row is
  rejected (retried next run), the others delivered. `fields:` map Zendesk's standard user
  attributes (name, phone, notes, tags, organization_id…) and, for any other name, the
  custom user field of that key (`user_fields`), typed per the field's type. `name` must be
  mapped: Zendesk refuses to create a user without one.
- `mode: mirror` deletes users that left the model (`users/destroy_many`, ≤ 100, a job):
  Zendesk soft-deletes them (kept 30 days under Deleted users, then purged).
- `mode: audience` (`audience: <tag>`): entering rows are written, then tagged
  (`PUT users/{id}/tags`, which adds without replacing the user's other tags); leaving rows
  are untagged (`DELETE users/{id}/tags`). Users are never deleted in this mode.
- `object: organizations`: `match: {external_id: <column>}`, one `organizations/create_or_update`
  call per row (Zendesk has no bulk create-or-update for organizations: create_many would make
  duplicates of existing ones); `mirror` deletes with `organizations/destroy_many` by external_id.
- 429s are waited out per Retry-After (the job limit, 30 queued, answers 429 too); 5xx and
  lost answers are retried: every write is an upsert or a delete by identity, so a job queued
  twice does no harm. Refusals answering a retry after a lost answer leave their rows possibly
  delivered. 401/403 stop the sync (terminal).
"""

from __future__ import annotations

import builtins
import json
import re
import time
from collections.abc import Callable
from datetime import date, datetime
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
)
from activation.destinations.zendesk.api import Refused, Unfinished, ZendeskApi
from activation.project.secrets import redact

USER_ATTRS = {
    "name": str, "email": str, "external_id": str, "phone": str, "alias": str, "details": str, "notes": str,
    "locale": str, "time_zone": str, "role": str, "signature": str, "organization_id": int, "default_group_id": int,
    "verified": bool, "shared_phone_number": bool, "moderator": bool, "only_private_comments": bool, "suspended": bool,
    "tags": list,
}  # fmt: skip
ORG_ATTRS = {
    "name": str, "external_id": str, "details": str, "notes": str, "group_id": int,
    "shared_tickets": bool, "shared_comments": bool, "domain_names": list, "tags": list,
}  # fmt: skip
_TAG = re.compile(r"^[a-z0-9_\-:/.]+$")
_GONE = ("not found", "recordnotfound")


def typed(kind: str | type | None, value: Any) -> Any:
    """A model value as Zendesk takes it for an attribute or custom field of type `kind`."""
    if value is None:
        return None
    if kind in (bool, "checkbox"):
        return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes", "t", "y")
    if kind in (int, "integer"):
        return int(value)
    if kind == "decimal":
        return float(value) if isinstance(value, Decimal) else value if isinstance(value, (int, float)) else float(value)
    if kind == "date":
        if isinstance(value, (date, datetime)):
            return value.strftime("%Y-%m-%d")
        return str(value)[:10]
    if kind in (list, "multiselect"):
        items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
        return [str(v).strip() for v in items]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class ZendeskDestination(Destination):
    type: ClassVar[str] = "zendesk"
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror", "audience"})
    max_batch_size: ClassVar[int] = 100
    identity_model: ClassVar[IdentityModel] = "record"
    identity_folds_case: ClassVar[bool] = True  # emails and external_ids are case-insensitive at Zendesk

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self.api = ZendeskApi(name, spec, sleep=sleep)
        self._types: dict[str, str] | None = None
        self.counts: dict[str, int] = {}

    # -- configuration ------------------------------------------------------------------

    @staticmethod
    def _object(target: SyncTarget) -> str:
        return target.object or "users"

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        obj = self._object(target)
        if obj not in ("users", "organizations"):
            raise ConfigError(f"a zendesk destination writes `object: users` or `organizations`, not {obj!r}")
        allowed = [["email"], ["external_id"]] if obj == "users" else [["external_id"]]
        if target.match_fields not in allowed:
            which = "`match: {email: <column>}` or `{external_id: <column>}`" if obj == "users" else "`match: {external_id: <column>}`"
            raise ConfigError(f"zendesk {obj} are matched by Zendesk's own identity: use {which}")
        if "name" not in target.fields:
            raise ConfigError(f"zendesk {obj} need `name` in `fields:` (Zendesk refuses to create one without a name)")
        if target.mode == "audience":
            if obj != "users":
                raise ConfigError("mode audience tags users: it needs `object: users`")
            if not target.audience or not _TAG.match(self._tag(target)):
                raise ConfigError(
                    "mode audience needs `audience:`, the Zendesk user tag that marks membership (letters, digits, _ - : / .)"
                )

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.spec.batch_size, self.spec.batch_size, self.max_batch_size)

    def check_remote(self, target: SyncTarget) -> list[str]:
        try:
            self.api.call(self.api.client.users.me)
            types = self._field_types(target)
        except Refused as e:
            return [f"Zendesk refused the request: {e}"]
        kind = "user" if self._object(target) == "users" else "organization"
        problems = []
        for f in self._custom(target):
            if f not in types:
                problems.append(f"Zendesk has no active custom {kind} field with key {f!r} (fields: {', '.join(sorted(types)) or 'none'})")
            elif types[f] not in (
                "text",
                "textarea",
                "regexp",
                "checkbox",
                "integer",
                "decimal",
                "date",
                "dropdown",
                "tagger",
                "multiselect",
            ):
                problems.append(f"custom {kind} field {f!r} is of type {types[f]!r}, which a sync cannot write")
        return problems

    # -- helpers ----------------------------------------------------------------------------

    def _attrs(self, target: SyncTarget) -> dict[str, builtins.type]:
        return USER_ATTRS if self._object(target) == "users" else ORG_ATTRS

    def _custom(self, target: SyncTarget) -> list[str]:
        return [f for f in target.fields if f not in self._attrs(target)]

    def _tag(self, target: SyncTarget) -> str:
        return re.sub(r"\s+", "_", (target.audience or "").strip().lower())

    def _field_types(self, target: SyncTarget) -> dict[str, str]:
        if self._types is None:
            kind = "user_fields" if self._object(target) == "users" else "organization_fields"
            self._types = self.api.fields(kind) if self._custom(target) else {}
        return self._types

    def _bump(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n

    def _body(self, target: SyncTarget, op: RowOp) -> dict[str, Any]:
        """The record's attributes: its identity, and only what changed when Zendesk holds it."""
        attrs, types = self._attrs(target), self._field_types(target)
        known = op.previous is not None and op.changed_fields is not None
        names = [f for f in (op.changed_fields if known and op.changed_fields is not None else op.values) if f in op.values]
        body: dict[str, Any] = {m: typed(str, op.values.get(m)) for m in target.match_fields}
        custom_key = "user_fields" if self._object(target) == "users" else "organization_fields"
        for f in names:
            if f in target.match_fields:
                continue
            if f in attrs:
                body[f] = typed(attrs[f], op.values[f])
            else:
                body.setdefault(custom_key, {})[f] = typed(types.get(f), op.values[f])
        return body

    # -- push -------------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        try:
            results: dict[str, RowResult] = {}
            writes = [o for o in ops if o.kind != "remove"]
            removes = [o for o in ops if o.kind == "remove"]
            if self._object(target) == "organizations":
                results.update(self._write_orgs(target, writes))
                results.update(self._remove(target, removes, "organizations"))
            else:
                written = self._write_users(target, writes, results)
                if target.mode == "audience":
                    results.update(self._retag(target, written, removes))
                elif target.mode == "mirror":
                    results.update(self._remove(target, removes, "users"))
                else:
                    results.update({o.key: RowResult(o.key, True) for o in removes})  # upsert: nothing is removed
            return [results[o.key] for o in ops]
        except Refused as e:
            raise DestinationError(f"Zendesk refused the batch: {e}", retryable=False) from None

    def _write_users(self, target: SyncTarget, ops: list[RowOp], results: dict[str, RowResult]) -> list[tuple[RowOp, int]]:
        """Upsert users in one job; the written ones with their ids."""
        if not ops:
            return []
        from zenpy.lib.api_objects import User

        users = []
        for op in ops:
            user = User()
            for k, v in self._body(target, op).items():
                setattr(user, k, v)  # set after construction: a None clears the attribute
            users.append(user)
        try:
            items, ambiguous = self.api.run_job(self.api.client.users.create_or_update, users)  # a list: create_or_update_many
        except Unfinished as e:
            results.update({o.key: RowResult(o.key, False, error=str(e), unknown=True) for o in ops})
            return []
        written: list[tuple[RowOp, int]] = []
        by_index = {int(r["index"]): r for r in items if isinstance(r.get("index"), int)}
        for i, op in enumerate(ops):
            item = by_index.get(i) or (items[i] if i < len(items) and "index" not in items[i] else None)
            if item is None:
                results[op.key] = RowResult(op.key, False, error="Zendesk's job results did not mention this user", unknown=True)
            elif str(item.get("status")).lower() in ("created", "updated") and item.get("id") is not None:
                self._bump(str(item["status"]).lower())
                results[op.key] = RowResult(op.key, True, dest_id=str(item["id"]))
                written.append((op, int(item["id"])))
            else:
                why = redact(f"{item.get('error') or 'Failed'}: {item.get('details') or item.get('errors') or ''}".rstrip(": "))
                results[op.key] = RowResult(op.key, False, error=why, unknown=ambiguous)
        return written

    def _write_orgs(self, target: SyncTarget, ops: list[RowOp]) -> dict[str, RowResult]:
        from zenpy.lib.api_objects import Organization

        out = {}
        for op in ops:
            org = Organization()
            for k, v in self._body(target, op).items():
                setattr(org, k, v)
            try:
                written, _ = self.api.call(self.api.client.organizations.create_or_update, org, expect=Organization)
            except Refused as e:
                if e.status in (401, 403):
                    raise
                out[op.key] = RowResult(op.key, False, error=str(e), unknown=e.after_ambiguous)
                continue
            self._bump("organizations_written")
            out[op.key] = RowResult(op.key, True, dest_id=str(written.id))
        return out

    def _ids(self, target: SyncTarget, ops: list[RowOp]) -> tuple[dict[str, int], dict[str, RowResult]]:
        """The user id of each op (its dest_id, else looked up); ops of users that no longer exist are done."""
        ids, done = {}, {}
        [match] = target.match_fields
        for op in ops:
            if op.dest_id and op.dest_id.isdigit():
                ids[op.key] = int(op.dest_id)
                continue
            found = self.api.find_user_id(match, str(op.values.get(match) or ""))
            if found is None:
                done[op.key] = RowResult(op.key, True)  # no such user: nothing to remove
            else:
                ids[op.key] = found
        return ids, done

    def _remove(self, target: SyncTarget, ops: list[RowOp], obj: str) -> dict[str, RowResult]:
        if not ops:
            return {}
        if target.mode != "mirror":
            return {o.key: RowResult(o.key, True) for o in ops}
        client = self.api.client
        if obj == "organizations":
            from zenpy.lib.api_objects import Organization

            keys = [(o, str(o.values.get("external_id") or "")) for o in ops]
            batch = [Organization(external_id=e) for _, e in keys]
            job, what = (client.organizations.delete_by_external_id, batch), "organizations"
        else:
            from zenpy.lib.api_objects import User

            ids, done = self._ids(target, ops)
            keys = [(o, str(ids[o.key])) for o in ops if o.key in ids]
            if not keys:
                return done
            job, what = (client.users.delete, [User(id=int(i)) for _, i in keys]), "users"
            ops = [o for o, _ in keys]
        try:
            items, ambiguous = self.api.run_job(*job)
        except Unfinished as e:
            return {o.key: RowResult(o.key, False, error=str(e), unknown=True) for o in ops} | (done if obj == "users" else {})
        by_id = {str(r.get("id") or r.get("external_id") or "").lower(): r for r in items}
        out = dict(done) if obj == "users" else {}
        for op, ident in keys:
            item = by_id.get(ident.lower())
            failed = item is not None and (item.get("success") is False or str(item.get("status")).lower() == "failed")
            why = f"{(item or {}).get('error') or ''} {(item or {}).get('details') or ''}".strip()
            if failed and not any(g in why.lower() for g in _GONE):
                out[op.key] = RowResult(op.key, False, error=redact(f"not deleted: {why}"), unknown=ambiguous)
            else:
                self._bump(f"{what}_deleted")
                out[op.key] = RowResult(op.key, True)
        return out

    def _retag(self, target: SyncTarget, written: list[tuple[RowOp, int]], leaving: list[RowOp]) -> dict[str, RowResult]:
        """Tag users who entered (each already written) and untag those who left."""
        tag, users = self._tag(target), self.api.client.users
        out: dict[str, RowResult] = {}
        for op, uid in written:
            try:
                self.api.call(users.add_tags, uid, [tag])
                self._bump("tagged")
            except Refused as e:
                out[op.key] = RowResult(op.key, False, error=f"written but not tagged: {e}", unknown=e.after_ambiguous)
        ids, done = self._ids(target, leaving)
        out.update(done)
        for op in leaving:
            if op.key not in ids:
                continue
            try:
                self.api.call(users.delete_tags, ids[op.key], [tag])
                self._bump("untagged")
            except Refused as e:
                if e.status != 404:  # a user deleted meanwhile is untagged already
                    out[op.key] = RowResult(op.key, False, error=f"not untagged: {e}", unknown=e.after_ambiguous)
                    continue
            out[op.key] = RowResult(op.key, True)
        return out

    def report(self) -> DestinationReport:
        details: dict[str, Any] = dict(self.counts)
        if self.api.jobs:
            details["jobs"] = self.api.jobs[-20:]
        return DestinationReport(requests=self.api.requests, retries=self.api.retries, throttled=self.api.throttled, details=details)
