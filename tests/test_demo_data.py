"""The demo dataset: deterministic, consistent, with the stories the demo audiences need,
and every trait SQL file of the example project runs on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import jinja2
import pytest

from activation_emulators.demo.data import TABLES, generate, mutate

ROOT = Path(__file__).resolve().parent.parent
TRAITS_DIR = ROOT / "syncs" / "traits"
TODAY = date(2026, 11, 1)
ENTITIES = {"user": ("analytics.users", "user_id"), "account": ("analytics.accounts", "account_id")}
ORDER_KEYS = {
    "accounts": "account_id",
    "users": "user_id",
    "subscriptions": "subscription_id",
    "invoices": "invoice_id",
    "product_events": "event_id",
    "support_tickets": "ticket_id",
    "contact_touches": "ALL",
}

# The two demo audiences, written directly against the source tables. "Current"
# subscription = the open one (ended_at IS NULL: active, or past_due and still on the plan).
AT_RISK_ENTERPRISE_SQL = f"""
    WITH current_sub AS (
        SELECT account_id, plan, seats FROM analytics.subscriptions WHERE ended_at IS NULL
    ), active_users AS (
        SELECT account_id, count(DISTINCT user_id) AS n FROM analytics.product_events
        WHERE occurred_at >= DATE '{TODAY}' - INTERVAL '30 days' GROUP BY account_id
    ), tickets AS (
        SELECT account_id, count(*) AS n FROM analytics.support_tickets
        WHERE created_at >= DATE '{TODAY}' - INTERVAL '30 days' GROUP BY account_id
    )
    SELECT s.account_id
    FROM current_sub AS s
    LEFT JOIN active_users AS a USING (account_id)
    LEFT JOIN tickets AS t USING (account_id)
    WHERE s.plan = 'enterprise'
      AND CAST(coalesce(a.n, 0) AS DOUBLE) / s.seats < 0.3   -- low adoption of the contract
      AND coalesce(t.n, 0) >= 3
"""
STALLED_ONBOARDING_SQL = f"""
    SELECT u.user_id
    FROM analytics.users AS u
    LEFT JOIN analytics.product_events AS e
      ON e.user_id = u.user_id
     AND e.event IN ('created_project', 'invited_teammate', 'connected_integration')
    WHERE u.signed_up_at >= DATE '{TODAY}' - INTERVAL '30 days'
    GROUP BY u.user_id
    HAVING count(DISTINCT e.event) < 2
