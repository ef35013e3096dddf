"""The `customerio` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class CustomerioDestinationSpec(Strict):
    type: Literal["customerio"]
    site_id: str = Field(default="${CUSTOMERIO_SITE_ID}", description="Track API site id (Settings → API Credentials → Track API Keys).")
    api_key: str = Field(default="${CUSTOMERIO_API_KEY}", description="Track API key of that site id (use ${ENV}).")
    region: Literal["us", "eu"] = Field(
        default="us", description="The workspace's data center: us (https://track.customer.io) or eu (https://track-eu.customer.io)."
    )
    url: str | None = Field(
        default=None,
        description="Track API root instead of the region's (a local emulator in tests, e.g. http://127.0.0.1:8093).",
    )
    identify_by: Literal["id", "email"] = Field(
        default="id",
        description="How the workspace identifies people: by id (case-sensitive) or by email (the workspace setting "
        "'email as identifier'; case-insensitive). The sync's `match:` names the same field.",
    )
    segment_id: str | None = Field(
        default=None,
        description="mode audience: the manual segment's numeric id (create it in Customer.io first); default: the sync's "
        "`audience:` when it is a number.",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=1000, description="People per /api/v2/batch call (also kept under its 500 KB) and ids per segment call."
    )
    requests_per_second: float = Field(
        default=50.0,
        gt=0,
        le=100.0,
        description="Calls per second (the Track API's fair-use limit is 100/s per workspace, v1 and v2 together).",
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of each HTTP request.")
