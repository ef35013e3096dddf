"""The `mailchimp` destination's settings in syncs.yaml (no SDK import: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from activation.project.strict import Strict


class MailchimpDestinationSpec(Strict):
    type: Literal["mailchimp"]
    api_key: str = Field(default="${MAILCHIMP_API_KEY}", description="Marketing API key, e.g. 0123…ab-us21 (use ${ENV}).")
    server: str | None = Field(default=None, description="Data center (us21); default: the part of the API key after its last '-'.")
    base_url: str | None = Field(
        default=None, description="API root, default https://<server>.api.mailchimp.com/3.0; a local emulator in tests."
    )
    list_id: str | None = Field(default=None, description="The audience's list id (Audience settings → Audience ID).")
    list_name: str | None = Field(default=None, description="Or the audience's exact name (looked up once per run).")
    status_if_new: Literal["subscribed", "pending", "transactional"] = Field(
        default="subscribed",
        description="Status of members this sync creates. subscribed asserts you have consent; pending sends "
        "Mailchimp's opt-in email; transactional contacts get no marketing email.",
    )
    on_remove: Literal["archive", "unsubscribe", "untag"] | None = Field(
        default=None,
        description="What removal does: mirror archives by default (or unsubscribes); audience untags by default "
        "(archive / unsubscribe also do that after untagging).",
    )
    batch_size: int = Field(default=500, ge=1, le=500, description="Members per batch call (Mailchimp's limit: 500).")
    concurrency: int = Field(
        default=4, ge=1, le=10, description="API calls in flight at once (Mailchimp allows 10 per account, shared with other apps)."
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=120.0, gt=0, description="Timeout of each HTTP request.")

    @model_validator(mode="after")
    def _one_list(self) -> MailchimpDestinationSpec:
        if (self.list_id is None) == (self.list_name is None):
            raise ValueError("a mailchimp destination needs exactly one of `list_id` or `list_name` (the audience)")
        return self
