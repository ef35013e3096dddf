"""Types between BigQuery's REST API and DuckDB: schema fields, row cells, parameters, sizes.

Facts this module mirrors (google-cloud-bigquery's `_helpers.CellDataParser` and its
`_SCALAR_VALUE_TO_JSON_*` writers): every cell value is a string (``"1"``, ``"true"``,
``"1.5"``), NULL is ``null``; a REPEATED field is ``[{"v": ...}]`` (never null: a NULL array is
``[]``); a RECORD is ``{"f": [{"v": ...}]}``; BYTES are base64; DATETIME is
``YYYY-MM-DDTHH:MM:SS[.ffffff]``; TIME is ``HH:MM:SS[.ffffff]``; TIMESTAMP is microseconds since
the epoch when the request says ``formatOptions.useInt64Timestamp`` (the client always does),
an ISO string for ``timestampOutputFormat=ISO8601_STRING``, else float seconds.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from typing import Any, Protocol

from .errors import invalid

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
MICROSECOND = datetime.timedelta(microseconds=1)

#: BigQuery's scalar type names (both spellings the API accepts) → DuckDB's types. NUMERIC is
#: DECIMAL(38,9) as in BigQuery; BIGNUMERIC (76 digits) does not fit DuckDB (38 at most), so it
#: is DECIMAL(38,18); GEOGRAPHY is kept as its WKT text.
DUCK_SCALARS: dict[str, str] = {
    "STRING": "VARCHAR",
    "INTEGER": "BIGINT",
    "INT64": "BIGINT",
    "FLOAT": "DOUBLE",
    "FLOAT64": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "NUMERIC": "DECIMAL(38,9)",
    "DECIMAL": "DECIMAL(38,9)",
    "BIGNUMERIC": "DECIMAL(38,18)",
    "BIGDECIMAL": "DECIMAL(38,18)",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATETIME": "TIMESTAMP",
    "DATE": "DATE",
    "TIME": "TIME",
    "BYTES": "BLOB",
    "JSON": "JSON",
    "GEOGRAPHY": "VARCHAR",
    "INTERVAL": "INTERVAL",
}
_INTEGERS = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint", "uinteger", "ubigint", "uhugeint"}
_TIMESTAMPS = {"timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns"}
_BY_ID = {
    "double": "FLOAT",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "blob": "BYTES",
    "date": "DATE",
    "time": "TIME",
    "timestamp with time zone": "TIMESTAMP",
    "interval": "INTERVAL",
    "null": "INTEGER",  # BigQuery types a bare NULL as INT64
}
#: REST field type → the GoogleSQL name INFORMATION_SCHEMA.COLUMNS.data_type shows.
_SQL_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


class DuckType(Protocol):
    """duckdb's DuckDBPyType, as far as this module reads it."""

    @property
    def id(self) -> str: ...
    @property
    def children(self) -> list[tuple[str, Any]]: ...


# ---------------------------------------------------------------- schema fields


def field_for(name: str, t: DuckType, mode: str = "NULLABLE") -> dict[str, Any]:
    """The REST schema field for a DuckDB column. A list is REPEATED; BigQuery has no arrays
    of arrays, so a list of lists is shown as JSON (its text)."""
    if t.id == "list":
        (_, child) = t.children[0]
        if child.id == "list":
            return {"name": name, "type": "JSON", "mode": mode}
        return {**field_for(name, child), "mode": "REPEATED"}
    if t.id == "struct":
        return {"name": name, "type": "RECORD", "mode": mode, "fields": [field_for(n, c) for n, c in t.children]}
    return {"name": name, "type": scalar_type(t), "mode": mode}


def scalar_type(t: DuckType) -> str:
    if t.id in _INTEGERS:
        return "INTEGER"
    if t.id in _TIMESTAMPS:
        return "DATETIME"  # DuckDB's TIMESTAMP has no time zone: BigQuery's DATETIME
    if t.id == "decimal":
        # NUMERIC has scale 9; a larger scale is a BIGNUMERIC column (DECIMAL(38,18)), or the
        # product of NUMERICs (DuckDB adds the scales): shown as BIGNUMERIC either way.
        return "NUMERIC" if dict(t.children)["scale"] <= 9 else "BIGNUMERIC"
    if t.id == "varchar":
        return "JSON" if str(t) == "JSON" else "STRING"
    if t.id == "map":
        return "JSON"
    return _BY_ID.get(t.id, "STRING")  # uuid, enum, bit...: their text


