"""The `klaviyo` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class KlaviyoDestinationSpec(Strict):
    type: Literal["klaviyo"]
    api_key: str = Field(default="${KLAVIYO_API_KEY}", description="A private API key, pk_… (use ${ENV}).")
    base_url: str | None = Field(
        default=None, description="API host, default https://a.klaviyo.com (the SDK's own); a local emulator in tests."
    )
    list_id: str | None = Field(
        default=None,
        description="mode audience: the list's id (Lists & Segments → list → Settings); default: the list named by the "
        "sync's `audience:`, looked up once per run and created when missing.",
    )
    on_remove: Literal["suppress", "delete"] = Field(
        default="suppress",
        description="mode mirror: what a row leaving the model does to its profile. suppress (default, reversible): no more "
        "email marketing, and a returning row is unsuppressed; delete: a Data Privacy deletion request, which erases the "
        "profile and its whole history for good.",
    )
    batch_size: int = Field(default=1000, ge=1, le=10000, description="Profiles per bulk import job (Klaviyo's limit: 10,000 and 5 MB).")
    poll_seconds: float = Field(default=2.0, gt=0, le=60, description="Wait between two looks at an import job that is not done.")
    job_timeout_seconds: float = Field(
        default=1800.0, gt=0, description="Longest wait for an import job; after it the batch is possibly delivered and resent next run."
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=60.0, gt=0, description="Timeout of each HTTP request.")
