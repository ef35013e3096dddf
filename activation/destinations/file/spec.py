"""The `file` destination's settings in syncs.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class FileDestinationSpec(Strict):
    type: Literal["file"]
    path: str = Field(description="Output file, relative to the project directory.")
    format: Literal["csv", "jsonl"] = "csv"
