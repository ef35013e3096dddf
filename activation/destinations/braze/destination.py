"""Braze user profiles through the REST API (no SDK: the shared httpx client).

One destination is one Braze workspace (its REST API key and REST endpoint). Users are
matched by `external_id` (`match: {external_id: <column>}`); `fields:` map Braze profile
fields (`email`, `first_name`, `country`…) and custom attributes to columns.

- `upsert` / `mirror`: rows are written with `POST /users/track`, up to 75 attribute
  objects per call (Braze's limit); a changed row sends only its changed attributes (Braze
  bills data points per attribute written). `mirror` deletes users that left the model with
  `POST /users/delete` by external_id, 50 per call: Braze deletes the whole profile, for good.
- `audience` (`audience: <name>`): membership is a boolean custom attribute of that name, set
  true on the rows of the audience and false on those that leave it (with
  `_update_existing_only`, so a leaver Braze does not know is not created); no profile is
  deleted. Segment on `<name> is true` in Braze.
- Values are typed as Braze stores custom attributes: strings, numbers, booleans, arrays of
  strings (values made strings, duplicates dropped as Braze does), nested objects as they
  are, timestamps as ISO-8601 with a zone (a zone-less timestamp is UTC, written with `Z`);
  NULL removes the attribute.
- Braze answers 201 `{"message": "success", "errors": [{"type", "input_array", "index"}]}`
  when some objects were refused: those rows are rejected with Braze's reason (sent again
  next run), the others are delivered. An error naming no object leaves every row of the
  call possibly delivered. A 400 refusing the whole call rejects its rows with the reason;
  401, 403 and 404 (an unknown key) stop the sync as terminal. 429s are waited out until
  `X-RateLimit-Reset` (epoch seconds); 5xx, timeouts and dropped connections are retried by
  the shared client. A retried call whose earlier attempt may have landed is harmless (Braze
  upserts by external_id); a refusal answering it leaves the row possibly delivered.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

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
from activation.destinations.http import Answer, HttpClient, RetryPolicy, json_body, safe_url, unreadable
from activation.project.secrets import MissingSecret, resolve_env

EXTERNAL_ID = "external_id"
TRACK = "/users/track"
DELETE = "/users/delete"
ATTRIBUTES = "/custom_attributes"
#: Keys of an attributes object that are not attributes: a field may not be mapped to them.
RESERVED = frozenset({EXTERNAL_ID, "user_alias", "braze_id", "_update_existing_only", "push_token_import", "push_tokens"})
#: Profile fields Braze stores as a plain date (YYYY-MM-DD), not a time.
DATE_FIELDS = frozenset({"dob"})
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?$")
_NAME = re.compile(r"^[^$\s][^\s]{0,254}$")
UNREPORTED = "Braze's answer named no attribute object in its error"


def braze_value(field: str, value: Any) -> Any:
    """A mapped (JSON-safe) value as Braze stores it in profile field or custom attribute `field`."""
    if isinstance(value, str):
        m = _TIMESTAMP.match(value)
        if m is None:
            return value
        if field in DATE_FIELDS:
            return m.group(1)
        return f"{m.group(1)}T{m.group(2)}{m.group(3) or 'Z'}"
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for v in value:  # Braze keeps an array's unique values, in order
            text = None if v is None else ("true" if v is True else "false" if v is False else str(v))
            if text is not None and text not in out:
                out.append(text)
        return out
    return value  # numbers, booleans, null (removes the attribute), nested objects


class BrazeDestination(Destination):
    type: ClassVar[str] = "braze"
    modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror", "audience"})
    max_batch_size: ClassVar[int] = 75
    pushes_in_flight: ClassVar[int] = 4
    identity_model: ClassVar[IdentityModel] = "record"  # a Braze user is its external_id, compared exactly
    identity_folds_case: ClassVar[bool] = False

    def __init__(self, name: str, spec: Any, project_dir: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, spec, project_dir)
        self._sleep = sleep
        self._http: HttpClient | None = None
        self._base: str | None = None
        self.display = safe_url(spec.rest_endpoint).rstrip("/")
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.rate_limit: dict[str, str] = {}

    # -- configuration ------------------------------------------------------------------

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if target.match_fields != [EXTERNAL_ID]:
            raise ConfigError("a braze sync matches users by external_id: use `match: {external_id: <user id column>}`")
        if target.object not in (None, "users"):
            raise ConfigError(f"a braze destination writes user profiles; `object:` must be omitted or 'users', not {target.object!r}")
        endpoint = self.spec.rest_endpoint
        if not endpoint.startswith("${") and not endpoint.lower().startswith(("http://", "https://")):
            raise ConfigError(f"braze rest_endpoint must start with https://, got {self.display!r}")
        bad = [f for f in target.fields if f in RESERVED or not _NAME.match(f)]
        if bad:
            raise ConfigError(
                f"braze `fields:` are profile fields or custom attribute names (no leading $, no spaces, "
                f"not {', '.join(sorted(RESERVED))}): {', '.join(map(repr, bad))}"
            )
        if target.mode == "audience":
            if not target.audience or not _NAME.match(target.audience):
                raise ConfigError(
                    "mode audience needs `audience:`, the boolean custom attribute marking membership (no spaces, no leading $)"
                )
            if target.audience in target.fields or target.audience in RESERVED:
                raise ConfigError(f"audience {target.audience!r} is also a mapped field: name the membership attribute apart")

    def batch_size(self, requested: int | None) -> int:
        return min(requested or self.spec.batch_size, self.spec.batch_size, self.max_batch_size)

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            try:
                key = resolve_env(self.spec.api_key)
                self._base = resolve_env(self.spec.rest_endpoint).rstrip("/")
            except MissingSecret as exc:
                raise ConfigError(f"destination {self.name!r}: {exc}") from None
            self._http = HttpClient(
                timeout=self.spec.timeout_seconds,
                retry=RetryPolicy(max_retries=self.spec.max_retries),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                sleep=self._sleep,
                retry_after=_until_reset,
            )
        return self._http

    def open(self, target: SyncTarget) -> None:
        self.http  # noqa: B018 - fail early on a missing ${ENV}, before any batch

    def check_remote(self, target: SyncTarget) -> list[str]:
        """The key works (GET /custom_attributes, permission custom_attributes.get) and no mapped
        attribute is blocklisted; an attribute Braze does not know yet is created by the first write."""
        known: dict[str, dict[str, Any]] = {}
        url: str | None = self._url(ATTRIBUTES)
        while url:
            response = self.http.request("GET", url, display_url=self.display + ATTRIBUTES)
            if response.status_code in (401, 403, 404):
                return [
                    f"Braze refused the API key: HTTP {response.status_code} {self.http.describe(response)} (it needs custom_attributes.get for this check)"
                ]
            if response.status_code >= 300:
                return [f"GET {self.display}{ATTRIBUTES}: HTTP {response.status_code} {self.http.describe(response)}"]
            try:
                page = json_body(response).get("attributes") or []
            except (ValueError, AttributeError):
                return [f"GET {self.display}{ATTRIBUTES}: an answer that is not Braze's JSON"]
            known.update({str(a.get("name")): a for a in page if isinstance(a, dict)})
            url = response.links.get("next", {}).get("url")
        problems = [
            f"the Braze custom attribute {f!r} is blocklisted: Braze drops what is written to it"
            for f in [*target.fields, *([target.audience] if target.audience else [])]
            if str((known.get(f) or {}).get("status", "")).lower() == "blocklisted"
        ]
        if target.audience and target.audience in known and str(known[target.audience].get("data_type", "")).lower() not in ("boolean", ""):
            problems.append(
                f"the Braze custom attribute {target.audience!r} holds {known[target.audience]['data_type']}, not Boolean: membership is a boolean"
            )
        return problems

    def _url(self, path: str) -> str:
        self.http  # noqa: B018 - resolves the endpoint
        return f"{self._base}{path}"

    def _bump(self, name: str, n: int) -> None:
        if n:
            with self._lock:
                self.counts[name] = self.counts.get(name, 0) + n

    # -- push -----------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        results: dict[str, RowResult] = {}
        objects: list[tuple[RowOp, dict[str, Any]]] = []
        seen: dict[str, str] = {}
        for op in (o for o in ops if o.kind != "remove"):
            external_id = str(op.values.get(EXTERNAL_ID) or "").strip()
            if not external_id:
                results[op.key] = RowResult(op.key, ok=False, error="external_id is empty: Braze needs one to find the user")
            elif external_id in seen:
                results[op.key] = RowResult(
                    op.key, ok=False, error=f"another row ({seen[external_id]}) in this batch has the same external_id"
                )
            else:
                seen[external_id] = op.key
                objects.append((op, self._attributes(target, op, external_id)))
        leaving = [op for op in ops if op.kind == "remove"]
        if target.mode == "audience":  # membership off; a user Braze does not know stays unknown
            objects += [
                (op, {EXTERNAL_ID: str(op.values.get(EXTERNAL_ID) or op.key), target.audience or "": False, "_update_existing_only": True})
                for op in leaving
            ]
        elif target.mode == "mirror":
            for i in range(0, len(leaving), self.spec.delete_batch_size):
                results.update(self._delete(leaving[i : i + self.spec.delete_batch_size]))
        else:  # upsert keeps users that left the model
            results.update({op.key: RowResult(op.key, ok=True) for op in leaving})
        for i in range(0, len(objects), self.max_batch_size):
            results.update(self._track(objects[i : i + self.max_batch_size]))
        return [results[op.key] for op in ops]

    def _attributes(self, target: SyncTarget, op: RowOp, external_id: str) -> dict[str, Any]:
        """The row's attributes object: a user known under this external_id gets only its changed attributes."""
        known = op.previous is not None and op.changed_fields is not None
        names = [f for f in (op.changed_fields if known and op.changed_fields is not None else op.values) if f in op.values]
        body: dict[str, Any] = {EXTERNAL_ID: external_id}
        body.update({f: braze_value(f, op.values[f]) for f in names if f != EXTERNAL_ID})
        if target.mode == "audience":
            body[target.audience or ""] = True
        return body

    def _post(self, path: str, body: dict[str, Any]) -> Answer:
        answer = self.http.send("POST", self._url(path), json=body, display_url=self.display + path)
        response = answer.response
        self._observe(response)
        status = response.status_code
        if status in (401, 403, 404):
            # every later call would fail the same way: stop the sync (nothing here is marked delivered)
            raise DestinationError(
                f"POST {self.display}{path}: HTTP {status} {self.http.describe(response)} (check the REST API key, its "
                "permissions users.track / users.delete, and that rest_endpoint is the workspace's instance)",
                retryable=False,
            )
        if 300 <= status < 400:  # 5xx and 429 never get here: the client retries them, then raises
            raise DestinationError(
                f"POST {self.display}{path}: unexpected HTTP {status} (redirects are not followed; check rest_endpoint)", retryable=False
            )
        return answer

    def _track(self, objects: list[tuple[RowOp, dict[str, Any]]]) -> dict[str, RowResult]:
        answer = self._post(TRACK, {"attributes": [body for _, body in objects]})
        response = answer.response
        if response.status_code >= 400:  # the whole call refused (400): no object is named
            error = f"Braze refused the call: HTTP {response.status_code} {self.http.describe(response)}"
            return {op.key: answer.rejected(op.key, error) for op, _ in objects}
        try:
            payload = json_body(response)
            errors = payload.get("errors") or []
            if not isinstance(errors, list):
                raise ValueError("errors is not a list")
        except (ValueError, AttributeError):
            return {op.key: unreadable(op.key, f"HTTP {response.status_code}, body not Braze's JSON") for op, _ in objects}
        refused: dict[int, str] = {}
        unnamed: list[str] = []
        for e in errors:
            index = e.get("index") if isinstance(e, dict) else None
            reason = self.http.redact(str(e.get("type") or e.get("message") or e) if isinstance(e, dict) else str(e))[:500]
            if isinstance(index, int) and (e.get("input_array") in (None, "attributes")) and 0 <= index < len(objects):
                refused[index] = reason
            else:
                unnamed.append(reason)
        out: dict[str, RowResult] = {}
        for i, (op, _) in enumerate(objects):
            if i in refused:
                out[op.key] = answer.rejected(op.key, f"Braze refused this user: {refused[i]}")
            elif unnamed:  # an error that names no object may be about any of them
                out[op.key] = RowResult(op.key, ok=False, unknown=True, error=f"{UNREPORTED}: {'; '.join(unnamed)[:300]}")
            else:
                out[op.key] = RowResult(op.key, ok=True, dest_id=str(op.values.get(EXTERNAL_ID) or op.key))
        self._bump("attributes_sent", len(objects))
        self._bump("refused", len(refused))
        return out

    def _delete(self, ops: list[RowOp]) -> dict[str, RowResult]:
        ids = [str(op.values.get(EXTERNAL_ID) or op.key) for op in ops]
        answer = self._post(DELETE, {"external_ids": ids})
        response = answer.response
        if response.status_code >= 400:
            error = f"Braze refused the deletion: HTTP {response.status_code} {self.http.describe(response)}"
            return {op.key: answer.rejected(op.key, error) for op in ops}
        try:
            deleted = json_body(response).get("deleted")
        except (ValueError, AttributeError):
            return {op.key: unreadable(op.key, f"HTTP {response.status_code}, body not Braze's JSON") for op in ops}
        self._bump("deleted", int(deleted) if isinstance(deleted, int) else 0)
        # deleting a user Braze does not hold (gone already) is what was asked: done
        return {op.key: RowResult(op.key, ok=True) for op in ops}

    def _observe(self, response: httpx.Response) -> None:
        seen = {
            h: response.headers[h] for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset") if h in response.headers
        }
        if seen:
            with self._lock:
                self.rate_limit = seen

    def report(self) -> DestinationReport:
        details: dict[str, Any] = dict(self.counts)
        if self.rate_limit.get("X-RateLimit-Remaining"):
            details["rate_limit_remaining"] = self.rate_limit["X-RateLimit-Remaining"]
        h = self._http
        if h is None:
            return DestinationReport(details=details)
        return DestinationReport(requests=h.requests, retries=h.retries, throttled=h.throttled, details=details)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def _until_reset(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds until the rate-limit window resets: Braze's X-RateLimit-Reset is UTC epoch seconds."""
    try:
        reset = float(response.headers["X-RateLimit-Reset"])
    except (KeyError, ValueError):
        return None
    return max(0.0, reset - now())
