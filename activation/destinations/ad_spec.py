"""What both ad-platform destinations accept (their specs extend it); no SDK import, as in every spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation.project.strict import Strict


class AdIdentifierOptions(Strict):
    """How an ad destination treats identifiers (both ad platforms)."""

    invalid_identifiers: Literal["reject", "drop"] = Field(
        default="reject",
        description="A value that cannot be normalised (an email without @, a phone without a country code): "
        "reject the row (default), or drop that identifier and match on the others.",
    )
    phone_region: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{2}$",
        description="ISO 3166-1 country whose national phone numbers are expected when the row maps no country "
        "(e.g. US reads (650) 555-1212 as +16505551212). Unset: a phone without a country code is invalid.",
    )
    max_retries: int = Field(default=5, ge=0, le=20)
    retry_backoff_seconds: float = Field(
        default=1.0, gt=0, description="First wait after a throttled or failed call; doubles with each retry (jittered)."
    )
    timeout_seconds: float = Field(default=120.0, gt=0, description="Timeout of each HTTP request.")
