"""The `zendesk` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from activation.project.strict import Strict


class ZendeskDestinationSpec(Strict):
    type: Literal["zendesk"]
    subdomain: str = Field(default="${ZENDESK_SUBDOMAIN}", description="The account's subdomain: acme for acme.zendesk.com.")
    email: str | None = Field(default=None, description="The agent's email, with `token` (API token auth: {email}/token:{token}).")
    token: str | None = Field(default=None, description="An API token (Admin Center → Apps and integrations → Zendesk API); use ${ENV}.")
    oauth_token: str | None = Field(default=None, description="Or an OAuth access token (sent as Bearer); use ${ENV}.")
    base_url: str | None = Field(
        default=None, description="API root without /api/v2, default https://<subdomain>.zendesk.com; a local emulator in tests."
    )
    batch_size: int = Field(
        default=100, ge=1, le=100, description="Users per create_or_update_many / destroy_many job (Zendesk's limit: 100)."
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=60.0, gt=0, description="Timeout of each HTTP request.")
    job_poll_seconds: float = Field(default=1.0, gt=0, description="Wait between polls of a background job's status.")
    job_timeout_seconds: float = Field(
        default=600.0, gt=0, description="How long to wait for a job to complete; after that its rows are left possibly delivered."
    )

    @model_validator(mode="after")
    def _one_auth(self) -> ZendeskDestinationSpec:
        if (self.token is None) == (self.oauth_token is None):
            raise ValueError("a zendesk destination needs exactly one of `token` (with `email`) or `oauth_token`")
        if self.token is not None and not self.email:
            raise ValueError("a zendesk API token needs `email`, the agent's address it belongs to")
        return self
