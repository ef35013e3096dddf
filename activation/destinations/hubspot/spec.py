"""The `hubspot` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


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
