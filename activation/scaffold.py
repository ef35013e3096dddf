"""`activation init`: a new project that validates, plans and runs as created."""

from __future__ import annotations

from pathlib import Path

SYNCS_YAML = """\
# yaml-language-server: $schema=./.activation/schema.json
# activation project: see `activation --help` and the README for every key.
version: 1
warehouse: {type: duckdb, path: .activation/warehouse.duckdb, schema: activation}
include: [audiences/*.yaml]

entities:
  user: {table: sample.users, key: user_id, identifiers: [email]}

traits:
  orders_90d:
    entity: user
    sql: syncs/traits/orders_90d.sql
  loyalty:                      # a weighted score from thresholds, compiled to SQL
    entity: user
    score:
      orders_90d: {weight: 1.0, points: [[1, 1], [3, 3], [10, 5]]}

destinations:
  users_csv: {type: file, path: out/users.csv, format: csv}
  # crm_hook: {type: webhook, url: "${CRM_WEBHOOK_URL}", headers: {Authorization: "Bearer ${CRM_TOKEN}"}}

syncs:
  users_to_csv:
    from: user
    to: users_csv
    mode: mirror
    match: {email: email}
    fields:
      name: name
      orders_90d: orders_90d
      loyalty: loyalty
      tier: "{{ 'gold' if row.loyalty >= 3 else 'standard' }}"
    schedule: "*/30 * * * *"
    max_removal: 20%
"""

TRAIT_SQL = """\
-- A trait returns the entity key and one column named after the trait.
select user_id, count(*) as orders_90d
from sample.orders
where ordered_at >= date '{{ var("today", "2026-01-01") }}' - interval 90 day
group by user_id
"""

AUDIENCE_YAML = """\
audiences:
  loyal_customers:
    entity: user
    where: "loyalty >= 3"
"""

SAMPLE_SQL = """
CREATE SCHEMA IF NOT EXISTS sample;
CREATE OR REPLACE TABLE sample.users AS
SELECT 'u' || i AS user_id, 'user' || i || '@example.com' AS email, 'User ' || i AS name FROM range(1, 51) t(i);
CREATE OR REPLACE TABLE sample.orders AS
SELECT 'u' || (1 + i % 50) AS user_id, DATE '2026-01-01' - CAST(i % 120 AS INTEGER) AS ordered_at FROM range(400) t(i);
"""


#: Commit syncs.yaml, the SQL and .activation/schema.json (editors read it); never the
#: warehouse file, the state or the files a file destination writes (they hold people's data).
GITIGNORE = """# activation: keep the schema for editors; the local warehouse, state and outputs stay local
.activation/*
!.activation/schema.json
out/
"""


def scaffold(directory: Path, *, sample_data: bool = True) -> list[Path]:
    """Create the files of a new project; existing files are left alone."""
    files = {
        directory / "syncs.yaml": SYNCS_YAML,
        directory / "syncs" / "traits" / "orders_90d.sql": TRAIT_SQL,
        directory / "audiences" / "loyal.yaml": AUDIENCE_YAML,
    }
    if (directory / "syncs.yaml").exists():
        return []
    created = []
    for path, text in files.items():
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            created.append(path)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE)
        created.append(ignore)
    elif ".activation/" not in ignore.read_text():
        with ignore.open("a") as f:
            f.write(("\n" if ignore.read_text() and not ignore.read_text().endswith("\n") else "") + GITIGNORE)
        created.append(ignore)
    schema = directory / ".activation" / "schema.json"
    schema.parent.mkdir(parents=True, exist_ok=True)
    import json

    from activation.project.spec import json_schema

    schema.write_text(json.dumps(json_schema(), indent=2))
    created.append(schema)
    warehouse = directory / ".activation" / "warehouse.duckdb"
    if sample_data and not warehouse.exists():
        import duckdb

        con = duckdb.connect(str(warehouse))
        con.execute(SAMPLE_SQL)
        con.close()
        created.append(warehouse)
    return created
