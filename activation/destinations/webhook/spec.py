"""The `webhook` destination's settings in syncs.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class WebhookDestinationSpec(Strict):
    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers; use ${ENV} for tokens.")
    batch_size: int = Field(default=500, ge=1, le=100_000)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
