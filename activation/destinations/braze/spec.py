"""The `braze` destination's settings in syncs.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class BrazeDestinationSpec(Strict):
    type: Literal["braze"]
    api_key: str = Field(
        default="${BRAZE_API_KEY}",
        description="REST API key (Settings → APIs and Identifiers) with users.track, users.delete and, for "
        "`validate --remote`, custom_attributes.get (use ${ENV}).",
    )
    rest_endpoint: str = Field(description="The workspace's REST endpoint, e.g. https://rest.iad-01.braze.com (a local emulator in tests).")
    batch_size: int = Field(default=75, ge=1, le=75, description="Attribute objects per /users/track call (Braze's limit: 75).")
    delete_batch_size: int = Field(default=50, ge=1, le=50, description="external_ids per /users/delete call (Braze's limit: 50).")
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of each HTTP request.")
