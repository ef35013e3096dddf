"""A tiny ad-platform destination plugin for tests of lint and review warnings.

It is the file destination with the traits an ad platform declares (hashed fields, a
minimum audience size, a request rate). Tests register it in
`activation.destinations.REGISTRY` in place of `file`'s class (the spec stays `type: file`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import pytest

from activation.destinations import REGISTRY
from activation.destinations.base import SyncTarget
from activation.destinations.file.destination import FileDestination

HASHED = frozenset({"email", "phone"})


class AdAudienceFile(FileDestination):
    ad_platform: ClassVar[bool] = True
    min_audience_size: ClassVar[int | None] = 100
    max_batch_size: ClassVar[int] = 10

    def hashed_fields(self, target: SyncTarget) -> frozenset[str]:
        return HASHED & frozenset([*target.match_fields, *target.fields])

    def requests_per_second(self) -> float | None:
        return 1.0


@pytest.fixture
def ads(monkeypatch: pytest.MonkeyPatch) -> None:
    """`type: file` destinations are this ad platform for the test."""
    monkeypatch.setitem(REGISTRY, "file", replace(REGISTRY["file"], destination="ad_destination:AdAudienceFile"))
