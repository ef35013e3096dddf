"""Pydantic models of `syncs.yaml`: the project as declared, before anything is compiled.

Every model forbids unknown keys so a typo is an error with a location, not a silent no-op.
Strings may hold `${ENV}` references; they are resolved only where a value is used
(see `project.secrets`), so a loaded `Project` never holds a secret.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activation.project.schedule import Duration, ScheduleField

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------- warehouse & state


class WarehouseSpec(Strict):
    type: Literal["duckdb", "postgres", "snowflake"] = "duckdb"
    path: str | None = Field(
        default=".activation/warehouse.duckdb",
        description="DuckDB file, relative to the project directory (duckdb only).",
    )
    url: str | None = Field(
        default=None, description="SQLAlchemy URL (postgres, snowflake); may use ${ENV}."
    )
    schema_: Name = Field(
        default="activation",
        alias="schema",
        description="Schema where traits and audiences are materialised.",
    )
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$",
        description="DuckDB only: cap on DuckDB's memory inside this process, e.g. 300MB (default: "
        "DuckDB's, 80% of RAM). Beyond it, joins and sorts spill to a temporary directory.",
    )
    # Snowflake (type: snowflake): either `url`, or these keys. Secrets as ${ENV}.
    account: str | None = Field(
        default=None, description="Snowflake account identifier, e.g. myorg-myaccount (snowflake only)."
    )
    user: str | None = Field(default=None, description="Snowflake user (snowflake only).")
    password: str | None = Field(
        default=None, description="Snowflake password, as ${ENV} (snowflake; or a private key)."
    )
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
    warehouse: str | None = Field(
        default=None, description="Snowflake virtual warehouse (compute) to run queries on (snowflake only)."
    )
    database: str | None = Field(
        default=None, description="Snowflake database holding the sources and our schemas (snowflake only)."
    )

    @model_validator(mode="after")
    def _snowflake_keys(self) -> WarehouseSpec:
        if self.type != "snowflake" or self.url:
            return self
        missing = [k for k in ("account", "user", "database") if not getattr(self, k)]
        if missing:
            raise ValueError(f"a snowflake warehouse needs `url` or {', '.join(f'`{k}`' for k in missing)}")
        if not (self.password or self.private_key_file or self.private_key):
            raise ValueError("a snowflake warehouse needs `password`, `private_key_file` or `private_key`")
        if self.private_key_file and self.private_key:
            raise ValueError("give `private_key_file` or `private_key`, not both")
        return self


class StateSpec(Strict):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the state store (sqlite:///…, postgresql://…). "
        "Omitted: the state lives in the warehouse itself, in `schema`, which lets the "
        "diff run as one set-based query there.",
    )
    schema_: Name = Field(default="activation_state", alias="schema")


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
        description="Inline SQL or a path to a .sql file. Must return the entity key and a "
        "column named after the trait.",
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
    sql: str | None = Field(
        default=None, description="SQL (inline or .sql path) returning the member keys."
    )
    description: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AudienceSpec:
        if (self.where is None) == (self.sql is None):
            raise ValueError("an audience needs exactly one of `where` or `sql`")
        return self


# ---------------------------------------------------------------- destinations


class FileDestinationSpec(Strict):
    type: Literal["file"]
    path: str = Field(description="Output file, relative to the project directory.")
    format: Literal["csv", "jsonl"] = "csv"


class WebhookDestinationSpec(Strict):
    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers; use ${ENV} for tokens."
    )
    batch_size: int = Field(default=500, ge=1, le=100_000)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)


class HubSpotDestinationSpec(Strict):
    type: Literal["hubspot"]
    token: str = Field(default="${HUBSPOT_TOKEN}", description="Private app access token (use ${ENV}).")
    base_url: str = Field(default="https://api.hubapi.com", description="API host; a local emulator in tests.")
    requests_per_second: float = Field(
        default=9.0, gt=0, description="Client-side limit, under the app's quota (100 per 10 s on Starter)."
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    batch_size: int = Field(default=100, ge=1, le=100, description="Inputs per API call (HubSpot's limit: 100).")
    concurrency: int = Field(default=4, ge=1, le=16, description="API calls in flight at once (the rate limit still applies).")


class SalesforceDestinationSpec(Strict):
    type: Literal["salesforce"]
    instance_url: str | None = Field(default=None, description="https://yourorg.my.salesforce.com (with session_id).")
    session_id: str | None = Field(default=None, description="An access token (use ${ENV}).")
    username: str | None = None
    password: str | None = Field(default=None, description="Use ${ENV}.")
    security_token: str | None = Field(default=None, description="Use ${ENV}.")
    domain: str = Field(default="login", description="login, test (sandbox) or a My Domain prefix.")
    consumer_key: str | None = Field(default=None, description="Connected app key, for JWT auth.")
    private_key_file: str | None = Field(default=None, description="PEM key for JWT auth, relative to the project.")
    api_version: str = "59.0"
    bulk_threshold: int = Field(
        default=2000, ge=0,
        description="A push (up to 10,000 rows, or the sync's batch_size) larger than this goes through "
        "Bulk API 2.0; smaller ones through sObject Collections, 200 records per call.",
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    transport_url: str | None = Field(
        default=None,
        description="Send every request (login included) to this base URL instead of Salesforce; "
        "for local emulators, e.g. http://127.0.0.1:8443.",
    )
    timeout_seconds: float = Field(default=120.0, gt=0, description="Timeout of each HTTP request.")
    bulk_poll_seconds: float = Field(
        default=5.0, gt=0, description="Wait before polling a Bulk API 2.0 job, and between polls (at most ~2 s more)."
    )


class AdIdentifierOptions(Strict):
    """How an ad destination treats identifiers (both ad platforms)."""

    invalid_identifiers: Literal["reject", "drop"] = Field(
        default="reject",
        description="A value that cannot be normalised (an email without @, a phone without a country code): "
        "reject the row (default), or drop that identifier and match on the others.",
    )
    phone_region: str | None = Field(
        default=None, pattern=r"^[A-Za-z]{2}$",
        description="ISO 3166-1 country whose national phone numbers are expected when the row maps no country "
        "(e.g. US reads (650) 555-1212 as +16505551212). Unset: a phone without a country code is invalid.",
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    retry_backoff_seconds: float = Field(
        default=1.0, gt=0, description="First wait after a throttled or failed call; doubles with each retry (jittered).")
    timeout_seconds: float = Field(default=120.0, gt=0, description="Timeout of each HTTP request.")


class MetaAudienceDestinationSpec(AdIdentifierOptions):
    type: Literal["meta_audience"]
    token: str = Field(default="${META_TOKEN}", description="A system-user access token with ads_management (use ${ENV}).")
    ad_account: str = Field(pattern=r"^(\$\{.+\}|(act_)?[0-9]+)$", description="The ad account, act_<id> or <id>.")
    app_secret: str | None = Field(
        default=None, description="The app secret (use ${ENV}): every call then carries appsecret_proof.")
    base_url: str = Field(default="https://graph.facebook.com", description="Graph API host; a local emulator in tests.")
    api_version: str = Field(default="v25.0", pattern=r"^v[0-9]+\.[0-9]+$")
    create_audiences: bool = Field(
        default=True, description="Create the custom audience named by a sync's `audience:` when the ad account has none.")
    customer_file_source: Literal["USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"] = Field(
        default="USER_PROVIDED_ONLY", description="Where the data of audiences this creates comes from (Meta requires it).")
    batch_size: int = Field(default=10_000, ge=1, le=10_000, description="Rows per add request (Meta's limit: 10,000).")
    remove_batch_size: int = Field(default=250, ge=1, le=10_000, description="Most rows per remove request.")
    max_url_bytes: int = Field(
        default=18_000, ge=1_000, le=65_000,
        description="Longest remove request URL: removals travel in the query string, and Meta drops long ones "
        "(reported: 250 single-key rows, about 18 KB, work; 300 fail).")


class GoogleAdsDestinationSpec(AdIdentifierOptions):
    type: Literal["google_ads"]
    customer_id: str = Field(pattern=r"^(\$\{.+\}|[0-9]{3}-?[0-9]{3}-?[0-9]{4})$",
                             description="The account holding the user lists (123-456-7890 or digits).")
    login_customer_id: str | None = Field(
        default=None, pattern=r"^(\$\{.+\}|[0-9]{3}-?[0-9]{3}-?[0-9]{4})$",
        description="The manager account you sign in through, when customer_id is one of its clients.")
    developer_token: str = Field(default="${GOOGLE_ADS_DEVELOPER_TOKEN}", description="Use ${ENV}.")
    client_id: str = Field(default="${GOOGLE_ADS_CLIENT_ID}", description="OAuth client id.")
    client_secret: str = Field(default="${GOOGLE_ADS_CLIENT_SECRET}", description="Use ${ENV}.")
    refresh_token: str = Field(default="${GOOGLE_ADS_REFRESH_TOKEN}", description="Use ${ENV}; exchanged for access tokens.")
    base_url: str = Field(default="https://googleads.googleapis.com", description="REST host; a local emulator in tests.")
    token_url: str = Field(default="https://oauth2.googleapis.com/token", description="OAuth token endpoint.")
    api_version: str = Field(default="v24", pattern=r"^v[0-9]+$")
    create_lists: bool = Field(
        default=True, description="Create the Customer Match user list named by a sync's `audience:` when there is none.")
    membership_life_span_days: int = Field(
        default=10_000, ge=0, le=10_000, description="Days a member stays in lists this creates (10000: no expiry).")
    ad_user_data_consent: Literal["GRANTED", "DENIED", "UNSPECIFIED"] | None = Field(
        default=None, description="Consent sent with each job (required for users in the EEA).")
    ad_personalization_consent: Literal["GRANTED", "DENIED", "UNSPECIFIED"] | None = None
    batch_size: int = Field(
        default=100_000, ge=1, le=1_000_000,
        description="Rows per offline user data job (Google advises few large jobs per list).")
    operations_per_request: int = Field(
        default=10_000, ge=1, le=100_000, description="Operations per addOperations call (≤ 100,000 identifiers).")
    job_wait_seconds: float = Field(
        default=60.0, ge=0,
        description="How long to poll a started job for its outcome before leaving it to Google (jobs take 10 min to 24 h).")
    job_poll_seconds: float = Field(default=5.0, gt=0, description="First wait between polls of a running job.")


class MailchimpDestinationSpec(Strict):
    type: Literal["mailchimp"]
    api_key: str = Field(default="${MAILCHIMP_API_KEY}", description="Marketing API key, e.g. 0123…ab-us21 (use ${ENV}).")
    server: str | None = Field(
        default=None, description="Data center (us21); default: the part of the API key after its last '-'.")
    base_url: str | None = Field(
        default=None, description="API root, default https://<server>.api.mailchimp.com/3.0; a local emulator in tests.")
    list_id: str | None = Field(default=None, description="The audience's list id (Audience settings → Audience ID).")
    list_name: str | None = Field(default=None, description="Or the audience's exact name (looked up once per run).")
    status_if_new: Literal["subscribed", "pending", "transactional"] = Field(
        default="subscribed",
        description="Status of members this sync creates. subscribed asserts you have consent; pending sends "
        "Mailchimp's opt-in email; transactional contacts get no marketing email.")
    on_remove: Literal["archive", "unsubscribe", "untag"] | None = Field(
        default=None,
        description="What removal does: mirror archives by default (or unsubscribes); audience untags by default "
        "(archive / unsubscribe also do that after untagging).")
    batch_size: int = Field(default=500, ge=1, le=500, description="Members per batch call (Mailchimp's limit: 500).")
    concurrency: int = Field(default=4, ge=1, le=10, description="API calls in flight at once (Mailchimp allows 10 per account, shared with other apps).")
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=120.0, gt=0, description="Timeout of each HTTP request.")

    @model_validator(mode="after")
    def _one_list(self) -> MailchimpDestinationSpec:
        if (self.list_id is None) == (self.list_name is None):
            raise ValueError("a mailchimp destination needs exactly one of `list_id` or `list_name` (the audience)")
        return self


DestinationSpec = Annotated[
    Union[FileDestinationSpec, WebhookDestinationSpec, HubSpotDestinationSpec, SalesforceDestinationSpec,
          MetaAudienceDestinationSpec, GoogleAdsDestinationSpec, MailchimpDestinationSpec],
    Field(discriminator="type"),
]


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
    sql: str | None = Field(
        default=None, description="A SQL model (inline or .sql path) instead of `from`."
    )
    key: str | list[str] | None = Field(
        default=None, description="Key column(s); defaults to the entity's key."
    )
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
        default=None, description='For the daemon: cron ("*/30 * * * *"), "every 30m", {every: 30m} or "manual" '
        "(omitted: the daemon does not run it).")
    depends_on: list[Name] = Field(
        default_factory=list,
        description="Traits, audiences or entities to refresh before this sync, besides those `from:` and "
        "ref() already imply (e.g. a table its SQL reads by name).")
    max_removal: float | str = Field(
        default="20%",
        validate_default=True,
        description="Largest share of delivered rows a run may remove before it stops.",
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
        default=None, description="Alert when a run rejects more than this share of the rows it handled ('5%' or 0.05).")
    timeout: Duration = Field(default=10.0, gt=0, description="Per alert request.")

    @field_validator("rejected_rate")
    @classmethod
    def _rate(cls, v: float | str | None) -> float | None:
        return None if v is None else _share(v)


class DaemonSpec(Strict):
    health_host: str = Field(default="127.0.0.1", description="Where /healthz and /metrics listen (loopback by default).")
    health_port: int | None = Field(default=9464, ge=0, le=65535, description="0: any free port (logged); null: no HTTP server.")
    lease_ttl: Duration = Field(
        default=60.0, ge=1, description="A running sync's lease lasts this long unless renewed (every third of it); "
        "a crashed daemon's syncs are taken over after it.")
    shutdown_timeout: Duration = Field(
        default=30.0, gt=0, description="On SIGTERM/SIGINT, how long the running batch may take to finish before the daemon exits anyway.")
    backoff: Duration = Field(default=60.0, ge=0, description="After a failed run, skip the sync's slots for this long (doubling per failure).")
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
    warehouse: WarehouseSpec = Field(default_factory=WarehouseSpec)
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
