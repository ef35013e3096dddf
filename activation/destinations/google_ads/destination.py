"""Google Ads Customer Match through offline user data jobs, over the REST interface.

The official `google-ads` client speaks gRPC over TLS only, so it cannot reach a local
emulator; the REST interface takes the same messages as JSON at a configurable base URL.

Per push (up to `batch_size` rows), at most two jobs, because Google refuses create and
remove operations in one job (CONFLICTING_OPERATION):

1. removals (rows that left, and the previous identifiers of rows whose identifiers changed):
   ``offlineUserDataJobs:create`` → ``:addOperations`` in calls of `operations_per_request`
   with ``enablePartialFailure`` → ``:run`` → poll the long-running operation;
2. additions, the same way, once the removal job finished (or `job_wait_seconds` passed).

A row is acknowledged once its operation was accepted and its job started: partial failures
reject exactly the rows they point at (``location.fieldPathElements[0].index``), with
Google's error code and message. A refusal (partial or whole) answering an ``addOperations``
retried after an attempt that may have landed, or a 2xx we cannot read, leaves those rows
possibly delivered instead: the job may hold their operations, so it is run all the same. A job that Google reports FAILED while we poll fails the
push, so its rows are sent again next run. Jobs take 10 minutes to 24 hours at Google;
polling stops after `job_wait_seconds` and the run record keeps each job's resource name,
its operation and the status last seen. A `:run` retried after its answer was lost is refused
(JOB_ALREADY_STARTED): the job is ours alone, so its own status is polled instead, as Google
advises; a user list create retried the same way (NAME_ALREADY_USED) uses the list it made.

Auth: an OAuth access token from the refresh token (exchanged at `token_url` before the first
call and again whenever Google answers 401), the ``developer-token`` header, and
``login-customer-id`` when going through a manager account.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from activation.destinations.ad_audience import AdAudienceDestination, Member, chunks
from activation.destinations.base import ConfigError, DestinationError, DestinationReport, RowOp, RowResult, SyncTarget
from activation.destinations.http import Answer, HttpClient, RetryPolicy, json_body, unreadable
from activation.destinations.identifiers import GOOGLE, GOOGLE_ADDRESS
from activation.project.secrets import MissingSecret, resolve_env

CONTACT_INFO = ("email", "phone", *GOOGLE_ADDRESS)
KEY_TYPES = {"third_party_user_id": "CRM_ID", "mobile_id": "MOBILE_ADVERTISING_ID"}


def google_error(response: httpx.Response) -> tuple[str, str]:
    """(error code name, message) of a Google Ads API error answer."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", response.text[:200]
    for detail in error.get("details") or []:
        for e in detail.get("errors") or []:
            code = next(iter((e.get("errorCode") or {}).values()), "")
            return str(code), str(e.get("message") or error.get("message") or "")
    return str(error.get("status") or ""), str(error.get("message") or "")


def retry_delay(response: httpx.Response) -> float | None:
    """The wait a RESOURCE_EXHAUSTED answer asks for (``quotaErrorDetails.retryDelay``, "30s")."""
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return None
    for detail in details:
        for e in detail.get("errors") or []:
            delay = ((e.get("details") or {}).get("quotaErrorDetails") or {}).get("retryDelay")
            if isinstance(delay, str) and re.fullmatch(r"[0-9.]+s", delay):
                return float(delay[:-1])
    return None


def _digits(value: str) -> str:
    return value.replace("-", "")


