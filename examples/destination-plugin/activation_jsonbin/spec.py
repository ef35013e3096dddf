"""What `destinations: {x: {type: jsonbin, ...}}` accepts in syncs.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class JsonBinSpec(Strict):
    type: Literal["jsonbin"]
    url: str = Field(description="Where each batch is POSTed; ${ENV} allowed.")
    token: str | None = Field(default=None, description="Sent as a bearer token (use ${ENV}).")
    max_retries: int = Field(default=3, ge=0, le=10)
