"""Mailchimp audience members through the official SDK (mailchimp-marketing).

One destination is one audience (list). Members are matched by email (`match:
{email_address: <column>}`); `fields:` map merge tags (FNAME, LNAME, custom) to columns.

- `upsert` / `mirror`: members are written with batch subscribe (`POST /lists/{id}`, up to
  500 per call, `update_existing: true`); a changed row sends only its changed merge fields.
  `mirror` removes rows that left the model per `on_remove` (archive, or unsubscribe).
- `audience` (`audience: <tag>`): membership is a tag. Entering rows are subscribed/updated,
  then tagged; leaving rows are untagged (and archived or unsubscribed if `on_remove` says
  so). Tags are static segments, so tagging and untagging go in bulk (500 each way per call).
- New members get `status_if_new`. With `subscribed` (the default) the batch endpoint is used;
  with `pending` or `transactional` each member is written with `PUT …/members/{hash}` and
  `status_if_new`, so an existing member's status is never changed. Mailchimp refuses to
  subscribe a member who unsubscribed or bounced: that row is rejected with its reason
  (we never resubscribe anyone), and so is any other per-member error; the batch's other
  rows are delivered.
- An identity change (the row's email changed) writes the member of the new email; the old
  member is removed as any other (mirror, audience) once no row maps to it.
- Per-member errors in the answer to a retried call whose earlier attempt may have been
  applied (a lost answer, a 500) are not taken as refusals: those rows are left possibly
  delivered (resent while in the model, removed when they leave), as is a member the answer
  does not mention.
- Calls run `concurrency` at a time (Mailchimp allows 10 simultaneous connections per
  account), so 429s stay rare; each 429 lowers that limit by one for the rest of the run
  (other apps share the account's connections) and is retried, as are 5xx and transport
  failures, with backoff.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
from activation.destinations.mailchimp.api import MailchimpApi, Refused
from activation.project.secrets import redact

EMAIL = "email_address"
MERGE_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
#: Removing a member that is already gone is success: removal is idempotent.
_GONE = ("permanently deleted", "not found")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def merge_value(type_: str | None, value: Any) -> Any:
    """A model value as Mailchimp stores it in a merge field of `type_`."""
    if value is None:
        return ""  # clears the field
    if type_ == "number":
        return int(value) if isinstance(value, bool) else value
    if type_ == "address":
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    m = _ISO_DATE.match(text)
    if type_ == "date" and m:
        return m.group(0)  # a timestamp's date part: Mailchimp takes YYYY-MM-DD
    if type_ == "birthday" and m:
        return f"{m.group(2)}/{m.group(3)}"  # MM/DD
    return text


class MailchimpDestination(Destination):
    identity_model: ClassVar[IdentityModel] = "record"  # Mailchimp keys a member by the MD5 of the lower-cased email
    identity_folds_case: ClassVar[bool] = True
    type: ClassVar[str] = "mailchimp"
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror", "audience"})
    max_batch_size: ClassVar[int] = 500

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self.api = MailchimpApi(name, spec, sleep=sleep)
        self._list_id: str | None = None
        self._types: dict[str, str] | None = None
        self._segment: int | None = None
        self.counts: dict[str, int] = {}

    # -- configuration ------------------------------------------------------------------

    def on_remove(self, target: SyncTarget) -> str:
        return self.spec.on_remove or ("untag" if target.mode == "audience" else "archive")

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if target.match_fields != [EMAIL]:
            raise ConfigError("a mailchimp sync matches members by email: use `match: {email_address: <email column>}`")
        if target.object not in (None, "members"):
            raise ConfigError(
                f"a mailchimp destination writes audience members; `object:` must be omitted or 'members', not {target.object!r}"
            )
        if target.mode == "audience" and not target.audience:
            raise ConfigError("mode audience needs `audience:`, the name of the Mailchimp tag that marks membership")
        if target.mode == "mirror" and self.spec.on_remove == "untag":
            raise ConfigError("on_remove: untag needs mode: audience (a mirror sync removes members: archive or unsubscribe)")
        bad = [f for f in target.fields if not MERGE_TAG.match(f)]
        if bad:
            raise ConfigError(
                f"mailchimp `fields:` are merge tags (1-10 upper-case letters, digits or _, e.g. FNAME): {', '.join(map(repr, bad))}"
            )

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.spec.batch_size, self.spec.batch_size, self.max_batch_size)

    def check_remote(self, target: SyncTarget) -> list[str]:
        try:
            self.api.call(self.api.ping.get)
            list_id, audiences = self.api.find_list()
        except Refused as e:
            return [f"Mailchimp refused the request: {e}"]
        if list_id is None:
            known = ", ".join(f"{a.get('name')!r} ({a.get('id')})" for a in audiences) or "none"
            return [f"Mailchimp has no audience with {self._which()} (audiences: {known})"]
        fields = self.api.merge_fields(list_id)
        problems = [
            f"the Mailchimp audience has no merge field {f!r} (merge fields: {', '.join(fields) or 'none'})"
            for f in target.fields
            if f not in fields
        ]
        problems += [
            f"merge field {tag!r} is required on the Mailchimp audience but not in `fields:`: new members would be refused"
            for tag, mf in fields.items()
            if mf.get("required") and tag not in target.fields
        ]
        return problems

    def _which(self) -> str:
        """The audience as the config names it."""
        return f"list id {self.spec.list_id!r}" if self.spec.list_id else f"name {self.spec.list_name!r}"

    # -- set-up (lazy: an unchanged run makes no call) -------------------------------------

    def _prepare(self, target: SyncTarget) -> str:
        if self._list_id is None:
            try:
                list_id, _ = self.api.find_list()
            except Refused as e:
                raise DestinationError(f"Mailchimp refused to look up the audience: {e}", retryable=False) from None
            if list_id is None:
                raise DestinationError(
                    f"Mailchimp has no audience with {self._which()} (run `activation validate --remote`)", retryable=False
                )
            self._list_id = list_id
        if self._types is None:
            self._types = {tag: str(f.get("type")) for tag, f in self.api.merge_fields(self._list_id).items()} if target.fields else {}
        if target.mode == "audience" and self._segment is None:
            self._segment = self.api.tag_segment(self._list_id, target.audience or "", create=True)
        return self._list_id

    def _bump(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n

    # -- push -------------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        list_id = self._prepare(target)
        errors: dict[str, str] = {}  # op key -> why it was not applied
        unknown: set[str] = set()  # op keys an attempt may have applied before the answer that refused them
        deferred: set[str] = set()  # removals Mailchimp cannot do now (an archived member's tag)
        writes = [o for o in ops if o.kind != "remove"]
        # removes come only for members no live row maps to (the core's releases), so a
        # member never leaves and is written in one batch
        leaving = [(o, _email(o.values)) for o in ops if o.kind == "remove"]
        bodies: list[tuple[RowOp, dict[str, Any]]] = []
        seen: dict[str, str] = {}
        for op in writes:
            email = _email(op.values)
            if email.lower() in seen:
                errors[op.key] = f"another row ({seen[email.lower()]}) in this batch has the same email_address"
                continue
            seen[email.lower()] = op.key
            bodies.append((op, {EMAIL: email, "merge_fields": self._merge_fields(op)}))
        errors.update(self._write(list_id, bodies, unknown))
        written = [(op, body[EMAIL]) for op, body in bodies if op.key not in errors]
        if target.mode == "audience":
            errors.update(self._retag(list_id, written, leaving, unknown, deferred))
        action = self.on_remove(target)
        still = [(op, e) for op, e in leaving if op.key not in errors]
        if action == "archive":
            errors.update(self._archive(list_id, still, unknown))
        elif action == "unsubscribe":
            errors.update(self._unsubscribe(list_id, still, unknown))
        return [
            RowResult(
                key=o.key,
                ok=o.key not in errors and o.key not in unknown and o.key not in deferred,
                error=errors.get(o.key),
                unknown=o.key in unknown,
                deferred=o.key in deferred,
                dest_id=None if o.kind == "remove" else subscriber_hash(_email(o.values)),
            )
            for o in ops
        ]

    def _merge_fields(self, op: RowOp) -> dict[str, Any]:
        """A member known under this email gets only its changed merge fields; a new one all of them."""
        types = self._types or {}
        known = op.changed_fields is not None and op.previous is not None
        names = op.changed_fields if known and op.changed_fields is not None else list(op.values)
        return {f: merge_value(types.get(f), op.values.get(f)) for f in names if f != EMAIL and f in op.values}

    def _write(self, list_id: str, bodies: list[tuple[RowOp, dict[str, Any]]], unknown: set[str]) -> dict[str, str]:
        if not bodies:
            return {}
        status = self.spec.status_if_new
        if status != "subscribed":
            # PUT with status_if_new leaves an existing member's status alone (batch subscribe cannot).
            def put(item: tuple[RowOp, dict[str, Any]]) -> tuple[str, str | None]:
                op, body = item
                try:
                    self.api.call(self.api.lists.set_list_member, list_id, subscriber_hash(body[EMAIL]), {**body, "status_if_new": status})
                except Refused as e:
                    if e.after_ambiguous:
                        unknown.add(op.key)
                    return op.key, str(e)
                return op.key, None

            failed = {k: e for k, e in self._each(put, bodies) if e}
            self._bump("written", len(bodies) - len(failed))
            return failed
        members = [{**body, "status": status} for _, body in bodies]
        try:
            reply, ambiguous = self.api.call_with_outcome(
                self.api.lists.batch_list_members, list_id, {"members": members, "update_existing": True}
            )
        except Refused as e:
            raise DestinationError(f"Mailchimp refused the batch: {e}", retryable=False) from None
        reply = reply or {}
        refused = {str(e.get(EMAIL, "")).strip().lower(): _reason(e) for e in reply.get("errors") or []}
        acked = {str(m.get(EMAIL, "")).lower() for m in (reply.get("new_members") or []) + (reply.get("updated_members") or [])}
        self._bump("created", int(reply.get("total_created") or 0))
        self._bump("updated", int(reply.get("total_updated") or 0))
        out = {}
        for op, body in bodies:
            email = body[EMAIL].lower()
            if email in refused:
                out[op.key] = refused[email]
                if ambiguous:
                    unknown.add(op.key)
            elif email not in acked:  # an answer that leaves a member out does not say what happened to it
                out[op.key] = "Mailchimp's answer did not mention this member"
                unknown.add(op.key)
        return out

    def _retag(
        self, list_id: str, written: list[tuple[RowOp, str]], gone: list[tuple[RowOp, str]], unknown: set[str], deferred: set[str]
    ) -> dict[str, str]:
        assert self._segment is not None
        out: dict[str, str] = {}
        adds, removes = [e for _, e in written], [e for _, e in gone]
        for i in range(0, max(len(adds), len(removes)), self.max_batch_size):
            body = {"members_to_add": adds[i : i + self.max_batch_size], "members_to_remove": removes[i : i + self.max_batch_size]}
            try:
                reply, ambiguous = self.api.call_with_outcome(self.api.lists.batch_segment_members, body, list_id, self._segment)
            except Refused as e:
                raise DestinationError(f"Mailchimp refused to tag members: {e}", retryable=False) from None
            reply = reply or {}
            self._bump("tagged", int(reply.get("total_added") or 0))
            self._bump("untagged", int(reply.get("total_removed") or 0))
            missing = {str(a).lower(): str(err.get("error")) for err in reply.get("errors") or [] for a in err.get("email_addresses") or []}
            # a member to untag that is not on the list is untagged already; one to tag must exist
            refused = {op.key: f"not tagged: {missing[e.lower()]}" for op, e in written if e.lower() in missing}
            out.update(refused)
            if ambiguous:
                unknown.update(refused)
            deferred.update(self._archived(list_id, [(op, e) for op, e in gone[i : i + self.max_batch_size] if e.lower() in missing]))
        return out

    def _archived(self, list_id: str, untagged: list[tuple[RowOp, str]]) -> set[str]:
        """Of members an untag did not find, those that are archived (another sync of this
        audience archived them first): Mailchimp keeps an archived member's tags and cannot
        change them, and brings them back with the member, so the untag waits for it."""
        out: set[str] = set()
        for op, email in untagged:
            try:
                member = self.api.call(self.api.lists.get_list_member, list_id, subscriber_hash(email), fields=["status"])
            except Refused:
                continue  # not on the list at all: untagged already
            if (member or {}).get("status") == "archived":
                out.add(op.key)
        return out

    def _archive(self, list_id: str, gone: list[tuple[RowOp, str]], unknown: set[str]) -> dict[str, str]:
        def delete(item: tuple[RowOp, str]) -> tuple[str, str | None]:
            op, email = item
            try:
                self.api.call(self.api.lists.delete_list_member, list_id, subscriber_hash(email))
            except Refused as e:
                if e.status != 404:  # archived or deleted already: removal is idempotent
                    if e.after_ambiguous:
                        unknown.add(op.key)
                    return op.key, str(e)
            return op.key, None

        failed = {k: e for k, e in self._each(delete, gone) if e}
        self._bump("archived", len(gone) - len(failed))
        return failed

    def _unsubscribe(self, list_id: str, gone: list[tuple[RowOp, str]], unknown: set[str]) -> dict[str, str]:
        if not gone:
            return {}
        members = [{EMAIL: e, "status": "unsubscribed"} for _, e in gone]
        try:
            reply, ambiguous = self.api.call_with_outcome(
                self.api.lists.batch_list_members, list_id, {"members": members, "update_existing": True}, skip_merge_validation=True
            )
            reply = reply or {}
        except Refused as e:
            raise DestinationError(f"Mailchimp refused the batch: {e}", retryable=False) from None
        refused = {
            str(e.get(EMAIL, "")).lower(): _reason(e) for e in reply.get("errors") or [] if not any(g in str(e.get("error")) for g in _GONE)
        }
        self._bump("unsubscribed", len(gone) - len(refused))
        out = {op.key: refused[e.lower()] for op, e in gone if e.lower() in refused}
        if ambiguous:
            unknown.update(out)
        return out

    def _each(self, fn: Callable[[Any], tuple[str, str | None]], items: list[Any]) -> list[tuple[str, str | None]]:
        if len(items) <= 1 or self.spec.concurrency == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=self.spec.concurrency, thread_name_prefix="mailchimp") as pool:
            return list(pool.map(fn, items))

    def report(self) -> DestinationReport:
        details: dict[str, Any] = {"list_id": self._list_id} if self._list_id else {}
        if self._segment is not None:
            details["tag_segment_id"] = self._segment
        details.update(self.counts)
        if self.api.slots.lowest < self.api.slots.ceiling:
            details["concurrency_lowered_to"] = self.api.slots.lowest  # 429s: another app shares the account's connections
        return DestinationReport(requests=self.api.requests, retries=self.api.retries, throttled=self.api.throttled, details=details)


def _email(values: dict[str, Any]) -> str:
    return str(values.get(EMAIL) or "").strip()


def _reason(error: dict[str, Any]) -> str:
    """Mailchimp's per-member error, with the merge field it names."""
    text = str(error.get("error") or "rejected")
    if error.get("field") and error.get("field_message"):
        text += f" ({error['field']}: {error['field_message']})"
    return redact(text)
