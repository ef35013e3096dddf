"""The `intercom` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict

#: Intercom's regional API hosts (the workspace's region decides which one holds its data).
REGIONS = {"us": "https://api.intercom.io", "eu": "https://api.eu.intercom.io", "au": "https://api.au.intercom.io"}


class IntercomDestinationSpec(Strict):
    type: Literal["intercom"]
    token: str = Field(default="${INTERCOM_TOKEN}", description="Access token of the Intercom app (Bearer; use ${ENV}).")
    region: Literal["us", "eu", "au"] = Field(default="us", description="Where the workspace is hosted: us, eu or au.")
    base_url: str | None = Field(
        default=None, description="API root; default the region's (https://api.intercom.io, …); a local emulator in tests."
    )
    api_version: str = Field(default="2.14", description="The Intercom-Version header sent with every call.")
    role: Literal["user", "lead"] = Field(
        default="user", description="object contacts: the role of contacts this destination creates (leads match by email only)."
    )
    on_remove: Literal["archive", "delete"] = Field(
        default="archive",
        description="mode mirror, object contacts: archive a contact that left the model (restorable) or delete it for good. "
        "Companies are always deleted (Intercom cannot archive one).",
    )
    batch_size: int = Field(default=100, ge=1, le=500, description="Rows per batch (Intercom has no bulk write: one call per row).")
    concurrency: int = Field(
        default=4, ge=1, le=20, description="Calls in flight at once (Intercom allows 10,000 calls a minute per app, 25,000 per workspace)."
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of each HTTP request.")
