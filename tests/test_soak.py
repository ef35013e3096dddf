"""The soak, short form (the long form is `python bench/soak.py`): runs of ten syncs to six
emulated vendors (webhook, HubSpot, Salesforce, Mailchimp, Meta, Google Ads) while the source
mutates, random faults fire and runs are SIGKILLed; after one clean run every destination must
equal the model exactly. Its figures are printed at the end of `make test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from activation_emulators.soak import SoakConfig, run_soak


@pytest.mark.slow
def test_soak_under_faults_and_kills_loses_and_corrupts_nothing(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    cfg = SoakConfig(users=300, accounts=60, rounds=8, kill_rate=0.5, fault_rate=0.1, seed=11)
    report = run_soak(tmp_path / "soak", cfg)
    record_property("soak", "\n".join(report.lines()))
    assert report.kills >= 2, "the soak must really kill runs"
    assert sum(report.faults.values()) >= 3, "the soak must really inject faults"
    assert report.lost == 0, "\n".join(report.lines())
    assert report.corrupted == 0, "\n".join(report.lines())
    assert report.clean_runs == 1, "one clean run must bring every destination back to the model"
