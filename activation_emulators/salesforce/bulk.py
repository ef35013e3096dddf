"""Bulk API 2.0 ingest jobs for the Salesforce emulator, driven exactly as `sf.bulk2` drives them.

Life cycle: POST creates an Open job; one PUT of CSV data (201); PATCH UploadComplete; the job
then reports InProgress until `processing_delay` seconds have passed (so clients really poll),
and is processed on the next request: JobComplete (row failures are per row) or Failed (e.g. an
unknown column, which fails the whole job as the real service does). Rows are processed in
chunks of 200 like the real DML, which matters for duplicate external ids within a chunk.

CSV cell semantics follow the real service: an empty cell leaves the field untouched, ``#N/A``
sets it to null, and ``Account.External_Id__c`` columns resolve a relationship by external id.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from typing import Any

from .schema import Field, SObjectType, make_id, normalize_id
from .store import UNSET, RecordError, Store, now_iso, parse_text, relationship_target
from .wire import Reply, Request, error_reply, json_reply, no_content, not_found

OPERATIONS = ("insert", "upsert", "update", "delete", "hardDelete")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
CHUNK = 200  # the real service applies DML in chunks of 200 rows


class JobFailure(Exception):
    """A whole-job failure (state Failed, `errorMessage`)."""


@dataclass
class IngestJob:
    id: str
    operation: str
    object: str
    external_id_field: str | None
    column_delimiter: str
    line_ending: str
    api_version: str
    created_by: str
    created: str = field(default_factory=now_iso)
    state: str = "Open"
    modstamp: str = field(default_factory=now_iso)
    data: bytes | None = None
    ready_at: float | None = None
    error_message: str | None = None
    processed: int = 0
    failed: int = 0
    processing_ms: int = 0
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)

    def info(self, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.state,
        }
        if self.external_id_field:
            out["externalIdFieldName"] = self.external_id_field
        out.update(
            {
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(self.api_version),
                "lineEnding": self.line_ending,
                "columnDelimiter": self.column_delimiter,
            }
        )
        if self.state == "Open":
            out["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        if full:
            out.update(
                {
                    "jobType": "V2Ingest",
                    "numberRecordsProcessed": self.processed,
                    "numberRecordsFailed": self.failed,
                    "retries": 0,
                    "totalProcessingTime": self.processing_ms,
                    "apiActiveProcessingTime": self.processing_ms,
                    "apexProcessingTime": 0,
                }
            )
            if self.error_message:
                out["errorMessage"] = self.error_message
        return out

    def set_state(self, state: str) -> None:
        self.state, self.modstamp = state, now_iso()


class BulkIngest:
    """All ingest jobs of one emulator. Callers hold the emulator's lock."""

    def __init__(self, store: Store, user_id: str) -> None:
        self.store, self.user_id = store, user_id
        self.jobs: dict[str, IngestJob] = {}
        self.processing_delay = 0.0
        self.fail_jobs: list[str] = []  # injected whole-job failures (errorMessage each)
        self._seq = 0

    # ------------------------------------------------------------ processing

    def advance(self) -> None:
        """Process every closed job whose delay has passed (called on each request)."""
        now = time.monotonic()
        for job in self.jobs.values():
            if job.state in ("UploadComplete", "InProgress") and job.ready_at is not None:
                if now >= job.ready_at:
                    self._process(job)
                elif job.state == "UploadComplete":
                    job.set_state("InProgress")

    def _process(self, job: IngestJob) -> None:
        started = time.monotonic()
        text = (job.data or b"").decode("utf-8-sig")
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter]) if r]
        job.header, body = (rows[0], rows[1:]) if rows else ([], [])
        try:
            if self.fail_jobs:
                raise JobFailure(self.fail_jobs.pop(0))
            sot = self.store.schema[job.object]
            columns = self._columns(job, sot)
        except JobFailure as e:
            job.error_message, job.unprocessed = str(e), body
            job.set_state("Failed")
            return
        for start in range(0, len(body), CHUNK):
            chunk = body[start : start + CHUNK]
            dupes = self._chunk_duplicates(job, sot, columns, chunk)
            for row in chunk:
                self._row(job, sot, columns, row, dupes)
        job.processing_ms = int((time.monotonic() - started) * 1000)
        job.set_state("JobComplete")

    def _columns(self, job: IngestJob, sot: SObjectType) -> list[tuple[Any, ...]]:
        if not job.header:
            raise JobFailure("InvalidBatch : No data was uploaded for this job")
        cols: list[tuple[Any, ...]] = []
        for name in job.header:
            if "." in name:  # Account.External_Id__c: relationship by external id
                rel, _, ext_name = name.partition(".")
                ref = sot.relationship(rel)
                try:
                    target = relationship_target(self.store.schema, ref, {ext_name: ""}) if ref else None
                except RecordError:
                    target = None
                if ref is None or target is None:
                    raise JobFailure(f"InvalidBatch : Field name not found : {name}")
                cols.append(("rel", ref, target[0], target[1]))
                continue
            f = sot.field(name)
            if f is None:
                raise JobFailure(f"InvalidBatch : Field name not found : {name}")
            cols.append(("field", f))
        names = {c[1].name for c in cols if c[0] == "field"}
        if job.operation in ("update", "delete", "hardDelete") and "Id" not in names:
            raise JobFailure("InvalidBatch : Field name not found : Id")
        ext = job.external_id_field or ""
        if job.operation == "upsert" and ext.lower() != "id" and ext.lower() not in {n.lower() for n in names}:
            raise JobFailure(f"InvalidBatch : External ID field not found in the header : {ext}")
        return cols

    def _chunk_duplicates(self, job: IngestJob, sot: SObjectType, cols: list[tuple[Any, ...]], chunk: list[list[str]]) -> set[Any]:
        """External-id values present twice in one chunk: all such rows fail, as in real DML."""
        ext = sot.field(job.external_id_field or "")
        if job.operation != "upsert" or ext is None or ext.name == "Id":
            return set()
        i = next(n for n, c in enumerate(cols) if c[0] == "field" and c[1].name == ext.name)
        seen: dict[Any, int] = {}
        for row in chunk:
            if i < len(row) and row[i]:
                key = Store._key(ext, row[i])
                seen[key] = seen.get(key, 0) + 1
        return {k for k, n in seen.items() if n > 1}

    def _row(self, job: IngestJob, sot: SObjectType, cols: list[tuple[Any, ...]], row: list[str], dupes: set[Any]) -> None:
        rid = ""
        try:
            if len(row) > len(cols):
                raise RecordError("INVALID_FIELD", "Row has more fields than the header")
            values: dict[str, Any] = {}
            rels: dict[str, tuple[SObjectType, Field, Any]] = {}
            raw_id = ""
            for col, cell in zip(cols, row + [""] * (len(cols) - len(row)), strict=False):
                if col[0] == "rel":
                    if cell:
                        rels[col[1].name] = (col[2], col[3], cell)
                elif col[1].name == "Id":
                    raw_id = cell
                elif cell != "":  # empty cell: leave the field as it is
                    values[col[1].name] = None if cell == "#N/A" else parse_text(col[1], cell)
            rid, created = self._apply(job, sot, raw_id, values, rels, dupes)
            job.successful.append([rid, "true" if created else "false", *row])
        except RecordError as e:
            job.failed += 1
            job.failures.append([rid, e.to_bulk(), *row])
        job.processed += 1

    def _apply(
        self, job: IngestJob, sot: SObjectType, raw_id: str, values: dict[str, Any], rels: dict[str, Any], dupes: set[Any]
    ) -> tuple[str, bool]:
        op, store = job.operation, self.store
        if op == "insert":
            return store.insert(sot, {**values, "Id": raw_id or None}, rels), True
        if op in ("delete", "hardDelete"):
            rid = normalize_id(raw_id)
            if rid is not None and not rid.startswith(sot.key_prefix):
                raise RecordError("MALFORMED_ID", f"{sot.label} ID: id value of incorrect type: {raw_id}", ["Id"])
            return store.delete(raw_id, hard=op == "hardDelete"), False
        ext = sot.field(job.external_id_field or "Id")
        if op == "update" or (ext is not None and ext.name == "Id" and raw_id):
            if not raw_id:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
            rid = store.check_id(sot, raw_id, label=f"{sot.label} ID")
            store.update(sot, rid, values, rels)
            return rid, False
        if ext is None or ext.name == "Id":  # upsert on Id with an empty Id: insert
            return store.insert(sot, values, rels), True
        value = values.pop(ext.name, UNSET)
        if value is not UNSET and value is not None and Store._key(ext, value) in dupes:
            raise RecordError("DUPLICATE_VALUE", f"Duplicate external id specified: {value}")
        return store.upsert(sot, ext, None if value is UNSET else value, values, rels)

    # ------------------------------------------------------------ HTTP

    def route(self, req: Request, segs: list[str], version: str) -> Reply:
        """`segs` follow ``/jobs/ingest``."""
        self.advance()
        if not segs:
            if req.method == "POST":
                return self._create(req, version)
            if req.method == "GET":
                return json_reply(200, {"done": True, "nextRecordsUrl": None, "records": [j.info(False) for j in self.jobs.values()]})
            return _method_not_allowed(req, "GET,POST")
        job = self.jobs.get(segs[0])
        if job is None:
            return not_found()
        if len(segs) == 1:
            if req.method == "GET":
                return json_reply(200, job.info())
            if req.method == "PATCH":
                return self._set_state(job, req)
            if req.method == "DELETE":
                if job.state == "Open":
                    return error_reply(400, "INVALIDJOBSTATE", "Job is still Open; close or abort it first")
                del self.jobs[job.id]
                return no_content()
            return _method_not_allowed(req, "GET,PATCH,DELETE")
        sub = segs[1].lower()
        if sub == "batches" and req.method == "PUT":
            return self._upload(job, req)
        if req.method == "GET" and sub in ("successfulresults", "failedresults", "unprocessedrecords"):
            return self._results(job, sub)
        return not_found()

    def _create(self, req: Request, version: str) -> Reply:
        try:
            spec = req.json()
        except ValueError:
            return error_reply(400, "JSON_PARSER_ERROR", "Unexpected character in request body")
        if not isinstance(spec, dict):
            return error_reply(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        op, obj = spec.get("operation"), spec.get("object")
        if op not in OPERATIONS:
            return error_reply(400, "INVALIDJOB", f"Invalid operation: {op}")
        sot = self.store.schema.get(obj or "")
        if sot is None:
            return error_reply(400, "INVALIDJOB", f"Unable to find object: {obj}")
        ext = spec.get("externalIdFieldName")
        if op == "upsert":
            f = sot.field(ext or "")
            if f is None or not (f.external_id or f.type == "id"):
                return error_reply(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : Invalid field for upsert, must be an External Id custom or standard indexed field: {ext}",
                )
            ext = f.name
        delim, ending = spec.get("columnDelimiter", "COMMA"), spec.get("lineEnding", "LF")
        if delim not in DELIMITERS or ending not in ("LF", "CRLF") or spec.get("contentType", "CSV") != "CSV":
            return error_reply(400, "INVALIDJOB", "Invalid contentType, columnDelimiter or lineEnding")
        self._seq += 1
        job = IngestJob(make_id("750", self._seq), op, sot.name, ext if op == "upsert" else None, delim, ending, version, self.user_id)
        self.jobs[job.id] = job
        return json_reply(200, job.info(False))

    def _upload(self, job: IngestJob, req: Request) -> Reply:
        if job.state != "Open":
            return error_reply(409, "INVALIDJOBSTATE", f"Job {job.id} is not Open")
        if job.data is not None:  # Bulk 2.0 takes exactly one upload per job
            return error_reply(
                400,
                "INVALIDJOB",
                f"Found multiple contents for job: <{job.id}>, "
                "please 'Close' / 'Abort' / 'Delete' the current Job then create a new "
                "Job and make sure you only do 'PUT' once on a given Job.",
            )
        if not req.headers.get("content-type", "").startswith("text/csv"):
            return error_reply(400, "INVALIDJOB", "Content type must be text/csv")
        job.data = req.body
        return Reply(201, b"", "")

    def _set_state(self, job: IngestJob, req: Request) -> Reply:
        try:
            state = (req.json() or {}).get("state")
        except (ValueError, AttributeError):
            return error_reply(400, "JSON_PARSER_ERROR", 'Expected {"state": ...}')
        if state == "UploadComplete" and job.state == "Open":
            job.set_state("UploadComplete")
            job.ready_at = time.monotonic() + self.processing_delay
        elif state == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            job.set_state("Aborted")
            job.ready_at = None
            text = (job.data or b"").decode("utf-8-sig")
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter]) if r]
            job.header, job.unprocessed = (rows[0], rows[1:]) if rows else ([], [])
        else:
            return error_reply(400, "INVALIDJOBSTATE", f"Cannot change the state of job {job.id} from {job.state} to {state}")
        return json_reply(200, job.info(False))

    def _results(self, job: IngestJob, kind: str) -> Reply:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=DELIMITERS[job.column_delimiter], lineterminator="\r\n" if job.line_ending == "CRLF" else "\n")
        if kind == "successfulresults":
            w.writerow(["sf__Id", "sf__Created", *job.header])
            w.writerows(job.successful)
        elif kind == "failedresults":
            w.writerow(["sf__Id", "sf__Error", *job.header])
            w.writerows(job.failures)
        else:
            if job.header:
                w.writerow(job.header)
            w.writerows(job.unprocessed)
        return Reply(200, buf.getvalue().encode(), "text/csv")


def _method_not_allowed(req: Request, allowed: str) -> Reply:
    return error_reply(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are {allowed}")
