"""Pydantic models of `syncs.yaml`: the project as declared, before anything is compiled.

Every model forbids unknown keys so a typo is an error with a location, not a silent no-op.
Strings may hold `${ENV}` references; they are resolved only where a value is used
(see `project.secrets`), so a loaded `Project` never holds a secret.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from activation.destinations.registry import spec_union
from activation.project.schedule import Duration, ScheduleField
from activation.project.strict import NAME_PATTERN, Name, Strict  # noqa: F401
from activation.warehouse.spec import DuckDBWarehouseSpec, WarehouseSpec

if TYPE_CHECKING:
    DestinationSpec = Any
else:
    # One model per registered destination type (built-in and plugins), told apart by `type`.
    DestinationSpec = spec_union()


# ---------------------------------------------------------------- warehouse & state


class StateSpec(Strict):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the state store (sqlite:///…, postgresql://…). "
        "Omitted: the state lives in the warehouse itself, in `schema`, which lets the "
        "diff run as one set-based query there.",
    )
    schema_: Name = Field(default="activation_state", alias="schema")
    # Postgres only: a session holding a state table (a LOCK TABLE, a migration, a vacuum
    # full) must fail the command with its name, not hang a run for as long as it lasts.
    lock_timeout: Duration = Field(
        default=30.0,
        ge=0,
        description="Postgres: how long a statement of the state store "
        "waits for a lock another session holds before the command fails, naming it (0: forever).",
    )
    statement_timeout: Duration = Field(
        default=300.0,
        ge=0,
        description="Postgres: the longest a statement of the state store may run (0: no limit). The warehouse's model queries have none.",
    )


# ---------------------------------------------------------------- entities, traits, audiences


class EntitySpec(Strict):
    table: str = Field(description="Source table, e.g. analytics.users")
    key: str | list[str] = Field(description="Primary key column (or columns).")
    identifiers: list[str] = Field(default_factory=list)
    description: str | None = None

    @property
    def key_columns(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)


class ScoreComponent(Strict):
    weight: float = Field(ge=0)
    points: list[tuple[float, float]] = Field(
        min_length=1,
        description="[threshold, points] pairs: a value >= threshold earns those points "
        "(the highest threshold reached wins; below the lowest, or NULL, earns 0).",
    )

    @field_validator("points")
    @classmethod
    def _ascending(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        thresholds = [t for t, _ in v]
        if thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
            raise ValueError("thresholds must be strictly ascending")
        return v


class TraitSpec(Strict):
    entity: Name
    sql: str | None = Field(
        default=None,
        description="Inline SQL or a path to a .sql file. Must return the entity key and a column named after the trait.",
    )
    score: dict[Name, ScoreComponent] | None = Field(
        default=None,
        description="A weighted score: sum(weight * points) over other traits or entity columns.",
    )
    description: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TraitSpec:
        if (self.sql is None) == (self.score is None):
            raise ValueError("a trait needs exactly one of `sql` or `score`")
        return self


class AudienceSpec(Strict):
    entity: Name
    where: str | None = Field(default=None, description="SQL condition over the entity's traits.")
    sql: str | None = Field(default=None, description="SQL (inline or .sql path) returning the member keys.")
    description: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AudienceSpec:
        if (self.where is None) == (self.sql is None):
            raise ValueError("an audience needs exactly one of `where` or `sql`")
        return self


# ---------------------------------------------------------------- syncs

SyncMode = Literal["upsert", "update", "insert", "mirror", "audience"]
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _share(v: float | str) -> float:
    """'20%' or 0.2 → 0.2 (between 0 and 1)."""
    if isinstance(v, str):
        m = _PERCENT.match(v)
        if not m:
            raise ValueError("use a percentage like '20%' or a fraction like 0.2")
        v = float(m.group(1)) / 100
    if not 0 <= v <= 1:
        raise ValueError("must be between 0% and 100%")
    return float(v)


class SyncSpec(Strict):
    from_: Name | None = Field(
        default=None,
        alias="from",
        description="An entity (its traits table) or an audience.",
    )
    sql: str | None = Field(default=None, description="A SQL model (inline or .sql path) instead of `from`.")
    key: str | list[str] | None = Field(default=None, description="Key column(s); defaults to the entity's key.")
    to: Name
    object: str | None = Field(default=None, description="Destination object, e.g. contacts.")
    audience: str | None = Field(
        default=None,
        description="mode: audience: the list / campaign / custom audience at the destination, by name.",
    )
    mode: SyncMode = "upsert"
    match: dict[str, str] = Field(
        default_factory=dict,
        description="Destination identity field -> model column (or jinja expression).",
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Destination field -> model column, or a jinja expression over `row`.",
    )
    schedule: ScheduleField | None = Field(
        default=None,
        description='For the daemon: cron ("*/30 * * * *"), "every 30m", {every: 30m} or "manual" (omitted: the daemon does not run it).',
    )
    depends_on: list[Name] = Field(
        default_factory=list,
        description="Traits, audiences or entities to refresh before this sync, besides those `from:` and "
        "ref() already imply (e.g. a table its SQL reads by name).",
    )
    max_removal: float | str = Field(
        default="20%",
        validate_default=True,
        description="Largest share of delivered rows a run may remove before it stops.",
    )
    identity_conflicts: Literal["reject", "first", "merge"] = Field(
        default="reject",
        description="Rows whose match values point at one record at the destination (say two users with one "
        "email, or emails that differ only by case at HubSpot): reject them all, with examples (default); keep the "
        "`first` by identity_order and reject the others; or `merge`: every one writes to the one record (the last "
        "write wins) and it is removed only when none of them is left. Ad audiences share identifiers freely.",
    )
    identity_order: str | None = Field(
        default=None,
        description="With identity_conflicts: first, which row keeps the record: a SQL ORDER BY over the model's "
        "columns, e.g. 'updated_at DESC' (default: the smallest key).",
    )
    tags: list[str] = Field(default_factory=list)
    batch_size: int | None = Field(default=None, ge=1)
    description: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SyncSpec:
        if (self.from_ is None) == (self.sql is None):
            raise ValueError("a sync needs exactly one of `from` or `sql`")
        if self.sql is not None and self.key is None:
            raise ValueError("a sync with `sql` needs `key`")
        if self.identity_order is not None and self.identity_conflicts != "first":
            raise ValueError("`identity_order` only applies with `identity_conflicts: first`")
        return self

    @field_validator("max_removal")
    @classmethod
    def _fraction(cls, v: float | str) -> float:
        return _share(v)

    @property
    def removal_limit(self) -> float:
        assert isinstance(self.max_removal, float)
        return self.max_removal


# ---------------------------------------------------------------- daemon


class AlertsSpec(Strict):
    slack_webhook_url: str | None = Field(default=None, description="A Slack incoming-webhook URL (use ${ENV}: it is a secret).")
    webhook_url: str | None = Field(default=None, description="Any URL: each alert is POSTed to it as a JSON object.")
    webhook_headers: dict[str, str] = Field(default_factory=dict, description="Headers for webhook_url; use ${ENV} for tokens.")
    on_failure: bool = Field(default=True, description="Alert when a sync fails or is blocked, and when it recovers.")
    rejected_rate: float | str | None = Field(
        default=None, description="Alert when a run rejects more than this share of the rows it handled ('5%' or 0.05)."
    )
    timeout: Duration = Field(default=10.0, gt=0, description="Per alert request.")

    @field_validator("rejected_rate")
    @classmethod
    def _rate(cls, v: float | str | None) -> float | None:
        return None if v is None else _share(v)

    @property
    def rejected_share(self) -> float | None:
        """`rejected_rate` as a share: the validator turned a '5%' into 0.05."""
        assert not isinstance(self.rejected_rate, str)
        return self.rejected_rate


class DaemonSpec(Strict):
    health_host: str = Field(default="127.0.0.1", description="Where /healthz and /metrics listen (loopback by default).")
    health_port: int | None = Field(default=9464, ge=0, le=65535, description="0: any free port (logged); null: no HTTP server.")
    lease_ttl: Duration = Field(
        default=60.0,
        ge=1,
        description="A running sync's lease lasts this long unless renewed (every third of it); "
        "a crashed daemon's syncs are taken over after it.",
    )
    shutdown_timeout: Duration = Field(
        default=30.0, gt=0, description="On SIGTERM/SIGINT, how long the running batch may take to finish before the daemon exits anyway."
    )
    backoff: Duration = Field(
        default=60.0, ge=0, description="After a failed run, skip the sync's slots for this long (doubling per failure)."
    )
    max_backoff: Duration = Field(default=3600.0, ge=0, description="The longest backoff.")
    timezone: str = Field(default="UTC", description="Time zone of cron schedules (an IANA name).")
    json_logs: bool = Field(default=False, description="One JSON object per log line.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    watch: bool = Field(default=False, description="Re-read syncs.yaml when it (or an included file) changes, as on SIGHUP.")
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as UTC or Europe/Paris)") from None
        return v


# ---------------------------------------------------------------- project


class Project(Strict):
    version: Literal[1] = 1
    name: str | None = None
    include: list[str] = Field(
        default_factory=list,
        description="Glob patterns of more YAML files (e.g. syncs/*.yaml) merged into this one.",
    )
    vars: dict[str, Any] = Field(default_factory=dict, description="Values for {{ var('x') }}.")
    warehouse: WarehouseSpec = Field(default_factory=DuckDBWarehouseSpec)
    state: StateSpec = Field(default_factory=StateSpec)
    entities: dict[Name, EntitySpec] = Field(default_factory=dict)
    traits: dict[Name, TraitSpec] = Field(default_factory=dict)
    audiences: dict[Name, AudienceSpec] = Field(default_factory=dict)
    destinations: dict[Name, DestinationSpec] = Field(default_factory=dict)
    syncs: dict[Name, SyncSpec] = Field(default_factory=dict)
    daemon: DaemonSpec = Field(default_factory=DaemonSpec, description="`activation daemon`: health server, leases, alerts, logs.")


def json_schema() -> dict[str, Any]:
    schema = Project.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "activation syncs.yaml"
    return schema
