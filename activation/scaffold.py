"""`activation init`: a new project that validates, plans and runs as created."""

from __future__ import annotations

from pathlib import Path

SYNCS_YAML = """\
# yaml-language-server: $schema=./.activation/schema.json
# activation project: see `activation --help` and the README for every key.
version: 1
warehouse: @WAREHOUSE@
include: [audiences/*.yaml]

entities:
  user: {table: sample.users, key: user_id, identifiers: [email]}@TABLES@

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
where ordered_at >= {since}
group by user_id
"""

#: `init --warehouse`: the warehouse block (secrets from the environment) and 90 days before
#: the `today` variable, in each engine's SQL
TODAY = """'{{ var("today", "2026-01-01") }}'"""
WAREHOUSES: dict[str, tuple[str, str]] = {
    "duckdb": ("{type: duckdb, path: .activation/warehouse.duckdb, schema: activation}", f"date {TODAY} - interval 90 day"),
    "postgres": ('{type: postgres, url: "${DATABASE_URL}", schema: activation}', f"date {TODAY} - interval '90 days'"),
    "redshift": (
        '{type: redshift, url: "${REDSHIFT_URL}", schema: activation}   # redshift://user:password@cluster…:5439/dev',
        f"date {TODAY} - interval '90 days'",
    ),
    "snowflake": (
        '{type: snowflake, account: "${SNOWFLAKE_ACCOUNT}", user: "${SNOWFLAKE_USER}", password: "${SNOWFLAKE_PASSWORD}", '
        'database: "${SNOWFLAKE_DATABASE}", warehouse: "${SNOWFLAKE_WAREHOUSE}", schema: activation}',
        f"dateadd(day, -90, to_date({TODAY}))",
    ),
    "bigquery": (
        '{type: bigquery, project: "${GOOGLE_CLOUD_PROJECT}", schema: activation}   # credentials: application default',
        f"date_sub(date {TODAY}, interval 90 day)",
    ),
}

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


def scaffold(directory: Path, *, sample_data: bool = True, warehouse: str = "duckdb") -> list[Path]:
    """Create the files of a new project; existing files are left alone. The sample
    warehouse is made for DuckDB only: on another engine the project reads sample.users and
    sample.orders, tables to point at your own."""
    block, since = WAREHOUSES[warehouse]
    tables = "   # point it at your table (and sample.orders in the trait)" if warehouse != "duckdb" else ""
    files = {
        directory / "syncs.yaml": _yaml(SYNCS_YAML, block, tables),
        directory / "syncs" / "traits" / "orders_90d.sql": TRAIT_SQL.format(since=since),
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
    sample = directory / ".activation" / "warehouse.duckdb"
    if sample_data and warehouse == "duckdb" and not sample.exists():
        import duckdb

        con = duckdb.connect(str(sample))
        con.execute(SAMPLE_SQL)
        con.close()
        created.append(sample)
    return created


def _yaml(template: str, warehouse: str, tables: str) -> str:
    """SYNCS_YAML with its two blanks filled (its braces are YAML's and Jinja's)."""
    return template.replace("@WAREHOUSE@", warehouse).replace("@TABLES@", tables)
