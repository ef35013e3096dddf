"""The `iterable` destination's settings in syncs.yaml (nothing heavy imported: every spec is loaded to read a project)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class IterableDestinationSpec(Strict):
    type: Literal["iterable"]
    api_key: str = Field(default="${ITERABLE_API_KEY}", description="A server-side API key of the Iterable project (use ${ENV}).")
    base_url: str = Field(
        default="https://api.iterable.com",
        description="API root: https://api.iterable.com, or https://api.eu.iterable.com for a project in Iterable's EU data center.",
    )
    identify_by: Literal["email", "userId"] = Field(
        default="email",
        description="How the project identifies users: by email (email-based and hybrid projects) or by userId. The sync's "
        "`match:` names the same field.",
    )
    list_id: str | None = Field(
        default=None,
        description="mode audience: the static list's id (Audience → Lists); default: the list named by the sync's `audience:`, "
        "looked up once per run and created when missing.",
    )
    batch_size: int = Field(default=1000, ge=1, le=1000, description="Users per bulkUpdate / subscribe / unsubscribe call.")
    requests_per_second: float = Field(
        default=4.5,
        gt=0,
        le=5.0,
        description="Bulk calls per second (bulkUpdate allows 5 per second per project, shared by every app; "
        "the default keeps a tenth under it, so calls spaced at the limit do not arrive over it).",
    )
    deletes_per_second: float = Field(
        default=20.0,
        gt=0,
        le=100.0,
        description="User deletes per second (mirror removals: one call per user; Iterable allows 100/s per project).",
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_seconds: float = Field(default=60.0, gt=0, description="Timeout of each HTTP request.")
