"""Iterable users and static-list membership over Iterable's REST API (httpx, no SDK).

One destination is one Iterable project (its API key). Users are identified the way the
project identifies them (`identify_by: email | userId`; the sync's `match:` names that field)
and every other mapped field is a user profile field (`dataFields`).

- `upsert` / `mirror`: `POST /api/users/bulkUpdate` (`{"users": [{email|userId, dataFields}]}`,
  at most `batch_size` users and 4 MB per call, 5 calls per second per project). A user known
  under the same identity gets only its changed fields; Iterable upserts by identity, so a
  request resent after a lost answer writes the same values again, never a second user.
  `mirror` deletes a user whose row left the model: `DELETE /api/users/{email}` or
  `/api/users/byUserId/{userId}`, one user per call (Iterable has no bulk delete), paced at
  `deletes_per_second`. A user already gone counts as removed.
- `audience` (`audience: <list name>`, or `list_id:`): membership of a static list. Entering
  rows are subscribed with their fields (`POST /api/lists/subscribe`, which creates unknown
  users); leaving rows are unsubscribed (`POST /api/lists/unsubscribe`); the user stays. The
  list is found by name (created when missing) unless `list_id` names it.
- Per-user failures come back in a 200 (`failCount`, `failedUpdates.<reason>: [ids]`): those
  rows are rejected with Iterable's reason (resent next run); the rest are delivered. A 200
  whose counts say more failed than it names leaves the unnamed rows possibly delivered, as
  does a 2xx we cannot read. A refusal answering a retry after a lost answer is possibly
  delivered too (`Answer.rejected`).
- 401/403 (BadApiKey, Forbidden) stop the sync as terminal; another 4xx that names no user
  fails the batch; 429 (Retry-After honoured when sent), 5xx and dropped connections are
  retried by `HttpClient`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import quote

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
    record_identity,
)
from activation.destinations.http import Answer, HttpClient, RetryPolicy, json_body, rejected, unreadable
from activation.destinations.pacing import Pacer, json_chunks
from activation.project.secrets import MissingSecret, resolve_env

#: Iterable's largest request body (bulkUpdate: "Max size of request body: 4MB"); we keep under it.
MAX_BODY = 4_000_000
#: failedUpdates' lists, by what they mean (the ids themselves are never copied into a reason).
FAILURES = {
    "invalidEmails": "InvalidEmail: Iterable refused the email address",
    "invalidUserIds": "InvalidUserId: Iterable refused the userId (empty, too long, non-ASCII or a trailing space)",
    "invalidDataEmails": "InvalidData: a value in dataFields does not fit the field's type in the project",
    "invalidDataUserIds": "InvalidData: a value in dataFields does not fit the field's type in the project",
    "conflictEmails": "Conflict: another user holds this email",
    "conflictUserIds": "Conflict: another user holds this userId",
    "forgottenEmails": "Forgotten: the user was forgotten (GDPR); Iterable keeps no data for it",
    "forgottenUserIds": "Forgotten: the user was forgotten (GDPR); Iterable keeps no data for it",
    "notFoundEmails": "NotFound: no such user",
    "notFoundUserIds": "NotFound: no such user",
}
#: Codes of a delete whose user is not there: the removal is done.
GONE = frozenset({"NotFound", "UnknownEmailError", "UnknownUserIdError"})
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$")


def iterable_value(value: Any) -> Any:
    """A model value as Iterable types it: numbers, booleans, lists and objects as JSON has
    them; a timestamp as `yyyy-MM-dd HH:mm:ss +00:00` (Iterable's date format, in UTC; a
    timestamp without a zone is taken as UTC); a date as `yyyy-MM-dd`; other text as it is."""
    if isinstance(value, str):
        if _ISO.match(value):
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
            except ValueError:
                return value
            when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
            return when.strftime("%Y-%m-%d %H:%M:%S +00:00")
        return value
    if isinstance(value, datetime):
        return iterable_value(value.isoformat())
    if isinstance(value, (list, tuple)):
        return [iterable_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): iterable_value(v) for k, v in value.items()}
    return value


class IterableDestination(Destination):
    type: ClassVar[str] = "iterable"
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror", "audience"})
    max_batch_size: ClassVar[int] = 1000
    identity_model: ClassVar[IdentityModel] = "record"  # a user is its email (without case) or its userId (exactly)
    identity_folds_case: ClassVar[bool] = True

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self._sleep = sleep
        self._http: HttpClient | None = None
        self._base = ""
        self._list_id: int | None = None
        self.bulk = Pacer(spec.requests_per_second, sleep)
        self.deletes = Pacer(spec.deletes_per_second, sleep)
        self.counts: dict[str, int] = {}

    @property
    def key(self) -> str:
        """The field users are identified by: email or userId."""
        return str(self.spec.identify_by)

    # -- configuration ------------------------------------------------------------------

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if target.match_fields != [self.key]:
            raise ConfigError(
                f"this iterable destination identifies users by {self.key} (identify_by): use `match: {{{self.key}: <column>}}`"
            )
        if target.object not in (None, "users"):
            raise ConfigError(f"an iterable destination writes users; `object:` must be omitted or 'users', not {target.object!r}")
        if target.mode == "audience" and not (target.audience or self.spec.list_id):
            raise ConfigError("mode audience needs `audience:` (the name of the Iterable static list) or the destination's `list_id`")
        base = self.spec.base_url
        if not base.startswith("${") and not base.lower().startswith(("http://", "https://")):
            raise ConfigError(f"iterable base_url must start with https:// (e.g. https://api.eu.iterable.com), got {base!r}")

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.spec.batch_size, self.spec.batch_size, self.max_batch_size)

    def _fold(self) -> bool:
        return self.key == "email"

    def identities(self, target: SyncTarget, key: str, values: dict[str, Any]) -> tuple[str, ...]:
        return (record_identity(values, target.match_fields, self._fold()),)

    def identity_sql(
        self, target: SyncTarget, match_sql: Mapping[str, str | None], as_text: Callable[[str], str] = lambda e: f"CAST({e} AS VARCHAR)"
    ) -> str | None:
        expr = match_sql.get(self.key)
        if expr is None:
            return None
        return f"LOWER(TRIM({as_text(expr)}))" if self._fold() else as_text(expr)

    def _ident(self, values: dict[str, Any]) -> str:
        raw = values.get(self.key)
        text = "" if raw is None else str(raw)
        return text.strip() if self._fold() else text

    def _norm(self, ident: str) -> str:
        return ident.strip().lower() if self._fold() else ident

    # -- transport ------------------------------------------------------------------------

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            try:
                key = resolve_env(self.spec.api_key)
                self._base = resolve_env(self.spec.base_url).rstrip("/")
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            self._http = HttpClient(
                timeout=self.spec.timeout_seconds,
                retry=RetryPolicy(max_retries=self.spec.max_retries, max_delay=30.0),
                headers={"Api-Key": key, "Content-Type": "application/json"},
                sleep=self._sleep,
            )
        return self._http

    def _call(self, method: str, path: str, body: Any = None, *, idempotent: bool = True) -> Answer:
        http = self.http
        answer = http.send(method, f"{self._base}{path}", json=body, idempotent=idempotent, display_url=f"{self.spec.base_url}{path}")
        status = answer.response.status_code
        if status in (401, 403):
            raise DestinationError(
                f"Iterable refused the API key: {method} {path}: HTTP {status} {self._describe(answer)} "
                "(check api_key, its permissions, and base_url: a key works only in its own data center)",
                retryable=False,
            )
        return answer

    def _describe(self, answer: Answer) -> str:
        """Iterable's `code: msg` of an answer (redacted), else a body excerpt."""
        try:
            body = json_body(answer.response)
        except ValueError:
            body = None
        if isinstance(body, dict) and (body.get("code") or body.get("msg")):
            return self.http.redact(f"{body.get('code') or ''}: {body.get('msg') or ''}".strip(": ")[:300])
        return self.http.describe(answer.response)

    def _refused_batch(self, what: str, answer: Answer) -> DestinationError:
        return DestinationError(f"Iterable refused {what}: HTTP {answer.response.status_code} {self._describe(answer)}", retryable=False)

    # -- the list (mode audience) -----------------------------------------------------------

    def _lists(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/api/lists")
        if answer.response.status_code != 200:
            raise self._refused_batch("to list the project's lists", answer)
        try:
            lists = json_body(answer.response).get("lists") or []
        except (ValueError, AttributeError):
            raise DestinationError("Iterable's answer to GET /api/lists could not be read") from None
        return [x for x in lists if isinstance(x, dict)]

    def _find_list(self, target: SyncTarget) -> int | None:
        if self.spec.list_id:
            wanted = resolve_env(self.spec.list_id)
            return next((int(x["id"]) for x in self._lists() if str(x.get("id")) == wanted), None)
        return next((int(x["id"]) for x in self._lists() if x.get("name") == target.audience and x.get("listType") == "Standard"), None)

    def _list(self, target: SyncTarget) -> int:
        if self._list_id is None:

            def create() -> int:
                answer = self._call("POST", "/api/lists", {"name": target.audience}, idempotent=False)
                if answer.response.status_code != 200:
                    raise self._refused_batch(f"to create the list {target.audience!r}", answer)
                return int(json_body(answer.response)["listId"])

            if self.spec.list_id:
                found = self._find_list(target)
                if found is None:
                    raise DestinationError(f"Iterable has no list with id {self.spec.list_id!r}", retryable=False)
                self._list_id = found
            else:
                self._list_id = find_or_create(lambda: self._find_list(target), create, attempts=3)
        return self._list_id

    # -- push -------------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        results: list[RowResult] = []
        writes = [(op, self._user(op)) for op in ops if op.kind != "remove"]
        leaving = [op for op in ops if op.kind == "remove"]
        if target.mode == "audience":
            list_id = self._list(target) if ops else 0
            for chunk in json_chunks(writes, self.batch_size(None), MAX_BODY - 1000):
                body = {"listId": list_id, "subscribers": [u for _, u in chunk]}
                results += self._bulk("/api/lists/subscribe", body, chunk, "subscribed")
            gone = [(op, {self.key: self._ident(op.values)}) for op in leaving]
            for chunk in json_chunks(gone, self.batch_size(None), MAX_BODY - 1000):
                body = {"listId": list_id, "subscribers": [u for _, u in chunk]}
                results += self._bulk("/api/lists/unsubscribe", body, chunk, "unsubscribed", not_found_ok=True)
            return results
        for chunk in json_chunks(writes, self.batch_size(None), MAX_BODY - 1000):
            results += self._bulk("/api/users/bulkUpdate", {"users": [u for _, u in chunk]}, chunk, "updated")
        results += [self._delete(op) for op in leaving]
        return results

    def _user(self, op: RowOp) -> dict[str, Any]:
        """The user object of a write: its identity, and its fields (only the changed ones when
        Iterable holds this user already under the same identity)."""
        known = op.previous is not None and op.changed_fields is not None
        names = op.changed_fields if known and op.changed_fields is not None else list(op.values)
        user: dict[str, Any] = {self.key: self._ident(op.values)}
        fields = {f: iterable_value(op.values.get(f)) for f in names if f != self.key and f in op.values}
        if fields:
            user["dataFields"] = fields
        if self.key == "userId":
            user["preferUserId"] = True  # an email-based project creates the user rather than ignore it
        return user

    def _bulk(
        self, path: str, body: dict[str, Any], chunk: list[tuple[RowOp, dict[str, Any]]], counted: str, *, not_found_ok: bool = False
    ) -> list[RowResult]:
        self.bulk.wait()
        answer = self._call("POST", path, body)
        status = answer.response.status_code
        if not 200 <= status < 300:
            # a 4xx naming no user (BadParams, BadJsonBody, an unknown list): nothing was applied
            raise self._refused_batch(f"POST {path}", answer)
        try:
            reply = json_body(answer.response)
            succeeded, failed = int(reply["successCount"]), int(reply["failCount"])
            named = self._failures(reply)
        except (ValueError, KeyError, TypeError, AttributeError):
            return [unreadable(op.key, f"HTTP {status} from {path}") for op, _ in chunk]
        out: list[RowResult] = []
        refused = 0
        for op, user in chunk:
            reason = named.get(self._norm(str(user.get(self.key, ""))))
            if reason is not None and not (not_found_ok and reason.startswith("NotFound")):
                refused += 1
                out.append(answer.rejected(op.key, reason))
            else:
                out.append(RowResult(key=op.key, ok=True, dest_id=None if op.kind == "remove" else str(user.get(self.key))))
        if (failed > refused and not not_found_ok) or succeeded + failed < len(chunk):
            # the counts say more failed than the answer names: which ones is not known
            why = f"Iterable counted {failed} failure(s) and {succeeded} success(es) in {len(chunk)} but named {refused}"
            out = [r if not r.ok else RowResult(key=r.key, ok=False, unknown=True, error=why) for r in out]
        self.counts[counted] = self.counts.get(counted, 0) + sum(r.ok for r in out)
        if filtered := reply.get("filteredOutFields"):
            raise DestinationError(
                f"Iterable dropped the fields {', '.join(map(str, filtered))}: the project does not add new user fields "
                "(create them in Iterable's data schema first)",
                retryable=False,
            )
        return out

    def _failures(self, reply: dict[str, Any]) -> dict[str, str]:
        """identity (normalised) -> the reason Iterable failed it."""
        out: dict[str, str] = {}
        failed = reply.get("failedUpdates") or {}
        lists = [(k, failed.get(k)) for k in FAILURES] + [(k, reply.get(k)) for k in ("invalidEmails", "invalidUserIds")]
        for name, ids in lists:
            for ident in ids or []:
                out.setdefault(self._norm(str(ident)), FAILURES[name])
        return out

    def _delete(self, op: RowOp) -> RowResult:
        ident = self._ident(op.values)
        if not ident:
            return RowResult(key=op.key, ok=True)  # nothing Iterable could hold under it
        path = f"/api/users/{quote(ident, safe='')}" if self.key == "email" else f"/api/users/byUserId/{quote(ident, safe='')}"
        self.deletes.wait()
        answer = self._call("DELETE", path)
        status = answer.response.status_code
        code = self._code(answer)
        if 200 <= status < 300 and code in (None, "Success"):
            self.counts["deleted"] = self.counts.get("deleted", 0) + 1
            return RowResult(key=op.key, ok=True)
        if status == 404 or code in GONE:  # gone already (or never made): removed is what was asked
            return RowResult(key=op.key, ok=True)
        if 200 <= status < 300:
            return unreadable(op.key, f"HTTP {status} from DELETE")
        return rejected(op.key, f"delete refused: HTTP {status} {self._describe(answer)}", after_ambiguous=answer.after_ambiguous)

    @staticmethod
    def _code(answer: Answer) -> str | None:
        try:
            body = json_body(answer.response)
        except ValueError:
            return "unreadable"
        return str(body.get("code")) if isinstance(body, dict) and body.get("code") is not None else None

    # -- validate --remote ------------------------------------------------------------------

    def check_remote(self, target: SyncTarget) -> list[str]:
        try:
            lists = self._lists()  # the cheapest call that proves the key (100/s per project)
            if target.mode == "audience":
                if self.spec.list_id and not any(str(x.get("id")) == resolve_env(self.spec.list_id) for x in lists):
                    return [f"Iterable has no list with id {self.spec.list_id!r}"]
                if not self.spec.list_id and not any(x.get("name") == target.audience for x in lists):
                    return [f"Iterable has no list named {target.audience!r} yet: the first run creates it (a static list)"]
            answer = self._call("GET", "/api/users/getFields")
            fields = json_body(answer.response).get("fields") or {} if answer.response.status_code == 200 else {}
        except DestinationError as e:
            return [str(e)]
        except (ValueError, AttributeError):
            return ["Iterable's answer to GET /api/users/getFields could not be read"]
        return [
            f"user field {f!r} is not in the Iterable project yet: the first write creates it, typed by its first value "
            "(unless the project drops unknown fields)"
            for f in target.fields
            if fields and f not in fields
        ]

    def report(self) -> DestinationReport:
        details: dict[str, Any] = {"list_id": self._list_id} if self._list_id is not None else {}
        details.update(self.counts)
        h = self._http
        if h is None:
            return DestinationReport(details=details)
        return DestinationReport(requests=h.requests, retries=h.retries, throttled=h.throttled, details=details)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
