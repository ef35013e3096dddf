"""Property: after any change to the source, one run makes the destination equal the model,
and the SQL differ (state in the warehouse) and the merge differ (SQLite state) agree."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activation.project.loader import load_project
from activation.runner import plan_sync, run_sync
from activation.session import Session
from activation_emulators.webhook import WebhookReceiver

PROJECT = """
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
{state}
entities:
  thing: {{table: src.things, key: [region, id]}}
destinations:
  hook: {{type: webhook, url: "{url}", batch_size: 7}}
syncs:
  things:
    from: thing
    to: hook
    mode: mirror
    match: {{ident: ident}}
    fields: {{label: label, amount: amount, tag: "{{{{ (row.label or '') ~ '/' ~ row.region }}}}"}}
    max_removal: 100%
"""

keys = st.tuples(st.sampled_from(["eu", "us", "ÄÖ", "a b", "Z"]), st.integers(min_value=-5, max_value=40))
values = st.tuples(st.one_of(st.none(), st.text(max_size=6)), st.one_of(st.none(), st.integers(-(10**6), 10**6)))
tables = st.dictionaries(keys, values, max_size=25)


def write(con: duckdb.DuckDBPyConnection, rows: dict[tuple[str, int], tuple[Any, Any]]) -> None:
    con.execute("CREATE OR REPLACE TABLE src.things (region VARCHAR, id INTEGER, ident VARCHAR, label VARCHAR, amount BIGINT)")
    for (region, id_), (label, amount) in rows.items():
        con.execute("INSERT INTO src.things VALUES (?, ?, ?, ?, ?)", [region, id_, f"{region}:{id_}", label, amount])


def expected(rows: dict[tuple[str, int], tuple[Any, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{r}\x1f{i}": {"ident": f"{r}:{i}", "label": label, "amount": amount, "tag": f"{label or ''}/{r}"}
        for (r, i), (label, amount) in rows.items()
    }


def run(root: Path) -> Any:
    with Session(load_project(root), dry_run=True) as s:
        plan = plan_sync(s, s.prepare(["things"])["things"])
    with Session(load_project(root), dry_run=False) as s:
        s.state.migrate()
        result = run_sync(s, s.prepare(["things"])["things"], allow_removal=True)  # guards have their own tests
    assert result.status in ("success", "up_to_date"), result.error
    return plan


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=tables, after=tables)
def test_one_run_makes_the_destination_equal_the_model(before: dict, after: dict) -> None:
    plans = []
    with tempfile.TemporaryDirectory() as tmp:
        for state in ("", "state: {url: 'sqlite:///state.db'}"):
            with WebhookReceiver() as rx:
                root = Path(tmp) / f"p{len(plans)}"
                root.mkdir()
                (root / "syncs.yaml").write_text(PROJECT.format(state=state, url=rx.url))
                con = duckdb.connect(str(root / "warehouse.duckdb"))
                con.execute("CREATE SCHEMA src")
                write(con, before)
                con.close()
                run(root)
                assert rx.records("things") == expected(before)
                con = duckdb.connect(str(root / "warehouse.duckdb"))
                write(con, after)
                con.close()
                plan = run(root)
                assert rx.records("things") == expected(after)
                old, new = expected(before), expected(after)
                assert plan.counts.added == len(new.keys() - old.keys())
                assert plan.counts.removed == len(old.keys() - new.keys())
                assert plan.counts.changed == sum(1 for k in new.keys() & old.keys() if new[k] != old[k])
                plans.append(plan.model_dump())
    assert plans[0] == plans[1], "the SQL differ and the merge differ must agree"