def duck_type(field: dict[str, Any]) -> str:
    """DuckDB's column type for a REST schema field (tables.insert)."""
    kind = str(field.get("type", "STRING")).upper()
    if kind in ("RECORD", "STRUCT"):
        inner = ", ".join(f"{quote_ident(f['name'])} {duck_type(f)}" for f in field.get("fields", []))
        base = f"STRUCT({inner})"
    elif kind in DUCK_SCALARS:
        base = DUCK_SCALARS[kind]
    else:
        raise invalid(f"Invalid field type {kind} for field {field.get('name')} (the BigQuery emulator does not store it)")
    return f"{base}[]" if str(field.get("mode", "")).upper() == "REPEATED" else base


def sql_type_name(field: dict[str, Any]) -> str:
    """GoogleSQL's spelling of a field's type: INT64, ARRAY<STRING>, STRUCT<a INT64>."""
    kind = field["type"]
    if kind == "RECORD":
        base = "STRUCT<" + ", ".join(f"{f['name']} {sql_type_name(f)}" for f in field["fields"]) + ">"
    else:
        base = _SQL_NAMES.get(kind, kind)
    return f"ARRAY<{base}>" if field.get("mode") == "REPEATED" else base


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------- row cells


def encode_row(row: tuple[Any, ...], fields: list[dict[str, Any]], ts_format: str) -> dict[str, Any]:
    return {"f": [{"v": encode_cell(v, f, ts_format)} for v, f in zip(row, fields, strict=True)]}


def encode_cell(value: Any, field: dict[str, Any], ts_format: str) -> Any:
    """One cell as BigQuery sends it; `ts_format` is "int64", "iso" or "float"."""
    if field.get("mode") == "REPEATED":
        scalar = {**field, "mode": "NULLABLE"}
        return [{"v": encode_cell(item, scalar, ts_format)} for item in (value or [])]
    if value is None:
        return None
    kind = field["type"]
    if kind == "RECORD":
        items = list(value.values()) if isinstance(value, dict) else list(value)
        return encode_row(tuple(items), field["fields"], ts_format)
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "FLOAT":
        return _float_text(float(value))
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return _decimal_text(value)
    if kind == "BYTES":
        return base64.b64encode(value).decode()
    if kind == "TIMESTAMP":
        return _timestamp_text(value, ts_format)
    if kind in ("DATETIME", "DATE", "TIME"):
        return value.isoformat()
    if kind == "JSON":
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "INTERVAL" and isinstance(value, datetime.timedelta):
        seconds = value.seconds + value.microseconds / 1e6
        return f"0-0 {value.days} {int(seconds // 3600)}:{int(seconds % 3600 // 60)}:{seconds % 60:g}"
    return str(value)


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _decimal_text(value: Any) -> str:
    text = format(decimal.Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "0E-9") else text


def _timestamp_text(value: datetime.datetime, ts_format: str) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    micros = (value - EPOCH) // MICROSECOND
    if ts_format == "int64":
        return str(micros)
    if ts_format == "iso":
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return repr(micros / 1e6)


# ---------------------------------------------------------------- insertAll values


def insert_placeholder(field: dict[str, Any], column_type: str) -> str:
    """The VALUES item a row value is bound to: complex values travel as JSON text and are
    cast by DuckDB, scalars are cast from their text."""
    if field.get("mode") == "REPEATED" or field["type"] in ("RECORD", "JSON"):
        return f"CAST(CAST(? AS JSON) AS {column_type})"
    return f"CAST(? AS {column_type})"


