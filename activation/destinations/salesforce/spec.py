"""The `salesforce` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class SalesforceDestinationSpec(Strict):
    type: Literal["salesforce"]
    instance_url: str | None = Field(default=None, description="https://yourorg.my.salesforce.com (with session_id).")
    session_id: str | None = Field(default=None, description="An access token (use ${ENV}).")
    username: str | None = None
    password: str | None = Field(default=None, description="Use ${ENV}.")
    security_token: str | None = Field(default=None, description="Use ${ENV}.")
    domain: str = Field(default="login", description="login, test (sandbox) or a My Domain prefix.")
    consumer_key: str | None = Field(default=None, description="Connected app key, for JWT auth.")
    private_key_file: str | None = Field(default=None, description="PEM key for JWT auth, relative to the project.")
    api_version: str = "59.0"
    bulk_threshold: int = Field(
        default=2000,
        ge=0,
        description="A push (up to 10,000 rows, or the sync's batch_size) larger than this goes through "
        "Bulk API 2.0; smaller ones through sObject Collections, 200 records per call.",
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    transport_url: str | None = Field(
        default=None,
        description="Send every request (login included) to this base URL instead of Salesforce; "
        "for local emulators, e.g. http://127.0.0.1:8443.",
    )
    timeout_seconds: float = Field(default=120.0, gt=0, description="Timeout of each HTTP request.")
    bulk_poll_seconds: float = Field(
        default=5.0, gt=0, description="Wait before polling a Bulk API 2.0 job, and between polls (at most ~2 s more)."
    )
