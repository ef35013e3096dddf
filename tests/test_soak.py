"""The soak, short form (the long form is `python bench/soak.py`): runs of twenty-two syncs to
twelve emulated vendors (webhook, HubSpot, Salesforce, Mailchimp, Meta, Google Ads, Braze,
Iterable, Klaviyo, Intercom, Customer.io, Zendesk) while the source mutates, random faults fire and runs are SIGKILLed; emails go A -> B -> A across rounds (and
kills), pairs of users share an email (case aside) or a phone and one of each pair leaves.
After one clean run every destination must equal the model exactly, counted by key and by
identity. Its figures are printed at the end of `make test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from activation_emulators.soak import SoakConfig, SoakReport, postgres_available, run_soak


def assert_exact(report: SoakReport) -> None:
    text = "\n".join(report.lines())
    assert report.kills >= 1, "the soak must really kill runs\n" + text
    assert sum(report.faults.values()) >= 3, "the soak must really inject faults\n" + text
    ident = report.identity
    assert ident["back"] >= 1 and ident["back_next_round"] >= 1, "emails must go A -> B -> A\n" + text
    assert ident["email_pairs_broken"] >= 1 and ident["phone_pairs_broken"] >= 1, "shared identities must lose a row\n" + text
    assert all(c.expected < c.rows for name, c in report.syncs.items() if name == "users_to_hubspot"), (
        "some rows must share a record\n" + text
    )
    assert report.lost == 0, text
    assert report.corrupted == 0, text
    assert report.clean_runs == 1, "one clean run must bring every destination back to the model\n" + text


@pytest.mark.slow
def test_soak_under_faults_and_kills_loses_and_corrupts_nothing(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    cfg = SoakConfig(users=300, accounts=60, rounds=8, kill_rate=0.5, fault_rate=0.1, seed=11)
    report = run_soak(tmp_path / "soak", cfg)
    record_property("soak", "\n".join(report.lines()))
    assert report.kills >= 2, "the soak must really kill runs"
    assert_exact(report)


@pytest.mark.slow
def test_soak_on_postgres_loses_and_corrupts_nothing(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    """The same on the Postgres server: warehouse, source and state in schemas of this run's own."""
    if (why := postgres_available()) is not None:
        pytest.skip(why)
    cfg = SoakConfig(users=150, accounts=20, rounds=5, kill_rate=0.5, fault_rate=0.1, email_change_rate=0.02, backend="postgres", seed=5)
    report = run_soak(tmp_path / "soak", cfg)
    record_property("soak", "\n".join(report.lines()))
    assert_exact(report)
