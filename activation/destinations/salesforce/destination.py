"""Salesforce destination: upsert, insert, update and mirror any sObject; campaigns as audiences.

Every call goes through simple-salesforce (`client`). How a batch travels:

* The runner sends batches of up to `max_batch_size` (10,000) ops. A write of more records than
  the destination's `bulk_threshold` goes through one Bulk API 2.0 ingest job (create, upload,
  close, poll, successful + failed results: 7+ calls, whatever the size); smaller ones through
  sObject Collections, 200 records a call. 1,000 changed rows: 5 calls, or 7+ through Bulk.
  A sync-level `batch_size` below `bulk_threshold` therefore means "never Bulk".
* upsert/mirror upsert by the one `match` field (an External ID). A changed row sends only its
  changed fields (plus the external id); if that partial write turns out to create the record
  (it was deleted in Salesforce) or lacks a required field, the row is resent whole. A row
  whose external id itself changed is updated by its stored record Id when the core allows the
  rename (no other row maps to the old value, nothing is held under the new one); otherwise
  the new value is upserted and the old record deleted once no row maps to it.
* insert creates; a DUPLICATE_VALUE on the external id counts as delivered (the row is there),
  which makes a resend after a crash harmless.
* update finds records by the match field (one SOQL query per 200 rows, skipped when the record
  Id is known from an earlier run); rows with no such record are rejected.
* mirror's removals delete by stored Id (found by the match field when unknown); a record that
  is already gone counts as removed.
* audience: `match` finds the Contact (or Lead, `object: Lead`) and a CampaignMember joins it
  to the campaign named by `audience` (created if missing); removals delete the CampaignMember.

The org's describe of the sObject is fetched once per run; it drives value conversion and the
mapping check that stops a run before anything is sent (the same as `validate --remote`).
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from simple_salesforce import Salesforce
from simple_salesforce.format import format_soql

from activation.destinations.base import (
    AmbiguousOutcome,
    ConfigError,
    Destination,
    DestinationError,
    DestinationReport,
    IdentityModel,
    RequestBudget,
    RowOp,
    RowResult,
    SyncTarget,
    account_key,
    find_or_create,
)
from activation.destinations.http import RetryPolicy
from activation.destinations.salesforce.client import Outcome, SalesforceClient, http_session
from activation.destinations.salesforce.fields import ConversionError, SObjectInfo, convert, field_problems, required_missing
from activation.project.secrets import MissingSecret, redact, resolve_env

GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})
SECRET_FIELDS = ("session_id", "password", "security_token")
AUTH_HELP = (
    "configure session_id (+ instance_url), username + password (+ security_token), or username + consumer_key + private_key_file (JWT)"
)


def _same_identity(op: RowOp, match: str) -> bool:
    """The row still names the record it was delivered to (its match value did not change)."""
    return (op.previous or {}).get(match) == op.values.get(match)


def _only_record(info: SObjectInfo, match: str, op: RowOp, found: dict[Any, list[str]], res: dict[str, RowResult]) -> str | None:
    """The one record whose `match` field holds the row's value; none or several rejects the
    row (never a guess between two people)."""
    ids = found.get(_norm(op.values[match]), [])
    if len(ids) == 1:
        return ids[0]
    what = f"no {info.name}" if not ids else f"{len(ids)} {info.name} records"
    res[op.key] = RowResult(op.key, False, error=f"{what} with {info.canonical(match)} = {op.values[match]!r}")
    return None


def _norm(value: Any) -> str:
    """How look-ups compare match values: external ids and emails ignore case in Salesforce."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).lower()


