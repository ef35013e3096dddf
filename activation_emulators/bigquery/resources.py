"""Datasets, tables and table data as BigQuery's REST resources (datasets.*, tables.*,
tabledata.list, tabledata.insertAll), on the emulator's DuckDB catalog."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from .database import Database, relation
from .errors import LOCATION, BigQueryError, dataset_not_found, duplicate, invalid, table_not_found
from .jobs import DEFAULT_PAGE_ROWS, page, page_token, token_offset
from .translate import Translator
from .typemap import duck_type, insert_placeholder, insert_value, quote_ident

INSERT_CHUNK = 500  # rows per INSERT statement (DuckDB binds every value as a parameter)


class Catalog:
    """The REST resources of one emulator's datasets and tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.project = db.project

    # ------------------------------------------------------------ datasets

    def dataset(self, dataset: str) -> dict[str, Any]:
        if not self.db.has_dataset(dataset):
            raise dataset_not_found(self.project, dataset)
        created = str(self.db.created_ms(dataset))
        resource: dict[str, Any] = {"kind": "bigquery#dataset", "etag": f'"{created}"', "id": f"{self.project}:{dataset}"}
        resource |= {"datasetReference": {"projectId": self.project, "datasetId": dataset}, "location": LOCATION}
        resource |= {"creationTime": created, "lastModifiedTime": created, "type": "DEFAULT", "access": []}
        return resource | self.db.dataset_extras.get(dataset, {})

    def insert_dataset(self, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("datasetReference") or {}
        dataset = ref.get("datasetId")
        if not dataset:
            raise invalid("Missing required field: datasetReference.datasetId.")
        if ref.get("projectId") not in (None, self.project):
            raise invalid(f"Invalid project ID '{ref['projectId']}' (the BigQuery emulator serves project {self.project} only)")
        if self.db.has_dataset(dataset):
            raise duplicate(f"Dataset {self.project}:{dataset}")
        self.db.create_dataset(dataset)
        extras: dict[str, Any] = {k: body[k] for k in ("description", "friendlyName", "labels", "defaultTableExpirationMs") if k in body}
        self.db.dataset_extras[dataset] = extras
        return self.dataset(dataset)

    def delete_dataset(self, dataset: str, delete_contents: bool) -> None:
        self.db.drop_dataset(dataset, delete_contents)
        self.db.dataset_extras.pop(dataset, None)
        self.db.forget(dataset)

    def list_datasets(self, max_results: int | None, token: str | None) -> dict[str, Any]:
        items = [
            {"kind": "bigquery#dataset", "id": f"{self.project}:{d}", "datasetReference": {"projectId": self.project, "datasetId": d}}
            | {"location": LOCATION}
            for d in self.db.datasets()
        ]
        return {"kind": "bigquery#datasetList", "etag": '"datasets"'} | _paged("datasets", items, max_results, token)

    # ------------------------------------------------------------ tables

    def table(self, dataset: str, table: str) -> dict[str, Any]:
        kind = self._kind(dataset, table)
        created = str(self.db.created_ms(dataset, table))
        with self.db.connection() as cur:
            fields = self.db.schema(cur, dataset, table)
            rows = 0 if kind == "VIEW" else int(cur.execute(f"SELECT COUNT(*) FROM {relation(dataset, table)}").fetchone()[0])  # type: ignore[index]
            size = 0 if kind == "VIEW" else self.db.bytes_read(cur, [(dataset, table)], None)
        resource: dict[str, Any] = {"kind": "bigquery#table", "etag": f'"{created}"', "id": f"{self.project}:{dataset}.{table}"}
        resource |= {"tableReference": self._ref(dataset, table), "schema": {"fields": fields}, "type": kind}
        resource |= {"numRows": str(rows), "numBytes": str(size), "numLongTermBytes": "0", "location": LOCATION}
        resource |= {"creationTime": created, "lastModifiedTime": created}
        if kind == "VIEW":
            query = self.db.view_queries.get((dataset, table)) or self.db.view_sql(dataset, table)
            resource["view"] = {"query": query, "useLegacySql": False}
        return resource

    def insert_table(self, dataset: str, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("tableReference") or {}
        table = ref.get("tableId")
        if not table:
            raise invalid("Missing required field: tableReference.tableId.")
        if not self.db.has_dataset(dataset):
            raise dataset_not_found(self.project, dataset)
        if self.db.table_kind(dataset, table):
            raise duplicate(f"Table {self.project}:{dataset}.{table}")
        view = body.get("view")
        with self.db.connection() as cur:
            if view:
                if view.get("useLegacySql"):
                    raise invalid("The BigQuery emulator runs GoogleSQL only: a view needs useLegacySql false")
                sql = Translator(self.project, None, {}, [], self.db.info_schema_sql).translate(str(view.get("query", ""))).sql
                cur.execute(f"CREATE VIEW {relation(dataset, table)} AS {sql}")
                self.db.view_queries[(dataset, table)] = str(view["query"])
            else:
                fields = (body.get("schema") or {}).get("fields") or []
                if not fields:
                    raise invalid(
                        f"Table {self.project}:{dataset}.{table} needs a schema: the BigQuery emulator (DuckDB) cannot hold a table without columns"
                    )
                columns = ", ".join(
                    f"{quote_ident(f['name'])} {duck_type(f)}" + (" NOT NULL" if str(f.get("mode", "")).upper() == "REQUIRED" else "")
                    for f in fields
                )
                cur.execute(f"CREATE TABLE {relation(dataset, table)} ({columns})")
        self.db.forget(dataset, table)
        return self.table(dataset, table)

    def delete_table(self, dataset: str, table: str) -> None:
        kind = self._kind(dataset, table)
        with self.db.connection() as cur:
            cur.execute(f"DROP {kind} {relation(dataset, table)}")
        self.db.forget(dataset, table)
        self.db.view_queries.pop((dataset, table), None)

    def list_tables(self, dataset: str, max_results: int | None, token: str | None) -> dict[str, Any]:
        if not self.db.has_dataset(dataset):
            raise dataset_not_found(self.project, dataset)
        items = [
            {"kind": "bigquery#table", "id": f"{self.project}:{dataset}.{name}", "tableReference": self._ref(dataset, name)}
            | {"type": kind, "creationTime": str(self.db.created_ms(dataset, name))}
            for _, name, kind in self.db.tables(dataset)
        ]
        body = {"kind": "bigquery#tableList", "etag": '"tables"', "totalItems": len(items)}
        return body | _paged("tables", items, max_results, token)

    # ------------------------------------------------------------ table data

    def list_rows(self, dataset: str, table: str, params: dict[str, str], ts_format: str) -> dict[str, Any]:
        if self._kind(dataset, table) == "VIEW":
            raise invalid(f"Cannot list a table of type VIEW: {self.project}:{dataset}.{table}")
        start = token_offset(params["pageToken"]) if params.get("pageToken") else int(params.get("startIndex") or 0)
        max_results = int(params["maxResults"]) if params.get("maxResults") else None
        selected = [s.strip() for s in params["selectedFields"].split(",")] if params.get("selectedFields") else None
        count = DEFAULT_PAGE_ROWS if max_results is None else max_results
        fields, rows, total = self.db.read_rows(dataset, table, start, count, selected)
        encoded, end = page(rows, fields, 0, count, ts_format)
        body: dict[str, Any] = {"kind": "bigquery#tableDataList", "etag": f'"{total}"', "totalRows": str(total)}
        if encoded:
            body["rows"] = encoded
        if start + end < total and encoded:
            body["pageToken"] = page_token(start + end)
        return body

    def insert_all(self, dataset: str, table: str, body: dict[str, Any]) -> dict[str, Any]:
        """tabledata.insertAll: every valid row is written unless a row is invalid and
        skipInvalidRows is off (then none is, and the others are reported "stopped")."""
        if self._kind(dataset, table) == "VIEW":
            raise invalid(f"Cannot insert rows into a view: {self.project}:{dataset}.{table}")
        with self.db.connection() as cur:
            fields = {f["name"].lower(): f for f in self.db.schema(cur, dataset, table)}
            types = {n.lower(): str(t) for n, t, *_ in cur.execute(f"SELECT * FROM {relation(dataset, table)} LIMIT 0").description or []}
        ignore_unknown = bool(body.get("ignoreUnknownValues"))
        good: list[tuple[int, dict[str, Any]]] = []
        errors: list[dict[str, Any]] = []
        for index, row in enumerate(body.get("rows") or []):
            values, problems = _row_values(row.get("json") or {}, fields, ignore_unknown)
            if problems:
                errors.append({"index": index, "errors": problems})
            elif row.get("insertId") and self.db.seen_insert_id(dataset, table, str(row["insertId"])):
                continue  # a retried row BigQuery would de-duplicate
            else:
                good.append((index, values))
        if errors and not body.get("skipInvalidRows"):
            stopped = [{"index": i, "errors": [{"reason": "stopped", "location": "", "debugInfo": "", "message": ""}]} for i, _ in good]
            return {"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": sorted(errors + stopped, key=lambda e: e["index"])}
        self._write(dataset, table, fields, types, [v for _, v in good])
        response: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
        return response | ({"insertErrors": errors} if errors else {})

    def _write(self, dataset: str, table: str, fields: dict[str, Any], types: dict[str, str], rows: list[dict[str, Any]]) -> None:
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:  # rows naming the same columns go in one statement (the others keep their defaults)
            by_columns.setdefault(tuple(sorted(row)), []).append(row)
        with self.db.connection() as cur:
            for columns, group in by_columns.items():
                if not columns:
                    cur.execute(f"INSERT INTO {relation(dataset, table)} DEFAULT VALUES")
                    continue
                names = ", ".join(quote_ident(fields[c]["name"]) for c in columns)
                item = "(" + ", ".join(insert_placeholder(fields[c], types[c]) for c in columns) + ")"
                for i in range(0, len(group), INSERT_CHUNK):
                    chunk = group[i : i + INSERT_CHUNK]
                    params = [r[c] for r in chunk for c in columns]
                    try:
                        cur.execute(f"INSERT INTO {relation(dataset, table)} ({names}) VALUES {', '.join([item] * len(chunk))}", params)
                    except duckdb.Error as e:
                        raise invalid(f"{str(e).splitlines()[0]} (BigQuery emulator: tabledata.insertAll into {dataset}.{table})") from e

    def _kind(self, dataset: str, table: str) -> str:
        kind = self.db.table_kind(dataset, table)
        if kind is None:
            if not self.db.has_dataset(dataset):
                raise dataset_not_found(self.project, dataset)
            raise table_not_found(self.project, dataset, table)
        return kind

    def _ref(self, dataset: str, table: str) -> dict[str, str]:
        return {"projectId": self.project, "datasetId": dataset, "tableId": table}


def _row_values(row: dict[str, Any], fields: dict[str, Any], ignore_unknown: bool) -> tuple[dict[str, Any], list[dict[str, str]]]:
    values: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for name, value in row.items():
        f = fields.get(name.lower())
        if f is None:
            if not ignore_unknown:
                problems.append({"reason": "invalid", "location": name, "debugInfo": "", "message": f"no such field: {name}."})
            continue
        try:
            values[name.lower()] = insert_value(value, f)
        except (ValueError, TypeError) as e:
            problems.append({"reason": "invalid", "location": name, "debugInfo": "", "message": str(e)})
    for key, f in fields.items():
        if f.get("mode") == "REQUIRED" and values.get(key) is None:
            problems.append(
                {"reason": "invalid", "location": f["name"], "debugInfo": "", "message": f"Missing required field: {f['name']}."}
            )
    return values, problems


def _paged(key: str, items: list[dict[str, Any]], max_results: int | None, token: str | None) -> dict[str, Any]:
    start = token_offset(token) if token else 0
    end = len(items) if max_results is None else min(len(items), start + max_results)
    body: dict[str, Any] = {key: items[start:end]} if items[start:end] else {}
    if end < len(items):
        body["nextPageToken"] = page_token(end)
    return body


def error_json(error: BigQueryError) -> bytes:
    return json.dumps(error.body()).encode()