class GoogleAdsDestination(AdAudienceDestination):
    type: ClassVar[str] = "google_ads"
    max_batch_size: ClassVar[int] = 1_000_000
    #: Customer Match serves on Search and YouTube from about 1,000 matched members.
    min_audience_size: ClassVar[int | None] = 1000
    identifiers = GOOGLE
    combined = GOOGLE_ADDRESS  # Google matches an address only with all four parts
    platform_name = "Google Customer Match"
    audience_noun = "Customer Match user list"

    def __init__(
        self,
        name: str,
        spec: Any,
        project_dir: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, spec, project_dir)
        self._sleep, self._clock = sleep, clock
        self._http: HttpClient | None = None
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._lists: dict[str, str] = {}
        self._secrets: dict[str, str] = {}
        self._customer = self._base = self._token_url = ""
        self._login: str | None = None
        self.details: dict[str, Any] = {"token_refreshes": 0}

    # -- set-up ------------------------------------------------------------------------

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        mapped = {*target.match_fields, *target.fields}
        families = {KEY_TYPES.get(f, "CONTACT_INFO") for f in mapped}
        if len(families) > 1:
            raise ConfigError(
                "a Customer Match list holds one kind of identifier: contact info (email, phone, address), "
                "third_party_user_id (CRM_ID) or mobile_id, not a mix"
            )
        address = [f for f in GOOGLE_ADDRESS if f in mapped]
        if address and len(address) < len(GOOGLE_ADDRESS):
            missing = ", ".join(f for f in GOOGLE_ADDRESS if f not in mapped)
            raise ConfigError(f"address matching needs first_name, last_name, country_code and postal_code; map {missing} too")

    def upload_key_type(self, target: SyncTarget) -> str:
        return next((KEY_TYPES[f] for f in [*target.match_fields, *target.fields] if f in KEY_TYPES), "CONTACT_INFO")

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            try:
                spec = self.spec
                self._secrets = {
                    k: resolve_env(getattr(spec, k)) for k in ("developer_token", "client_id", "client_secret", "refresh_token")
                }
                self._customer = _digits(resolve_env(spec.customer_id))
                self._login = _digits(resolve_env(spec.login_customer_id)) if spec.login_customer_id else None
                self._base = resolve_env(spec.base_url).rstrip("/") + "/" + spec.api_version
                self._token_url = resolve_env(spec.token_url)
            except MissingSecret as e:
                raise ConfigError(f"destination {self.name!r}: {e}") from None
            self._http = HttpClient(
                timeout=spec.timeout_seconds,
                headers={"developer-token": self._secrets["developer_token"]},
                retry=RetryPolicy(max_retries=spec.max_retries, base_delay=spec.retry_backoff_seconds),
                sleep=self._sleep,
                retry_after=retry_delay,
            )
        return self._http

    def open(self, target: SyncTarget) -> None:
        self.http  # noqa: B018 - missing credentials fail before any batch (and make no call)

    # -- auth and calls ----------------------------------------------------------------

    def _refresh(self) -> str:
        form = {
            "grant_type": "refresh_token",
            "client_id": self._secrets["client_id"],
            "client_secret": self._secrets["client_secret"],
            "refresh_token": self._secrets["refresh_token"],
        }
        response = self.http.request(
            "POST", self._token_url, content=urlencode(form).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        if response.status_code != 200:
            try:
                body = response.json()
                why = f"{body.get('error')}: {body.get('error_description', '')}".strip(": ")
            except ValueError:
                why = f"HTTP {response.status_code}"
            raise DestinationError(
                self.http.redact(
                    f"Google refused the refresh token ({why}); create a new refresh token for the OAuth client", self._secrets.values()
                ),
                retryable=False,
            )
        body = response.json()
        self._access_token = str(body["access_token"])
        self._expires_at = self._clock() + float(body.get("expires_in", 3600)) - 60
        self.details["token_refreshes"] += 1
        return self._access_token

    def _headers(self) -> dict[str, str]:
        token = self._access_token if self._access_token and self._clock() < self._expires_at else self._refresh()
        headers = {"Authorization": f"Bearer {token}"}
        if self._login:
            headers["login-customer-id"] = self._login
        return headers

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """A call with a fresh token; one refresh and retry when Google says the token expired."""
        return self._send(method, path, body).response

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        """`_call`, with whether an earlier attempt may have been applied (a 401 was not)."""
        http = self.http  # first: it resolves the base URL
        url = f"{self._base}/{path}"
        answer = http.send(method, url, json=body, headers=self._headers())
        if answer.response.status_code == 401:
            self._access_token = None
            answer = http.send(method, url, json=body, headers=self._headers())
        return answer

    def _fatal(self, response: httpx.Response, what: str) -> DestinationError:
        code, message = google_error(response)
        hint = {
            401: " (check the developer token and the OAuth client)",
            403: " (the OAuth user needs access to the account; set login_customer_id when going through a manager)",
        }
        return DestinationError(
            self.http.redact(f"Google Ads refused {what}: {code}: {message}{hint.get(response.status_code, '')}", self._secrets.values()),
            retryable=response.status_code not in (400, 401, 403, 404),
        )

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise self._fatal(response, what)
        body = response.json()
        return body if isinstance(body, dict) else {}

    def check_remote(self, target: SyncTarget) -> list[str]:
        """The credentials work for the account, and the list exists or may be created."""
        try:
            self.http  # noqa: B018
            name = target.audience or ""
            query = "SELECT user_list.resource_name FROM user_list" + (f" WHERE user_list.id = {name}" if name.isdigit() else "")
            found = self._json(self._post(f"customers/{self._customer}/googleAds:search", {"query": query}), "the user list search")
            if name.isdigit() and not found.get("results"):
                return [f"customer {self._customer} has no user list with id {name}"]
            if not name.isdigit() and not self.spec.create_lists:
                self._user_list(target)
        except DestinationError as e:
            return [str(e)]
        return []

    # -- the user list -----------------------------------------------------------------------

    def _user_list(self, target: SyncTarget) -> str:
        name = target.audience or ""
        if name.isdigit():
            return f"customers/{self._customer}/userLists/{name}"
        if name not in self._lists:
            found = self._lists_named(name)
            if len(found) > 1:
                raise DestinationError(
                    f"customer {self._customer} has {len(found)} user lists named {name!r}; set the sync's audience: to one list id",
                    retryable=False,
                )
            if not found:
                if not self.spec.create_lists:
                    raise DestinationError(
                        f"customer {self._customer} has no user list named {name!r} (create it, or set create_lists: true)", retryable=False
                    )
                create = {
                    "name": name,
                    "description": f"Synced by activation (sync {target.sync})",
                    "membershipLifeSpan": str(self.spec.membership_life_span_days),
                    "crmBasedUserList": {"uploadKeyType": self.upload_key_type(target), "dataSourceType": "FIRST_PARTY"},
                }
                response = self._post(f"customers/{self._customer}/userLists:mutate", {"operations": [{"create": create}]})
                if response.status_code == 400 and google_error(response)[0] == "NAME_ALREADY_USED":
                    # A create retried after its answer was lost: the list the first attempt made.
                    found = self._lists_named(name)
                    if len(found) != 1:
                        raise self._fatal(response, "creating the user list")
                else:
                    found = [self._json(response, "creating the user list")["results"][0]["resourceName"]]
                self.details["created_user_list"] = found[0]
            self._lists[name] = found[0]
        self.details["user_list"] = self._lists[name]
        return self._lists[name]

    def _lists_named(self, name: str) -> list[str]:
        quoted = name.replace("\\", "\\\\").replace("'", "\\'")
        query = f"SELECT user_list.resource_name, user_list.name FROM user_list WHERE user_list.name = '{quoted}'"
        return [
            r["userList"]["resourceName"]
            for r in self._json(self._post(f"customers/{self._customer}/googleAds:search", {"query": query}), "the user list search").get(
                "results", []
            )
        ]

    # -- jobs -----------------------------------------------------------------------------

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        removes, adds, refused = self.split(target, ops)
        failed: dict[str, RowResult] = {r.key: r for r in refused}
        if removes or adds:
            user_list = self._user_list(target)
            if removes:
                failed.update(self._job(user_list, "remove", removes))
            adds = [m for m in adds if m.key not in failed]  # a failed removal keeps its old identity: retry both
            if adds:
                failed.update(self._job(user_list, "create", adds))
        return [failed.get(op.key) or RowResult(op.key, True) for op in ops]

    @staticmethod
    def user_data(values: dict[str, Any]) -> dict[str, Any]:
        """A UserData message of a row's (normalised, hashed) identifiers."""
        ids: list[dict[str, Any]] = []
        if values.get("email"):
            ids.append({"hashedEmail": values["email"]})
        if values.get("phone"):
            ids.append({"hashedPhoneNumber": values["phone"]})
        if all(values.get(f) for f in GOOGLE_ADDRESS):  # Google matches an address only with all four parts
            ids.append(
                {
                    "addressInfo": {
                        "hashedFirstName": values["first_name"],
                        "hashedLastName": values["last_name"],
                        "countryCode": values["country_code"],
                        "postalCode": values["postal_code"],
                    }
                }
            )
        for field, key in (("third_party_user_id", "thirdPartyUserId"), ("mobile_id", "mobileId")):
            if values.get(field):
                ids.append({key: values[field]})
        return {"userIdentifiers": ids}

    def _job(self, user_list: str, kind: str, members: list[Member]) -> dict[str, RowResult]:
        """One offline user data job of `kind` operations; the results of the rows it did not
        take for sure (rejected, or possibly taken: see the module's docstring)."""
        metadata: dict[str, Any] = {"userList": user_list}
        consent = {
            k: v
            for k, v in (("adUserData", self.spec.ad_user_data_consent), ("adPersonalization", self.spec.ad_personalization_consent))
            if v
        }
        if consent:
            metadata["consent"] = consent
        job = self._json(
            self._post(
                f"customers/{self._customer}/offlineUserDataJobs:create",
                {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}},
            ),
            "creating an offline user data job",
        )
        resource = str(job["resourceName"])
        errors: dict[str, RowResult] = {}
        for chunk in chunks(members, self.spec.operations_per_request):
            operations = [{kind: self.user_data(m.values)} for m in chunk]
            answer = self._send("POST", f"{resource}:addOperations", {"operations": operations, "enablePartialFailure": True})
            response = answer.response
            if response.status_code in (401, 403) or response.status_code >= 500:
                raise self._fatal(response, "adding operations")
            if response.status_code >= 400:
                code, message = google_error(response)
                reason = self.http.redact(f"Google refused the batch: {code}: {message}")
                errors.update({m.key: answer.rejected(m.key, reason) for m in chunk})
                continue
            try:
                body = json_body(response)
            except ValueError:
                body = None
            if not isinstance(body, dict):  # a 2xx we cannot read: the job may hold any of them
                errors.update(
                    {m.key: unreadable(m.key, f"Google answered HTTP {response.status_code} with a body that is not JSON") for m in chunk}
                )
                continue
            errors.update({k: answer.rejected(k, e) for k, e in self._partial_failures(body, chunk).items()})
        accepted = sum(1 for m in members if m.key not in errors)
        entry: dict[str, Any] = {"job": resource, "kind": kind, "operations": accepted}
        self.details.setdefault("jobs", []).append(entry)
        if not any(m.key not in errors or errors[m.key].unknown for m in members):
            entry["status"] = "NOT_RUN"
            return errors
        response = self._post(f"{resource}:run", {})
        if response.status_code == 400 and google_error(response)[0] == "JOB_ALREADY_STARTED":
            # The job is ours alone: a retried `:run` whose first answer was lost finds it started.
            # Its operation's name went with that answer, so the job's own status is polled.
            entry["operation"] = None
            entry["status"] = self._wait(lambda: self._job_status(resource), resource)
            return errors
        operation = self._json(response, "running the job")
        entry["operation"] = operation.get("name")
        entry["status"] = self._wait(lambda: self._operation_outcome(operation), resource)
        return errors

    def _partial_failures(self, body: dict[str, Any], chunk: list[Member]) -> dict[str, str]:
        failure = body.get("partialFailureError") or {}
        errors: dict[str, str] = {}
        for detail in failure.get("details") or []:
            for e in detail.get("errors") or []:
                path = (e.get("location") or {}).get("fieldPathElements") or []
                index = next((p.get("index") for p in path if p.get("fieldName") == "operations"), None)
                if isinstance(index, int) and 0 <= index < len(chunk):
                    code = next(iter((e.get("errorCode") or {}).values()), "ERROR")
                    errors.setdefault(chunk[index].key, f"Google rejected this member: {code}: {e.get('message', '')}")
        if failure and not errors:  # a failure we cannot tie to rows: take none of the chunk
            errors = {m.key: f"Google rejected the batch: {failure.get('message', 'partial failure')}" for m in chunk}
        return errors

    def _operation_outcome(self, operation: dict[str, Any]) -> str | None:
        """None while the job's long-running operation runs; then "" or its error."""
        if not operation.get("done"):  # polled right away: small jobs may be done already
            operation.update(self._json(self._call("GET", str(operation["name"])), "polling the job"))
        if not operation.get("done"):
            return None
        error = operation.get("error")
        return str(error.get("message") or error) if error else ""

    def _job_status(self, resource: str) -> str | None:
        """The same from the job's status (as Google advises after JOB_ALREADY_STARTED)."""
        query = (
            "SELECT offline_user_data_job.resource_name, offline_user_data_job.status FROM offline_user_data_job "
            f"WHERE offline_user_data_job.resource_name = '{resource}'"
        )
        rows = (
            self._json(self._post(f"customers/{self._customer}/googleAds:search", {"query": query}), "reading the job's status").get(
                "results"
            )
            or []
        )
        status = rows[0].get("offlineUserDataJob", {}).get("status") if rows else "UNKNOWN"
        if status in ("PENDING", "RUNNING"):
            return None
        return "" if status == "SUCCESS" else f"the job's status is {status}"

    def _wait(self, outcome: Callable[[], str | None], resource: str) -> str:
        """Poll `outcome` until the job is done or `job_wait_seconds` passed; raise if it failed."""
        deadline = self._clock() + self.spec.job_wait_seconds
        delay = self.spec.job_poll_seconds
        while (error := outcome()) is None:
            if self._clock() >= deadline:
                return "RUNNING"
            self._sleep(min(delay, max(deadline - self._clock(), 0)))
            delay = min(delay * 2, 60.0)
        if error:
            raise DestinationError(f"Google's job {resource} failed: {error}; its rows are sent again next run")
        return "SUCCESS"

    def report(self) -> DestinationReport:
        http = self._http
        used = http is not None and http.requests > 0
        return DestinationReport(
            requests=http.requests if http else 0,
            retries=http.retries if http else 0,
            throttled=http.throttled if http else 0,
            details=dict(self.details) if used else {},
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
