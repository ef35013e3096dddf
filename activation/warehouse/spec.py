"""Pydantic models of the `warehouse:` section of syncs.yaml, one per engine (`type:` picks
the model; left out, it is DuckDB, the embedded default). Secrets are `${ENV}` references,
resolved only where used. No engine's driver is imported here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from activation.project.strict import Name, Strict


class EngineSpec(Strict):
    """What every engine takes."""

    schema_: Name = Field(
        default="activation",
        alias="schema",
        description="Schema where traits and audiences are materialised.",
    )


class DuckDBWarehouseSpec(EngineSpec):
    type: Literal["duckdb"] = "duckdb"
    path: str | None = Field(
        default=".activation/warehouse.duckdb",
        description="DuckDB file, relative to the project directory (duckdb only).",
    )
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$",
        description="DuckDB only: cap on DuckDB's memory inside this process, e.g. 300MB (default: "
        "DuckDB's, 80% of RAM). Beyond it, joins and sorts spill to a temporary directory.",
    )


class ServerSpec(EngineSpec):
    """An engine reached over the network."""

    url: str | None = Field(default=None, description="SQLAlchemy URL (postgres, redshift, snowflake); may use ${ENV}.")


class PostgresWarehouseSpec(ServerSpec):
    type: Literal["postgres"]


class RedshiftWarehouseSpec(ServerSpec):
    """Redshift: `url` is redshift://user:${PASSWORD}@endpoint:5439/database (Amazon's
    redshift_connector), or redshift+psycopg2://… With `iam: true` the password comes from
    IAM (temporary credentials for `db_user`), not from the URL."""

    type: Literal["redshift"]
    sslmode: Literal["verify-full", "verify-ca", "disable"] = Field(
        default="verify-full", description="TLS to the endpoint: verify-full (default), verify-ca, or disable (redshift only)."
    )
    iam: bool = Field(default=False, description="IAM authentication: temporary database credentials (redshift only).")
    cluster_identifier: str | None = Field(default=None, description="IAM: the provisioned cluster's identifier (redshift only).")
    serverless_work_group: str | None = Field(default=None, description="IAM: the Redshift Serverless workgroup (redshift only).")
    region: str | None = Field(default=None, description="IAM: the AWS region, e.g. eu-west-1 (redshift only).")
    db_user: str | None = Field(default=None, description="IAM: the database user to get credentials for (redshift only).")
    profile: str | None = Field(
        default=None, description="IAM: the AWS profile (~/.aws) to sign with; default: the usual AWS chain (redshift only)."
    )
    access_key_id: str | None = Field(
        default=None, description="IAM: an access key id, as ${ENV} (redshift; else profile or the AWS chain)."
    )
    secret_access_key: str | None = Field(default=None, description="IAM: its secret, as ${ENV} (redshift only).")

    @model_validator(mode="after")
    def _iam_keys(self) -> RedshiftWarehouseSpec:
        if self.iam and not (self.cluster_identifier or self.serverless_work_group):
            raise ValueError("a redshift warehouse with `iam: true` needs `cluster_identifier` or `serverless_work_group`")
        if not self.iam and (self.cluster_identifier or self.db_user or self.profile or self.access_key_id):
            raise ValueError("`cluster_identifier`, `db_user`, `profile` and `access_key_id` are for `iam: true`")
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("give `access_key_id` and `secret_access_key` together")
        return self


class BigQueryWarehouseSpec(EngineSpec):
    """BigQuery: `schema` is the dataset of traits and audiences (and `state.schema` the
    state's), in `project`."""

    type: Literal["bigquery"]
    project: str = Field(description="Google Cloud project holding the datasets (bigquery only).")
    billing_project: str | None = Field(
        default=None, description="Project the jobs run and are billed in, when not `project` (bigquery only)."
    )
    location: str | None = Field(default=None, description="Where jobs run and datasets are made, e.g. EU or europe-west1 (bigquery only).")
    credentials_file: str | None = Field(
        default=None,
        description="Service-account key file (JSON), relative to the project (bigquery; default: application default credentials).",
    )
    maximum_bytes_billed: int | None = Field(
        default=None,
        gt=0,
        description="Cost guard: a job that would bill more bytes fails before it runs (bigquery only).",
    )
    api_endpoint: str | None = Field(
        default=None, description="Another BigQuery API endpoint, e.g. a local emulator or a private one (bigquery only)."
    )
    anonymous: bool = Field(default=False, description="Send no credentials (an emulator; bigquery only).")


class SnowflakeWarehouseSpec(ServerSpec):
    type: Literal["snowflake"]
    # Either `url`, or these keys. Secrets as ${ENV}.
    account: str | None = Field(default=None, description="Snowflake account identifier, e.g. myorg-myaccount (snowflake only).")
    user: str | None = Field(default=None, description="Snowflake user (snowflake only).")
    password: str | None = Field(default=None, description="Snowflake password, as ${ENV} (snowflake; or a private key).")
    private_key_file: str | None = Field(
        default=None,
        description="PEM file of the key-pair auth private key, relative to the project (snowflake only).",
    )
    private_key: str | None = Field(
        default=None, description="The PEM private key itself, as ${ENV} (snowflake; instead of private_key_file)."
    )
    private_key_passphrase: str | None = Field(
        default=None, description="Passphrase of an encrypted private key, as ${ENV} (snowflake only)."
    )
    role: str | None = Field(default=None, description="Snowflake role to use (snowflake only).")
    warehouse: str | None = Field(default=None, description="Snowflake virtual warehouse (compute) to run queries on (snowflake only).")
    database: str | None = Field(default=None, description="Snowflake database holding the sources and our schemas (snowflake only).")

    @model_validator(mode="after")
    def _snowflake_keys(self) -> SnowflakeWarehouseSpec:
        if self.url:
            return self
        missing = [k for k in ("account", "user", "database") if not getattr(self, k)]
        if missing:
            raise ValueError(f"a snowflake warehouse needs `url` or {', '.join(f'`{k}`' for k in missing)}")
        if not (self.password or self.private_key_file or self.private_key):
            raise ValueError("a snowflake warehouse needs `password`, `private_key_file` or `private_key`")
        if self.private_key_file and self.private_key:
            raise ValueError("give `private_key_file` or `private_key`, not both")
        return self


AnyWarehouseSpec = DuckDBWarehouseSpec | PostgresWarehouseSpec | RedshiftWarehouseSpec | SnowflakeWarehouseSpec | BigQueryWarehouseSpec


def _duckdb_by_default(value: Any) -> Any:
    """`type:` may be left out: DuckDB, the embedded default."""
    if isinstance(value, dict) and "type" not in value:
        return {**value, "type": "duckdb"}
    return value


WarehouseSpec = Annotated[AnyWarehouseSpec, Field(discriminator="type"), BeforeValidator(_duckdb_by_default)]
