"""The `google_ads` destination's settings in syncs.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.destinations.ad_spec import AdIdentifierOptions


class GoogleAdsDestinationSpec(AdIdentifierOptions):
    type: Literal["google_ads"]
    customer_id: str = Field(
        pattern=r"^(\$\{.+\}|[0-9]{3}-?[0-9]{3}-?[0-9]{4})$", description="The account holding the user lists (123-456-7890 or digits)."
    )
    login_customer_id: str | None = Field(
        default=None,
        pattern=r"^(\$\{.+\}|[0-9]{3}-?[0-9]{3}-?[0-9]{4})$",
        description="The manager account you sign in through, when customer_id is one of its clients.",
    )
    developer_token: str = Field(default="${GOOGLE_ADS_DEVELOPER_TOKEN}", description="Use ${ENV}.")
    client_id: str = Field(default="${GOOGLE_ADS_CLIENT_ID}", description="OAuth client id.")
    client_secret: str = Field(default="${GOOGLE_ADS_CLIENT_SECRET}", description="Use ${ENV}.")
    refresh_token: str = Field(default="${GOOGLE_ADS_REFRESH_TOKEN}", description="Use ${ENV}; exchanged for access tokens.")
    base_url: str = Field(default="https://googleads.googleapis.com", description="REST host; a local emulator in tests.")
    token_url: str = Field(default="https://oauth2.googleapis.com/token", description="OAuth token endpoint.")
    api_version: str = Field(default="v24", pattern=r"^v[0-9]+$")
    create_lists: bool = Field(
        default=True, description="Create the Customer Match user list named by a sync's `audience:` when there is none."
    )
    membership_life_span_days: int = Field(
        default=10_000, ge=0, le=10_000, description="Days a member stays in lists this creates (10000: no expiry)."
    )
    ad_user_data_consent: Literal["GRANTED", "DENIED", "UNSPECIFIED"] | None = Field(
        default=None, description="Consent sent with each job (required for users in the EEA)."
    )
    ad_personalization_consent: Literal["GRANTED", "DENIED", "UNSPECIFIED"] | None = None
    batch_size: int = Field(
        default=100_000, ge=1, le=1_000_000, description="Rows per offline user data job (Google advises few large jobs per list)."
    )
    operations_per_request: int = Field(
        default=10_000, ge=1, le=100_000, description="Operations per addOperations call (≤ 100,000 identifiers)."
    )
    job_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long to poll a started job for its outcome before leaving it to Google (jobs take 10 min to 24 h).",
    )
    job_poll_seconds: float = Field(default=5.0, gt=0, description="First wait between polls of a running job.")
