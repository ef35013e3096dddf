"""A small project of people with emails, phones and names, for the ad-platform tests.

Expected hashes are computed here from the raw rows with hashlib and plain string handling,
independently of activation's normaliser.
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import duckdb
from conftest import Project

PEOPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS src;
CREATE OR REPLACE TABLE src.people AS
SELECT 'p' || lpad(CAST(i AS VARCHAR), 4, '0') AS person_id,
       '  Person.' || i || '@Example.COM ' AS email,
       CASE WHEN i % 5 = 0 THEN NULL ELSE '+44 20 7946 ' || lpad(CAST(i AS VARCHAR), 4, '0') END AS phone,
       'Ann-' || chr(CAST(97 + i % 26 AS INTEGER)) AS first_name,
       'Smith' AS last_name,
       CASE WHEN i % 2 = 0 THEN 'GB' ELSE 'US' END AS country,
       CASE WHEN i % 2 = 0 THEN 'SW1A ' || (i % 9) || 'AA' ELSE '9403' || (i % 10) END AS postal_code,
       i % 4 <> 3 AS member
FROM range({n}) t(i);
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class AdProject(Project):
    """A `conftest.Project` without the webhook receiver, with the people it holds."""

    def run(self, sync: str, expect: int | None = 0) -> dict[str, Any]:
        return self.json("run", sync, expect=expect)["syncs"][0]

    def people(self, members_only: bool = True) -> list[dict[str, Any]]:
        cols = ["person_id", "email", "phone", "first_name", "last_name", "country", "postal_code", "member"]
        rows = [dict(zip(cols, r, strict=False)) for r in self.sql(f"SELECT {', '.join(cols)} FROM src.people ORDER BY 1")]
        return [r for r in rows if r["member"] or not members_only]


def make_ad_project(root: Path, destinations: str, syncs: str, *, n: int = 60) -> AdProject:
    root.mkdir(parents=True, exist_ok=True)
    yaml = (
        textwrap.dedent("""
        version: 1
        warehouse: {type: duckdb, path: warehouse.duckdb}
        entities:
          person: {table: src.people, key: person_id}
        audiences:
          members: {entity: person, where: "member"}
        destinations:
        """)
        + textwrap.indent(textwrap.dedent(destinations).strip("\n"), "  ")
        + "\nsyncs:\n"
        + textwrap.indent(textwrap.dedent(syncs).strip("\n"), "  ")
        + "\n"
    )
    (root / "syncs.yaml").write_text(yaml)
    p = AdProject(root, None)
    con = duckdb.connect(str(p.warehouse))
    con.execute(PEOPLE_SQL.format(n=n))
    con.close()
    return p


def set_trunk_and_impossible_phones(p: AdProject) -> None:
    """p0001: a trunk "(0)" after the country code (to be dropped); p0002: a digit too many."""
    p.sql("UPDATE src.people SET phone = '+44 (0)20 7946 0958' WHERE person_id = 'p0001'")  # the trunk (0): fine, dropped
    p.sql("UPDATE src.people SET phone = '+44 20 7946 00021' WHERE person_id = 'p0002'")  # a digit too many: impossible


def assert_impossible_phone_rejected(
    p: AdProject,
    sync: str,
    result: dict[str, Any],
    people: set[frozenset[tuple[str, str]]],
    email_key: str,
    phone_key: str,
    e164_prefix: str,
) -> None:
    """After `set_trunk_and_impossible_phones`: the run delivered the 44 other members, p0001's
    phone without its trunk 0, and rejected p0002, its reason (the field and the rule, never the
    number) in `history` and `status`. `people`: what the platform holds."""
    assert (result["status"], result["acknowledged"], result["plan"]["counts"]["rejected"]) == ("partial", 44, 1)
    reason = "field 'phone': not a possible phone number (too long for its country)"
    [rejected] = p.json("history", sync)["runs"][0]["rejected_rows"]
    assert (rejected["row_key"], rejected["reason"]) == ("p0002", reason)
    assert [(e["row_key"], e["reason"]) for s in p.json("status", expect=1)["syncs"] if s["sync"] == sync for e in s["rejected_rows"]] == [
        ("p0002", reason)
    ]
    assert len(people) == 44 and not any((email_key, sha("person.2@example.com")) in person for person in people)
    phones = {v for person in people for k, v in person if k == phone_key}
    assert sha(e164_prefix + "442079460958") in phones and sha(e164_prefix + "4402079460958") not in phones


def raw_identifiers(people: list[dict[str, Any]]) -> list[bytes]:
    """Every form a raw email or phone could take on the wire (as typed, normalised, digits)."""
    forms: set[str] = set()
    for p in people:
        forms |= {p["email"].strip(), p["email"].strip().lower()}
        if p["phone"]:
            digits = "".join(c for c in p["phone"] if c.isdigit())
            forms |= {p["phone"], digits, "+" + digits, digits[2:]}
    return [f.encode() for f in forms] + [f.replace("@", "%40").encode() for f in forms if "@" in f]