"""


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    generate(c)
    yield c
    c.close()


def _rows(c: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return c.execute(sql).fetchall()


def _one(c: duckdb.DuckDBPyConnection, sql: str):
    return c.execute(sql).fetchall()[0][0]


def _snapshot(c: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {t: _rows(c, f"SELECT * FROM analytics.{t} ORDER BY {ORDER_KEYS[t]}") for t in TABLES}


# ---------------------------------------------------------------- determinism


def test_same_seed_same_content_other_seed_other_content(con: duckdb.DuckDBPyConnection) -> None:
    other = duckdb.connect()
    counts = generate(other)
    assert counts == {t: _one(con, f"SELECT count(*) FROM analytics.{t}") for t in TABLES}
    assert _snapshot(other) == _snapshot(con)
    # Regenerating in place drops and recreates: same content again.
    generate(other)
    assert _snapshot(other) == _snapshot(con)
    generate(other, seed=8)
    assert _rows(other, "SELECT * FROM analytics.users ORDER BY user_id") != _rows(con, "SELECT * FROM analytics.users ORDER BY user_id")
    other.close()


def test_today_anchors_every_timestamp(con: duckdb.DuckDBPyConnection) -> None:
    midnight = datetime(TODAY.year, TODAY.month, TODAY.day)
    columns = {
        "accounts": ["created_at"],
        "users": ["signed_up_at", "last_seen_at"],
        "subscriptions": ["started_at", "ended_at"],
        "invoices": ["paid_at"],
        "product_events": ["occurred_at"],
        "support_tickets": ["created_at", "solved_at"],
        "contact_touches": ["touched_at"],
    }
    for table, cols in columns.items():
        for col in cols:
            latest = _one(con, f"SELECT max({col}) FROM analytics.{table}")
            assert latest < midnight, (table, col, latest)
    # A different `today` moves everything.
    c = duckdb.connect()
    generate(c, accounts=20, today=date(2020, 1, 1))
    assert _one(c, "SELECT max(occurred_at) FROM analytics.product_events") < datetime(2020, 1, 1)
    c.close()


# ---------------------------------------------------------------- consistency


def test_referential_integrity_and_identities(con: duckdb.DuckDBPyConnection) -> None:
    orphans = {
        "users": "SELECT count(*) FROM analytics.users u ANTI JOIN analytics.accounts a USING (account_id)",
        "subscriptions": "SELECT count(*) FROM analytics.subscriptions s ANTI JOIN analytics.accounts a USING (account_id)",
        "invoices": "SELECT count(*) FROM analytics.invoices i ANTI JOIN analytics.accounts a USING (account_id)",
        "tickets": "SELECT count(*) FROM analytics.support_tickets t ANTI JOIN analytics.accounts a USING (account_id)",
        "ticket users": """SELECT count(*) FROM analytics.support_tickets t
                           LEFT JOIN analytics.users u USING (user_id)
                           WHERE t.user_id IS NOT NULL AND (u.user_id IS NULL OR u.account_id <> t.account_id)""",
        "events": """SELECT count(*) FROM analytics.product_events e LEFT JOIN analytics.users u USING (user_id)
                     WHERE u.user_id IS NULL OR u.account_id <> e.account_id""",
        "touches": "SELECT count(*) FROM analytics.contact_touches t ANTI JOIN analytics.users u USING (user_id)",
    }
    for what, sql in orphans.items():
        assert _one(con, sql) == 0, what

    assert _one(con, "SELECT count(*) FROM analytics.users WHERE email IS NULL") == 0
    assert _one(con, "SELECT count(DISTINCT email) = count(*) FROM analytics.users")
    assert _one(con, "SELECT count(DISTINCT domain) = count(*) FROM analytics.accounts")
    assert _one(con, "SELECT count(DISTINCT event_id) = count(*) FROM analytics.product_events")
    # E-mails are lower-case and at the account's domain; domains are lower-case.
    assert (
        _one(
            con,
            """SELECT count(*) FROM analytics.users u JOIN analytics.accounts a USING (account_id)
                        WHERE u.email <> lower(u.email) OR NOT u.email LIKE '%@' || a.domain""",
        )
        == 0
    )
    assert _one(con, "SELECT count(*) FROM analytics.accounts WHERE domain <> lower(domain)") == 0
    assert (
        _one(con, "SELECT count(*) FROM analytics.users WHERE phone IS NOT NULL AND NOT regexp_full_match(phone, '\\+[1-9][0-9]{7,14}')")
        == 0
    )
    assert 0 < _one(con, "SELECT count(*) FROM analytics.users WHERE phone IS NULL") < _one(con, "SELECT count(*) FROM analytics.users") / 2
    assert _one(con, "SELECT count(*) FROM analytics.accounts WHERE NOT regexp_full_match(country, '[A-Z]{2}')") == 0
    # At most one open subscription per account (so "the current plan" is well defined),
    # and an open one is active or past_due.
    assert (
        _one(
            con,
            """SELECT count(*) FROM (SELECT account_id FROM analytics.subscriptions
                        WHERE ended_at IS NULL GROUP BY account_id HAVING count(*) > 1)""",
        )
        == 0
    )
    assert _one(con, "SELECT count(*) FROM analytics.subscriptions WHERE (ended_at IS NULL) = (status = 'cancelled')") == 0
    assert _one(con, "SELECT count(*) FROM analytics.support_tickets WHERE (solved_at IS NULL) = (status = 'solved')") == 0
    assert _one(con, "SELECT count(*) FROM analytics.users WHERE last_seen_at < signed_up_at") == 0


def test_shape_is_believable(con: duckdb.DuckDBPyConnection) -> None:
    users, accounts = _one(con, "SELECT count(*) FROM analytics.users"), 300
    assert 7 * accounts <= users <= 13 * accounts
    lo, hi = _rows(con, "SELECT min(n), max(n) FROM (SELECT count(*) n FROM analytics.users GROUP BY account_id)")[0]
    assert lo == 1 and 30 <= hi <= 45
    assert 20_000 <= _one(con, "SELECT count(*) FROM analytics.product_events") <= 120_000
    # Enterprise accounts are bigger, and some accounts have an upgrade history.
    per_plan = dict(
        _rows(
            con,
            """SELECT s.plan, avg(n) FROM analytics.subscriptions s
                                  JOIN (SELECT account_id, count(*) n FROM analytics.users GROUP BY 1) USING (account_id)
                                  WHERE s.ended_at IS NULL GROUP BY s.plan""",
        )
    )
    assert per_plan["enterprise"] > per_plan["pro"] > per_plan["starter"] > per_plan["free"]
    assert _one(con, "SELECT count(*) FROM (SELECT account_id FROM analytics.subscriptions GROUP BY 1 HAVING count(*) > 1)") >= 20
    assert set(p for (p,) in _rows(con, "SELECT DISTINCT plan FROM analytics.subscriptions")) == {"free", "starter", "pro", "enterprise"}
    assert set(s for (s,) in _rows(con, "SELECT DISTINCT status FROM analytics.subscriptions")) == {"active", "cancelled", "past_due"}


def test_demo_audiences_are_plausible(con: duckdb.DuckDBPyConnection) -> None:
    at_risk = _rows(con, AT_RISK_ENTERPRISE_SQL)
    stalled = _rows(con, STALLED_ONBOARDING_SQL)
    assert 3 <= len(at_risk) <= 20, len(at_risk)
    assert 15 <= len(stalled) <= 120, len(stalled)


# ---------------------------------------------------------------- mutate


def test_mutate_changes_and_deletes_exactly_what_it_says() -> None:
    c = duckdb.connect()
    generate(c)
    before = {r[0]: r for r in _rows(c, "SELECT * FROM analytics.users")}
    out = mutate(c, change=12, delete=4)
    changed, deleted = out["changed_user_ids"], out["deleted_user_ids"]
    assert len(changed) == len(set(changed)) == 12
    assert len(deleted) == len(set(deleted)) == 4
    assert not set(changed) & set(deleted)

    after = {r[0]: r for r in _rows(c, "SELECT * FROM analytics.users")}
    assert set(before) - set(after) == set(deleted) and set(after) <= set(before)
    differing = {k for k in after if after[k] != before[k]}
    assert differing == set(changed)
    cols = [d[0] for d in c.execute("SELECT * FROM analytics.users LIMIT 0").description]
    title, seen = cols.index("title"), cols.index("last_seen_at")
    for k in changed:
        assert after[k][title] != before[k][title] and after[k][seen] > before[k][seen]

    gone = ", ".join(f"'{u}'" for u in deleted)
    assert _one(c, f"SELECT count(*) FROM analytics.product_events WHERE user_id IN ({gone})") == 0
    assert _one(c, f"SELECT count(*) FROM analytics.contact_touches WHERE user_id IN ({gone})") == 0
    assert _one(c, f"SELECT count(*) FROM analytics.support_tickets WHERE user_id IN ({gone})") == 0

    # Deterministic: the same mutation of the same data picks the same users.
    c2 = duckdb.connect()
    generate(c2)
    assert mutate(c2, change=12, delete=4) == out
    assert mutate(c2, change=3, delete=0, seed=5)["deleted_user_ids"] == []
    with pytest.raises(ValueError):
        mutate(c2, change=10**7, delete=1)
    c.close()
    c2.close()


# ---------------------------------------------------------------- scale


@pytest.mark.slow
def test_builds_at_scale() -> None:
    c = duckdb.connect()
    counts = generate(c, accounts=3000)
    assert counts["accounts"] == 3000
    assert 7 * 3000 <= counts["users"] <= 13 * 3000
    assert counts["product_events"] >= 200_000
    assert _one(c, "SELECT count(DISTINCT email) = count(*) FROM analytics.users")
    assert _one(c, "SELECT count(DISTINCT domain) = count(*) FROM analytics.accounts")
    c.close()


# ---------------------------------------------------------------- trait SQL files


def _trait_files() -> list[tuple[str, str, Path]]:
    return sorted((entity, path.stem, path) for entity in ENTITIES for path in (TRAITS_DIR / entity).glob("*.sql"))


def render_trait(path: Path, today: date = TODAY) -> str:
    """Render a trait template the way the project does, with a minimal context:
    source(entity) -> its table, var('today') -> the date, ref(trait) -> that trait's own
    rendered SQL as a subquery (traits of either entity, looked up by file name)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)

    def source(entity: str) -> str:
        return ENTITIES[entity][0]

    def var(name: str, default: object = None) -> object:
        if name == "today":
            return today.isoformat()
        if default is not None:
            return default
        raise LookupError(f"{path.name}: var({name!r}) is not defined")

    def ref(name: str) -> str:
        own = path.parent / f"{name}.sql"
        candidates = [own] + [TRAITS_DIR / e / f"{name}.sql" for e in ENTITIES]
        target = next((p for p in candidates if p.exists()), None)
        if target is None:
            raise LookupError(f"{path.name}: ref({name!r}) has no SQL file (a score trait?)")
        return f"({render_trait(target, today)})"

    return env.from_string(path.read_text()).render(source=source, var=var, ref=ref)


def test_trait_files_exist() -> None:
    assert {e for e, _, _ in _trait_files()} == set(ENTITIES)


@pytest.mark.parametrize(("entity", "trait", "path"), _trait_files(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_trait_sql_runs_on_demo_data(con: duckdb.DuckDBPyConnection, entity: str, trait: str, path: Path) -> None:
    table, key = ENTITIES[entity]
    sql = render_trait(path)
    assert "current_date" not in sql.lower() and "now()" not in sql.lower(), "traits must use var('today')"
    cur = con.execute(f"SELECT * FROM ({sql}) AS trait")
    columns = [d[0] for d in cur.description]
    rows = cur.fetchall()
    assert columns == [key, trait]
    keys = [r[0] for r in rows]
    assert None not in keys
    assert len(keys) == len(set(keys)), f"{trait}: duplicate {key}s"
    known = {k for (k,) in _rows(con, f"SELECT {key} FROM {table}")}
    assert set(keys) <= known
    assert any(r[1] is not None for r in rows), f"{trait} is NULL everywhere"
