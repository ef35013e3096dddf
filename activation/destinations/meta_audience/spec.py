"""The `meta_audience` destination's settings in syncs.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.destinations.ad_spec import AdIdentifierOptions


class MetaAudienceDestinationSpec(AdIdentifierOptions):
    type: Literal["meta_audience"]
    token: str = Field(default="${META_TOKEN}", description="A system-user access token with ads_management (use ${ENV}).")
    ad_account: str = Field(pattern=r"^(\$\{.+\}|(act_)?[0-9]+)$", description="The ad account, act_<id> or <id>.")
    app_secret: str | None = Field(default=None, description="The app secret (use ${ENV}): every call then carries appsecret_proof.")
    base_url: str = Field(default="https://graph.facebook.com", description="Graph API host; a local emulator in tests.")
    api_version: str = Field(default="v25.0", pattern=r"^v[0-9]+\.[0-9]+$")
    create_audiences: bool = Field(
        default=True, description="Create the custom audience named by a sync's `audience:` when the ad account has none."
    )
    customer_file_source: Literal["USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"] = Field(
        default="USER_PROVIDED_ONLY", description="Where the data of audiences this creates comes from (Meta requires it)."
    )
    batch_size: int = Field(default=10_000, ge=1, le=10_000, description="Rows per add request (Meta's limit: 10,000).")
    remove_batch_size: int = Field(default=250, ge=1, le=10_000, description="Most rows per remove request.")
    max_url_bytes: int = Field(
        default=18_000,
        ge=1_000,
        le=65_000,
        description="Longest remove request URL: removals travel in the query string, and Meta drops long ones "
        "(reported: 250 single-key rows, about 18 KB, work; 300 fail).",
    )
