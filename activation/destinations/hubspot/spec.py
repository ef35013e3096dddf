"""The `hubspot` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class HubSpotDestinationSpec(Strict):
    type: Literal["hubspot"]
    token: str = Field(default="${HUBSPOT_TOKEN}", description="Private app access token (use ${ENV}).")
    base_url: str = Field(default="https://api.hubapi.com", description="API host; a local emulator in tests.")
    requests_per_second: float = Field(default=9.0, gt=0, description="Client-side limit, under the app's quota (100 per 10 s on Starter).")
    max_retries: int = Field(default=5, ge=0, le=20)
    batch_size: int = Field(default=100, ge=1, le=100, description="Inputs per API call (HubSpot's limit: 100).")
    concurrency: int = Field(default=4, ge=1, le=16, description="API calls in flight at once (the rate limit still applies).")
    connect_timeout_seconds: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection to HubSpot.")
    read_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for HubSpot's answer; a write not answered in time may have been "
        "applied: its rows are left possibly delivered and resent next run.",
    )