class SalesforceDestination(Destination):
    """Writes to one Salesforce org (a `SalesforceDestinationSpec`)."""

    identity_model: ClassVar[IdentityModel] = "record"  # an external id compares without case unless the field is set case-sensitive
    identity_folds_case: ClassVar[bool] = True
    # upsert/mirror: a record whose external id changed is updated by its Id (it keeps its
    # history, activities and owner) instead of a new record and a delete
    renames_in_place: ClassVar[bool] = True

    type = "salesforce"
    max_batch_size = 10_000

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self._sleep = sleep
        self._values: dict[str, str | None] = {}
        self._client: SalesforceClient | None = None
        self._http: requests.Session | None = None
        self._budget: RequestBudget | None = None  # the org's daily quota, kept for plan
        self._objects: dict[str, SObjectInfo | None] = {}
        self._campaign: str | None = None

    # ------------------------------------------------------------ configuration

    def _value(self, field: str) -> str | None:
        """A spec value with ${ENV} resolved (registered for redaction)."""
        if field not in self._values:
            raw = getattr(self.spec, field)
            try:
                value = resolve_env(raw) if raw is not None else None
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            if value and field in SECRET_FIELDS:
                redact.add(value)  # also when written literally in syncs.yaml
            self._values[field] = value
        return self._values[field]

    def _auth(self) -> str | None:
        s = self.spec
        if s.session_id and (s.instance_url or s.transport_url):
            return "session"
        if s.username and s.password:
            return "password"
        if s.username and s.consumer_key and s.private_key_file:
            return "jwt"
        return None

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if self._auth() is None:
            raise ConfigError(f"destination {self.name!r}: no usable credentials; {AUTH_HELP}")
        audience = target.mode == "audience"
        if len(target.match_fields) != 1:
            example = "{Email: email}" if audience else "{External_Id__c: user_id}"
            role = (
                "the Contact/Lead field that finds each member (Email or an External ID)"
                if audience
                else "the sObject's External ID field used to upsert"
            )
            got = ", ".join(target.match_fields) or "none"
            raise ConfigError(f"Salesforce needs exactly one `match` field, {role}, e.g. match: {example} (got {got})")
        if audience:
            if not target.audience:
                raise ConfigError("mode audience needs `audience`: the name of the Salesforce campaign")
            if (target.object or "Contact") not in ("Contact", "Lead"):
                raise ConfigError(f"campaign members are Contacts or Leads; `object` is {target.object!r}")
            if target.fields:
                raise ConfigError("mode audience only manages campaign membership: remove `fields`")
        elif not target.object:
            raise ConfigError("Salesforce syncs need `object`: the sObject's API name, e.g. Contact or Account__c")

    @property
    def client(self) -> SalesforceClient:
        """The API client, created on first use (no network until the first call)."""
        if self._client is None:
            for field in ("transport_url", "instance_url", "username", "consumer_key", "private_key_file", "domain", *SECRET_FIELDS):
                self._value(field)  # a missing ${ENV} fails here, before anything is sent
            self._http, adapter = http_session(self._value("transport_url"), self.spec.timeout_seconds)
            s = self.spec
            can_relogin = bool(s.username and (s.password or (s.consumer_key and s.private_key_file)))
            self._client = SalesforceClient(
                self._login,
                can_relogin=can_relogin,
                retry=RetryPolicy(max_retries=s.max_retries),
                adapter=adapter,
                bulk_wait=s.bulk_poll_seconds,
                sleep=self._sleep,
            )
        return self._client

    def _login(self, fresh: bool) -> Salesforce:
        """A client: by session id, unless `fresh` (after a 401) or none is configured."""
        v = self._value
        common: dict[str, Any] = {"session": self._http, "version": self.spec.api_version}
        if v("session_id") and not fresh:
            url = v("instance_url") or f"https://{urlsplit(v('transport_url') or '').netloc}"
            return Salesforce(instance_url=url, session_id=v("session_id"), **common)
        if v("username") and v("password"):
            return Salesforce(
                username=v("username"), password=v("password"), security_token=v("security_token") or "", domain=v("domain"), **common
            )
        if v("username") and v("consumer_key") and v("private_key_file"):
            key = os.path.join(self.project_dir, v("private_key_file") or "")
            if not os.path.isfile(key):
                raise ConfigError(f"destination {self.name!r}: private_key_file {self.spec.private_key_file!r} not found")
            return Salesforce(username=v("username"), consumer_key=v("consumer_key"), privatekey_file=key, domain=v("domain"), **common)
        raise DestinationError(f"destination {self.name!r}: cannot log in; {AUTH_HELP}", retryable=False)

    def open(self, target: SyncTarget) -> None:
        self.client  # noqa: B018 - resolve ${ENV} before the first batch; no network yet

    def budget_account(self) -> str | None:
        """Salesforce's daily API request limit is the org's: its instance, else the user's
        (a username belongs to one org)."""
        try:
            org = self._value("instance_url") or self._value("username") or self._value("transport_url")
        except ConfigError:
            return None  # open() says what is missing
        return account_key("salesforce", org) if org else None

    def share_budget(self, budget_for: Callable[[str], RequestBudget]) -> None:
        # no per-second quota to share; the daily one is told in every answer (Sforce-Limit-Info)
        if (account := self.budget_account()) is not None:
            self._budget = budget_for(account)

    def estimated_calls(self, target: SyncTarget, writes: int, removals: int) -> int | None:
        # writes: Collections of 200 (with a look-up query per 200 to update by the match
        # field), or one Bulk job (create, upload, close, a few polls, the results); removals:
        # a look-up and a delete per 200; and the describe
        bulk = writes > self.spec.bulk_threshold
        return (10 if bulk else -(-writes // 200) * 2) + -(-removals // 200) * 2 + 1

    def report(self) -> DestinationReport:
        c = self._client
        if c is None:
            return DestinationReport()
        details = {"api_usage": f"{c.api_usage[0]}/{c.api_usage[1]}"} if c.api_usage else {}
        return DestinationReport(requests=c.requests, retries=c.retries, details=details)

    def close(self) -> None:
        if self._budget is not None and self._client is not None and self._client.api_usage:
            used, limit = self._client.api_usage
            self._budget.observe_daily(max(limit - used, 0), limit)  # for plan's forecast
            self._budget.flush()
        if self._http is not None:
            self._http.close()
        self._http = self._client = None

    # ------------------------------------------------------------ describe and checks

    def _info(self, sobject: str) -> SObjectInfo | None:
        if sobject not in self._objects:
            desc = self.client.describe(sobject)
            self._objects[sobject] = SObjectInfo.from_describe(desc) if desc else None
        return self._objects[sobject]

    def _problems(self, target: SyncTarget) -> tuple[SObjectInfo | None, list[str]]:
        obj = target.object or "Contact"
        info = self._info(obj)
        if info is None:
            names = {n.lower(): n for n in self.client.object_names()}
            close = [names[n] for n in difflib.get_close_matches(obj.lower(), names, n=3, cutoff=0.75)]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            return None, [f"Salesforce has no sObject {obj!r}{hint}"]
        if target.mode == "audience":
            match = target.match_fields[0]
            if info.field(match) is None:
                return info, [f"{info.name} has no field {match!r}{info.suggest(match)}"]
            return info, []
        return info, field_problems(info, target.mode, target.match_fields[0], target.fields)

    def check_remote(self, target: SyncTarget) -> list[str]:
        info, problems = self._problems(target)
        if info is not None and target.mode == "insert":
            mapped = [*target.match_fields, *target.fields]
            problems += [f"{info.name}.{f} is required to create a record but is not mapped" for f in required_missing(info, mapped)]
        return problems

    def _prepare(self, target: SyncTarget) -> SObjectInfo:
        """Describe once per run and refuse to send a mapping the org cannot take."""
        info, problems = self._problems(target)
        if problems or info is None:
            raise DestinationError("; ".join(problems) + " (check with `activation validate --remote`)", retryable=False)
        return info

    # ------------------------------------------------------------ push

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        if not ops:
            return []
        info = self._prepare(target)  # the describe is cached: a network call once per run
        res: dict[str, RowResult] = {}
        if target.mode == "audience":
            self._audience(target, info, ops, res)
        else:
            for kind, handler in (("upsert", self._upsert), ("insert", self._insert), ("update", self._update), ("remove", self._remove)):
                group = [op for op in ops if op.kind == kind]
                if group:
                    handler(info, target.match_fields[0], group, res)
        missing = "Salesforce did not report this record"
        return [res.get(op.key) or RowResult(op.key, False, error=missing) for op in ops]

    def _write(
        self, op: str, sobject: str, items: list[tuple[RowOp, dict[str, Any]]], *, ext: str | None = None, key: str = "Id"
    ) -> list[tuple[RowOp, Outcome]]:
        """Collections for small writes, one Bulk job above `bulk_threshold`."""
        if not items:
            return []
        records = [r for _, r in items]
        if len(records) > self.spec.bulk_threshold:
            outcomes = self.client.bulk(op, sobject, records, key=ext or key, ext=ext)
        elif op == "delete":
            outcomes = self.client.delete([r["Id"] for r in records])
        else:
            outcomes = self.client.collection(op, sobject, records, ext=ext)
        return list(zip([o for o, _ in items], outcomes, strict=False))

    @staticmethod
    def _add(
        items: list[tuple[RowOp, dict[str, Any]]],
        res: dict[str, RowResult],
        info: SObjectInfo,
        op: RowOp,
        names: Iterable[str],
        **extra: Any,
    ) -> None:
        """Queue `op` with its `names` fields converted, or reject it naming the field."""
        record: dict[str, Any] = {}
        try:
            for name in names:
                field = info.field(name)
                if field is not None:  # checked by _prepare; a field unmapped since is skipped
                    record[field["name"]] = convert(field, op.values.get(name))
        except ConversionError as e:
            res[op.key] = RowResult(op.key, False, error=str(e))
            return
        items.append((op, {**record, **extra}))

    @staticmethod
    def _changed(op: RowOp) -> list[str]:
        """Fields to send: only the changed ones for a row delivered before."""
        if op.previous is None or op.changed_fields is None:
            return list(op.values)
        return [f for f in op.changed_fields if f in op.values]

    @staticmethod
    def _settle(res: dict[str, RowResult], outcomes: Iterable[tuple[RowOp, Outcome]], ok_codes: frozenset[str] = frozenset()) -> None:
        for op, o in outcomes:
            ok = o.ok or o.code in ok_codes
            # refused after an attempt Salesforce may have applied: possibly delivered
            res[op.key] = RowResult(op.key, ok, o.id or op.dest_id, None if ok else o.error, unknown=not ok and o.after_ambiguous)

    def _find(self, info: SObjectInfo, match: str, values: Iterable[Any], where: str = "") -> dict[str, list[str]]:
        """Record Ids by normalised match value (one query per chunk of values)."""
        field = info.field(match)
        assert field is not None
        wanted = []
        for v in values:
            try:
                wanted.append(convert(field, v))
            except ConversionError:
                continue  # cannot match anything: its row is reported as not found
        found: dict[str, list[str]] = {}
        for rec in self.client.find(info.name, field["name"], wanted, where=where):
            found.setdefault(_norm(rec.get(field["name"])), []).append(rec["Id"])
        return found

    def _upsert(self, info: SObjectInfo, match: str, ops: list[RowOp], res: dict[str, RowResult]) -> None:
        ext = info.canonical(match)
        upserts: list[tuple[RowOp, dict[str, Any]]] = []
        renames: list[tuple[RowOp, dict[str, Any]]] = []
        partial: set[str] = set()
        for op in ops:
            names = self._changed(op)
            if op.rename and op.dest_id:  # the core says the record may take the new external id
                self._add(renames, res, info, op, names, Id=op.dest_id)
                continue
            if len(set(names) | {match}) < len(op.values):
                partial.add(op.key)
            self._add(upserts, res, info, op, [match, *names])
        for op, o in self._write("update", info.name, renames):
            if o.ok:
                res[op.key] = RowResult(op.key, True, o.id or op.dest_id, moved=True)
            elif o.code in GONE or o.code == "DUPLICATE_VALUE":
                # deleted in Salesforce, or another record took the new value since: upsert
                # the row whole; the core then removes the old record as any released identity
                self._add(upserts, res, info, op, op.values)
            else:
                self._settle(res, [(op, o)])
        outcomes = self._write("upsert", info.name, upserts, ext=ext)
        self._settle(res, outcomes)
        # a partial write that created the record (deleted in Salesforce) or missed a required
        # field: send the row whole, so no record is left with only its changed fields
        again: list[tuple[RowOp, dict[str, Any]]] = []
        for op, o in outcomes:
            if op.key in partial and ((o.ok and o.created) or o.code == "REQUIRED_FIELD_MISSING"):
                self._add(again, res, info, op, op.values)
        self._settle(res, self._write("upsert", info.name, again, ext=ext))

    def _insert(self, info: SObjectInfo, match: str, ops: list[RowOp], res: dict[str, RowResult]) -> None:
        items: list[tuple[RowOp, dict[str, Any]]] = []
        for op in ops:
            self._add(items, res, info, op, op.values)
        marker = f"{info.canonical(match)} duplicates value on record with id: "
        for op, o in self._write("insert", info.name, items, key=info.canonical(match)):
            if o.code == "DUPLICATE_VALUE" and o.message and marker in o.message:
                # already created (by a run that crashed before recording it): delivered
                o = Outcome(True, o.message.split(marker, 1)[1].split()[0].strip(".,;"))
            self._settle(res, [(op, o)])

    def _update(self, info: SObjectInfo, match: str, ops: list[RowOp], res: dict[str, RowResult]) -> None:
        known = [op for op in ops if op.dest_id and _same_identity(op, match)]
        known_keys = {op.key for op in known}
        direct: list[tuple[RowOp, dict[str, Any]]] = []
        for op in known:
            self._add(direct, res, info, op, [n for n in self._changed(op) if n != match], Id=op.dest_id)
        done = self._write("update", info.name, direct)
        self._settle(res, [(op, o) for op, o in done if o.code not in GONE])
        # records not known yet, or whose stored Id is gone: found by the match field
        lookup = [op for op in ops if op.key not in known_keys] + [op for op, o in done if o.code in GONE]
        ids = self._find(info, match, [op.values[match] for op in lookup]) if lookup else {}
        items: list[tuple[RowOp, dict[str, Any]]] = []
        for op in lookup:
            if (rid := _only_record(info, match, op, ids, res)) is not None:
                self._add(items, res, info, op, [n for n in op.values if n != match], Id=rid)
        self._settle(res, self._write("update", info.name, items))

    def _remove(
        self,
        info: SObjectInfo,
        match: str,
        ops: list[RowOp],
        res: dict[str, RowResult],
        sobject: str | None = None,
        resolve: Callable[[list[RowOp]], dict[str, str]] | None = None,
    ) -> None:
        """Delete by stored Id; rows without one are found first (not found: already gone)."""
        unknown = [op for op in ops if not op.dest_id]
        if resolve is None:

            def resolve(rows: list[RowOp]) -> dict[str, str]:
                ids = self._find(info, match, [op.values.get(match) for op in rows if op.values.get(match) is not None])
                return {op.key: ids[_norm(op.values.get(match))][0] for op in rows if ids.get(_norm(op.values.get(match)))}

        found = resolve(unknown) if unknown else {}
        items = []
        for op in ops:
            rid = op.dest_id or found.get(op.key)
            if rid is None:
                res[op.key] = RowResult(op.key, True)
            else:
                items.append((op, {"Id": rid}))
        self._settle(res, self._write("delete", sobject or info.name, items), ok_codes=GONE)

    # ------------------------------------------------------------ audience

    def _campaign_id(self, name: str) -> str:
        if self._campaign is None:

            def find() -> str | None:
                found = self.client.query(format_soql("SELECT Id FROM Campaign WHERE Name = {} ORDER BY CreatedDate LIMIT 1", name))
                return found[0]["Id"] if found else None

            def create() -> str:  # campaign names are not unique: a create retried blindly could make two
                created = self.client.call(
                    f"create Campaign {name!r}",
                    lambda sf: sf.restful("sobjects/Campaign", method="POST", json={"Name": name, "IsActive": True}),
                    idempotent=False,
                )
                if created is None:  # an empty answer (simple_salesforce's None): created or not, look first
                    raise AmbiguousOutcome(f"Salesforce answered the creation of Campaign {name!r} with nothing")
                return str(created["id"])

            self._campaign = find_or_create(find, create, attempts=self.spec.max_retries + 1)
        return self._campaign

    def _audience(self, target: SyncTarget, info: SObjectInfo, ops: list[RowOp], res: dict[str, RowResult]) -> None:
        match, link = target.match_fields[0], f"{info.name}Id"  # ContactId | LeadId
        campaign = self._campaign_id(target.audience or "")
        in_campaign = format_soql(" AND CampaignId = {}", campaign)
        adds: list[RowOp] = []
        for op in ops:
            if op.kind == "remove":
                continue
            if op.kind == "update" and op.dest_id and _same_identity(op, match):
                res[op.key] = RowResult(op.key, True, op.dest_id)  # same person: nothing to do
            else:
                adds.append(op)
        people = self._find(info, match, [op.values[match] for op in adds]) if adds else {}
        items: list[tuple[RowOp, dict[str, Any]]] = []
        for op in adds:
            if (person := _only_record(info, match, op, people, res)) is not None:
                items.append((op, {"CampaignId": campaign, link: person}))
        outcomes = self._write("insert", "CampaignMember", items, key=link)
        dupes = [rec[link] for (_, rec), (_, o) in zip(items, outcomes, strict=False) if o.code == "DUPLICATE_VALUE"]
        if dupes:  # already a member: find the membership, so a later removal can delete it
            ids = {m[link]: m["Id"] for m in self.client.find("CampaignMember", link, dupes, where=in_campaign)}
            outcomes = [
                (op, Outcome(True, ids[rec[link]]) if o.code == "DUPLICATE_VALUE" and rec[link] in ids else o)
                for (op, rec), (_, o) in zip(items, outcomes, strict=False)
            ]
        self._settle(res, outcomes)

        def memberships(rows: list[RowOp]) -> dict[str, str]:
            found = self._find(info, match, [op.values.get(match) for op in rows if op.values.get(match) is not None])
            person = {op.key: found[_norm(op.values.get(match))][0] for op in rows if found.get(_norm(op.values.get(match)))}
            members = self.client.find("CampaignMember", link, list(person.values()), where=in_campaign) if person else []
            by_person = {m[link]: m["Id"] for m in members}
            return {k: by_person[p] for k, p in person.items() if p in by_person}

        # a person whose match value changed joins as the new person; the core removes the old
        # membership (a released identity) once no row maps to it
        removes = [op for op in ops if op.kind == "remove"]
        if removes:
            self._remove(info, match, removes, res, sobject="CampaignMember", resolve=memberships)
