"""Which module serves each `warehouse.type`, imported only when a project uses it (the base
interface imports no engine), and what each engine needs installed."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from activation.extras import needs
from activation.warehouse.base import Warehouse, WarehouseError
from activation.warehouse.spec import AnyWarehouseSpec


@dataclass(frozen=True)
class Engine:
    warehouse: str  # the Warehouse subclass, as "module:Class"
    extra: str | None = None  # the extra of activation-etl that installs its driver
    requires: dict[str, str] = field(default_factory=dict, hash=False)  # distribution -> module


ENGINES: dict[str, Engine] = {
    "duckdb": Engine("activation.warehouse.duckdb:DuckDBWarehouse"),
    "postgres": Engine("activation.warehouse.postgres:PostgresWarehouse", "postgres", {"psycopg": "psycopg"}),
    "bigquery": Engine(
        "activation.warehouse.bigquery:BigQueryWarehouse",
        "bigquery",
        {"google-cloud-bigquery": "google.cloud.bigquery", "sqlalchemy-bigquery": "sqlalchemy_bigquery"},
    ),
    "redshift": Engine(
        "activation.warehouse.redshift:RedshiftWarehouse",
        "redshift",
        {"sqlalchemy-redshift": "sqlalchemy_redshift", "redshift-connector": "redshift_connector"},
    ),
    "snowflake": Engine(
        "activation.warehouse.snowflake:SnowflakeWarehouse",
        "snowflake",
        {"snowflake-sqlalchemy": "snowflake.sqlalchemy", "snowflake-connector-python": "snowflake.connector"},
    ),
}


def open_warehouse(spec: AnyWarehouseSpec, root: Path, *, read_only: bool = False) -> Warehouse:
    engine = ENGINES.get(spec.type)
    if engine is None:
        raise WarehouseError(f"warehouse type {spec.type!r} is not supported yet")
    if (problem := needs(f"the {spec.type} warehouse", engine.extra, engine.requires)) is not None:
        raise WarehouseError(problem)
    module, _, name = engine.warehouse.partition(":")
    cls: type[Warehouse] = getattr(import_module(module), name)
    return cls(spec, root, read_only=read_only)
