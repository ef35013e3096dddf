"""The HTTP side of the BigQuery emulator: REST v2 routing, jobs, the request log, and the
helpers tests use (`execute`, `tables`)."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from activation_emulators.background import BackgroundServer, KeepAliveHandler, QuietHTTPServer

from .database import Database, now_ms
from .errors import LOCATION, BigQueryError, duplicate, invalid, not_found
from .jobs import Job, QueryRunner, token_offset
from .resources import Catalog

PREFIX = "/bigquery/v2"
JSON = "application/json; charset=UTF-8"
#: QueryRequest (jobs.query) fields that are a query job's configuration.query fields too.
_QUERY_FIELDS = (
    "query", "useLegacySql", "defaultDataset", "queryParameters", "parameterMode", "connectionProperties",
    "createSession", "maximumBytesBilled", "useQueryCache", "preserveNulls", "labels",
)  # fmt: skip


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    status: int


class _Server(QuietHTTPServer):
    owner: BigQueryEmulator


class _Handler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        raw = self.read_body()  # always drain, even to refuse
        owner = self.server.owner
        split = urlsplit(self.path)
        params = dict(parse_qsl(split.query))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        try:
            if body is None:
                raise invalid("The request body is not valid JSON")
            status, reply = owner._route(self.command, split.path, params, body)
        except BigQueryError as e:
            status, reply = e.code, e.body()
        except Exception as e:  # noqa: BLE001 - a bug here must not look like a retryable 5xx to the client
            error = BigQueryError(400, "invalid", f"Internal error in the BigQuery emulator: {type(e).__name__}: {e}")
            status, reply = 400, error.body()
        owner._log(self.command, split.path, status)
        data = json.dumps(reply).encode() if reply is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class BigQueryEmulator(BackgroundServer):
    """A local BigQuery REST API v2 on DuckDB; see `activation_emulators.bigquery`."""

    server_class = _Server
    handler_class = _Handler

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, project: str = "demo", path: str | None = None, verbose: bool = False
    ) -> None:
        self.host, self.port, self.project, self.verbose = host, port, project, verbose
        self.path = path
        self.db = Database(project, path)
        self.catalog = Catalog(self.db)
        self.runner = QueryRunner(self.db)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._request_ids: dict[str, str] = {}
        self._log_entries: list[LoggedRequest] = []

    @property
    def url(self) -> str:
        """The API endpoint (``client_options={"api_endpoint": emu.url}``)."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        super().stop()
        self.db.close()  # releases a database file for the next emulator (or process)

    # ------------------------------------------------------------ test helpers

    def execute(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run DuckDB SQL on the database (to seed or inspect data); returns its rows, if any."""
        with self.db.connection() as cur:
            cur.execute(sql, parameters or [])
            return cur.fetchall() if cur.description else []

    def tables(self, dataset: str | None = None) -> list[str]:
        """``dataset.table`` of every table and view (TEMP tables of sessions excluded)."""
        return [f"{d}.{t}" for d, t, _ in self.db.tables(dataset)]

    @property
    def request_log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log_entries)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log_entries)

    def _log(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._log_entries.append(LoggedRequest(method, path, status))

    # ------------------------------------------------------------ routing

    def _route(self, method: str, path: str, params: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        if not path.startswith(PREFIX + "/projects"):
            raise BigQueryError(404, "notFound", f"Not found: {path} (the BigQuery emulator serves {PREFIX}/projects/...)")
        parts = [unquote(p) for p in path[len(PREFIX) :].strip("/").split("/")]
        if parts == ["projects"]:
            ref = {"projectId": self.project}
            return 200, {"kind": "bigquery#projectList", "projects": [{"id": self.project, "projectReference": ref}], "totalItems": 1}
        project, rest = parts[1], parts[2:]
        if project != self.project:
            raise not_found(f"Project {project} (the BigQuery emulator serves project {self.project} only)")
        route = (method, len(rest), rest[0] if rest else "")
        cat = self.catalog
        if route == ("POST", 1, "jobs"):
            return 200, self._insert_job(body)
        if route == ("GET", 2, "jobs"):
            return 200, self._job(rest[1]).resource()
        if route == ("POST", 3, "jobs") and rest[2] == "cancel":
            return 200, {"kind": "bigquery#jobCancelResponse", "job": self._job(rest[1]).resource()}  # it is DONE already
        if route == ("POST", 1, "queries"):
            return 200, self._query(body)
        if route == ("GET", 2, "queries"):
            start = token_offset(params["pageToken"]) if params.get("pageToken") else int(params.get("startIndex") or 0)
            size = int(params["maxResults"]) if params.get("maxResults") else None
            return 200, self._job(rest[1]).results(start, size, _ts_format(params), "bigquery#getQueryResultsResponse")
        if route == ("GET", 1, "datasets"):
            return 200, cat.list_datasets(_int(params.get("maxResults")), params.get("pageToken"))
        if route == ("POST", 1, "datasets"):
            return 200, cat.insert_dataset(body)
        if rest and rest[0] == "datasets" and len(rest) >= 2:
            return self._dataset_route(method, rest[1], rest[2:], params, body)
        raise BigQueryError(404, "notFound", f"Not found: {method} {path} is not served by the BigQuery emulator")

    def _dataset_route(self, method: str, dataset: str, rest: list[str], params: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        cat = self.catalog
        if not rest:
            if method == "GET":
                return 200, cat.dataset(dataset)
            if method == "DELETE":
                cat.delete_dataset(dataset, params.get("deleteContents", "").lower() == "true")
                return 204, None
            if method in ("PATCH", "PUT"):
                cat.dataset(dataset)
                extras: dict[str, Any] = {
                    k: body[k] for k in ("description", "friendlyName", "labels", "defaultTableExpirationMs") if k in body
                }
                self.db.dataset_extras.setdefault(dataset, {}).update(extras)
                return 200, cat.dataset(dataset)
        elif rest == ["tables"] and method == "GET":
            return 200, cat.list_tables(dataset, _int(params.get("maxResults")), params.get("pageToken"))
        elif rest == ["tables"] and method == "POST":
            return 200, cat.insert_table(dataset, body)
        elif len(rest) == 2 and rest[0] == "tables" and method == "GET":
            return 200, cat.table(dataset, rest[1])
        elif len(rest) == 2 and rest[0] == "tables" and method == "DELETE":
            cat.delete_table(dataset, rest[1])
            return 204, None
        elif len(rest) == 3 and rest[2] == "data" and method == "GET":
            return 200, cat.list_rows(dataset, rest[1], params, _ts_format(params))
        elif len(rest) == 3 and rest[2] == "insertAll" and method == "POST":
            return 200, cat.insert_all(dataset, rest[1], body)
        raise BigQueryError(
            404, "notFound", f"Not found: {method} datasets/{dataset}/{'/'.join(rest)} is not served by the BigQuery emulator"
        )

    # ------------------------------------------------------------ jobs

    def _job(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise not_found(f"Job {self.project}:{LOCATION}.{job_id}")
        return job

    def _insert_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """jobs.insert: runs the query now; a failed query is a DONE job with errorResult."""
        config = dict(body.get("configuration") or {})
        if "query" not in config:
            kinds = [k for k in ("load", "copy", "extract") if k in config]
            raise invalid(f"The BigQuery emulator runs query jobs only (got {', '.join(kinds) or 'no'} configuration)")
        job_id = (body.get("jobReference") or {}).get("jobId") or f"job_{uuid.uuid4().hex}"
        with self._lock:
            if job_id in self._jobs:
                raise duplicate(f"Job {self.project}:{LOCATION}.{job_id}")
        config.setdefault("jobType", "QUERY")
        job = self._run(job_id, config, dict(config["query"]))
        return job.resource()

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        """jobs.query: runs the query as a job and answers its first page (or its error)."""
        request_id = body.get("requestId")
        with self._lock:
            earlier = self._request_ids.get(request_id) if request_id else None
        if earlier is None:
            query = {k: body[k] for k in _QUERY_FIELDS if k in body}
            config: dict[str, Any] = {"jobType": "QUERY", "query": query} | ({"dryRun": True} if body.get("dryRun") else {})
            job = self._run(f"job_{uuid.uuid4().hex}", config, query)
            if request_id and job.job_id:
                with self._lock:
                    self._request_ids[request_id] = job.job_id  # a retried request gets the same job
        else:
            job = self._job(earlier)
        size = _int(body.get("maxResults"))
        return job.results(0, size, _ts_format(body.get("formatOptions") or {}), "bigquery#queryResponse")

    def _run(self, job_id: str, config: dict[str, Any], query: dict[str, Any]) -> Job:
        dry_run = bool(config.get("dryRun"))
        query.setdefault("useLegacySql", False)
        config["query"] = query
        job = Job(self.project, None if dry_run else job_id, config, now_ms())
        try:
            job.outcome, job.session_id = self.runner.run(query, dry_run)
        except BigQueryError as e:
            job.error = e
            if dry_run:
                raise  # a dry run that fails is an HTTP error, no job
        job.ended = now_ms()
        if not dry_run:
            with self._lock:
                self._jobs[job_id] = job
        return job


def _ts_format(options: dict[str, Any]) -> str:
    """How TIMESTAMP cells are written (formatOptions, as JSON or as query parameters)."""
    if str(options.get("timestampOutputFormat") or options.get("formatOptions.timestampOutputFormat") or "").upper() == "ISO8601_STRING":
        return "iso"
    flag = options.get("useInt64Timestamp", options.get("formatOptions.useInt64Timestamp"))
    return "int64" if str(flag).lower() == "true" else "float"


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None