def insert_value(value: Any, field: dict[str, Any]) -> Any:
    """A JSON row value (tabledata.insertAll) as bound for `insert_placeholder`; ValueError
    with BigQuery's wording when it does not fit the field."""
    if value is None:
        return None
    kind = field["type"]
    if field.get("mode") == "REPEATED" or kind == "RECORD":
        return json.dumps(value)
    if kind == "JSON":
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "BYTES":
        return base64.b64decode(value)
    if kind == "TIMESTAMP" and isinstance(value, (int, float)):
        return (EPOCH + datetime.timedelta(seconds=value)).isoformat()
    if kind == "TIMESTAMP" and isinstance(value, str) and value.endswith(" UTC"):
        return value[:-4] + "+00:00"
    if kind == "INTEGER" and not _is_integer(value):
        raise ValueError(f"Cannot convert value to integer (bad value): {value}")
    if kind == "BOOLEAN":
        if str(value).lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"Cannot convert value to boolean: {value}")
        return str(value).lower() in ("true", "1")
    return str(value) if not isinstance(value, str) else value


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    try:
        int(str(value))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- query parameters


def param_sql(ptype: dict[str, Any], pvalue: dict[str, Any] | None) -> str:
    """A query parameter (REST QueryParameterType/Value) as a typed DuckDB SQL literal."""
    kind = str(ptype.get("type", "STRING")).upper()
    pvalue = pvalue or {}
    if kind == "ARRAY":
        element = ptype.get("arrayType") or {"type": "STRING"}
        items = [param_sql(element, v) for v in pvalue.get("arrayValues") or []]
        return f"CAST([{', '.join(items)}] AS {_param_duck_type(element)}[])"
    if kind == "STRUCT":
        values = pvalue.get("structValues") or {}
        items = [f"{quote_str(t['name'])}: {param_sql(t['type'], values.get(t['name']))}" for t in ptype.get("structTypes", [])]
        return "{" + ", ".join(items) + "}"
    if kind not in DUCK_SCALARS:
        raise invalid(f"Unsupported query parameter type {kind} (BigQuery emulator)")
    value = pvalue.get("value")
    if value is None:
        return f"CAST(NULL AS {DUCK_SCALARS[kind]})"
    if kind == "BYTES":
        return f"FROM_BASE64({quote_str(str(value))})"
    if kind == "TIMESTAMP" and str(value).endswith(" UTC"):
        value = str(value)[:-4] + "+00:00"
    return f"CAST({quote_str(str(value))} AS {DUCK_SCALARS[kind]})"


def _param_duck_type(ptype: dict[str, Any]) -> str:
    kind = str(ptype.get("type", "STRING")).upper()
    if kind == "ARRAY":
        return _param_duck_type(ptype.get("arrayType") or {}) + "[]"
    if kind == "STRUCT":
        inner = ", ".join(f"{quote_ident(t['name'])} {_param_duck_type(t['type'])}" for t in ptype.get("structTypes", []))
        return f"STRUCT({inner})"
    return DUCK_SCALARS.get(kind, "VARCHAR")


# ---------------------------------------------------------------- sizes


def size_sql(column: str, t: DuckType) -> str:
    """A DuckDB aggregate giving the bytes BigQuery counts for a column (its documented data
    sizes: 8 for INT64/FLOAT64/DATE/TIME/DATETIME/TIMESTAMP, 1 for BOOL, 16 for NUMERIC, 32 for
    BIGNUMERIC, 2 + UTF-8 bytes for STRING, 2 + bytes for BYTES, the text for JSON; NULL 0);
    arrays and structs are estimated by their text."""
    kind = field_for("c", t)["type"] if t.id != "list" else "NESTED"
    if kind in ("INTEGER", "FLOAT", "DATE", "TIME", "DATETIME", "TIMESTAMP", "INTERVAL"):
        return f"8 * COUNT({column})"
    if kind == "BOOLEAN":
        return f"COUNT({column})"
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return f"{16 if kind == 'NUMERIC' else 32} * COUNT({column})"
    if kind == "STRING":
        return f"COALESCE(SUM(2 + STRLEN(CAST({column} AS VARCHAR))), 0)"
    if kind == "BYTES":
        return f"COALESCE(SUM(2 + OCTET_LENGTH({column})), 0)"
    return f"COALESCE(SUM(STRLEN(CAST({column} AS VARCHAR))), 0)"
