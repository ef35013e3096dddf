"""Pydantic models of the `destinations:` section of syncs.yaml, one per destination type
(`type:` picks the model). Secrets are `${ENV}` references, resolved only where used."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from activation.project.strict import Strict


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
