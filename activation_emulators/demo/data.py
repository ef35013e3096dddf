"""A deterministic, believable B2B SaaS dataset in DuckDB for the demo and the tests.

`generate()` builds schema `analytics` with accounts, users, subscriptions, invoices,
product events, support tickets and contact touches; `mutate()` simulates "some source
rows changed" between two sync runs.

Design notes:

* Everything is a pure function of (accounts, seed, today). `today` anchors every time
  range (all generated timestamps are before midnight of `today`); the real clock is never
  read, so the demo's traits and audiences are reproducible.
* Accounts and subscriptions (one row per account, or a few) are drawn in Python with a
  seeded `random.Random`. Everything per-user or per-event is generated in DuckDB SQL from
  `range()` and `hash(hash(<row coordinates>, seed, '<salt>'))` (see `_Rand`): each random
  draw is a hash of where it is used, not the next value of a stream, so the SQL is
  order-independent and `accounts=30000` (~290k users, ~5M events) builds in ~10 s.
  `hash()` is DuckDB's, so the content is stable for a given DuckDB version.
* The data carries the stories the demo audiences look for: some enterprise accounts are
  "declining" (most of their users stopped using the product 5+ weeks ago, and they filed
  a burst of tickets in the last 30 days), and some recent signups never completed the
  onboarding steps.
"""

from __future__ import annotations

import math
import random
import re
from datetime import date, datetime, timedelta
from typing import Any

import duckdb

SCHEMA = "analytics"
TABLES: tuple[str, ...] = (
    "accounts",
    "users",
    "subscriptions",
    "invoices",
    "product_events",
    "support_tickets",
    "contact_touches",
)
PLANS: tuple[str, ...] = ("free", "starter", "pro", "enterprise")
ONBOARDING_EVENTS: tuple[str, ...] = ("created_project", "invited_teammate", "connected_integration")
EVENTS: tuple[str, ...] = ("login", "exported_report", "used_api") + ONBOARDING_EVENTS

# Raw product usage is kept for this many days (like a typical analytics retention window);
# onboarding milestones are kept forever so `onboarding_steps` is meaningful for old users.
EVENT_RETENTION_DAYS = 180

# ---------------------------------------------------------------- vocabularies

_PREFIXES = [
    "Northwind",
    "Bluefin",
    "Copperleaf",
    "Brightwave",
    "Ironclad",
    "Silverline",
    "Redwood",
    "Granite",
    "Lumen",
    "Quanta",
    "Vertex",
    "Nimbus",
    "Harbor",
    "Summit",
    "Evergreen",
    "Polar",
    "Cobalt",
    "Falcon",
    "Orchid",
    "Meridian",
    "Atlas",
    "Pioneer",
    "Beacon",
    "Crescent",
    "Driftwood",
    "Ember",
    "Fathom",
    "Glacier",
    "Helix",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lighthouse",
    "Maple",
    "Nova",
    "Oakridge",
    "Pinnacle",
    "Quarry",
    "Riverbend",
    "Sable",
    "Tidewater",
    "Umber",
    "Vantage",
    "Willow",
    "Xenon",
    "Yarrow",
    "Zephyr",
    "Alder",
    "Birch",
    "Cascade",
    "Delta",
    "Echo",
    "Fjord",
    "Grove",
    "Horizon",
    "Ionic",
    "Jade",
    "Keystone",
    "Lattice",
    "Monarch",
    "Nimble",
    "Onyx",
    "Prism",
    "Quill",
    "Radiant",
    "Sierra",
    "Tandem",
    "Unity",
    "Vivid",
    "Wavelength",
    "Axiom",
    "Bolt",
    "Cinder",
    "Dynamo",
    "Elevate",
    "Flux",
    "Gamut",
    "Hearth",
    "Inlet",
    "Kinetic",
]

# (suffix, industry): the company name hints at what the company does.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("Analytics", "Software"),
    ("Labs", "Software"),
    ("Systems", "Software"),
    ("Software", "Software"),
    ("Cloud", "Software"),
    ("Data", "Software"),
    ("Security", "Software"),
    ("Logistics", "Logistics"),
    ("Freight", "Logistics"),
    ("Health", "Healthcare"),
    ("Medical", "Healthcare"),
    ("Clinics", "Healthcare"),
    ("Capital", "Financial Services"),
    ("Finance", "Financial Services"),
    ("Payments", "Financial Services"),
    ("Insurance", "Insurance"),
    ("Retail", "Retail"),
    ("Outfitters", "Retail"),
    ("Foods", "Food & Beverage"),
    ("Brewing", "Food & Beverage"),
    ("Manufacturing", "Manufacturing"),
    ("Industries", "Manufacturing"),
    ("Robotics", "Manufacturing"),
    ("Energy", "Energy"),
    ("Solar", "Energy"),
    ("Media", "Media"),
    ("Studios", "Media"),
    ("Games", "Media"),
    ("Learning", "Education"),
    ("Academy", "Education"),
    ("Travel", "Travel & Hospitality"),
    ("Hotels", "Travel & Hospitality"),
    ("Realty", "Real Estate"),
    ("Properties", "Real Estate"),
    ("Consulting", "Professional Services"),
    ("Partners", "Professional Services"),
    ("Legal", "Professional Services"),
    ("Telecom", "Telecommunications"),
    ("Networks", "Telecommunications"),
    ("Marketing", "Marketing & Advertising"),
)

# (ISO-2, weight, calling code, national number length, ccTLD or None)
_COUNTRIES: tuple[tuple[str, int, str, int, str | None], ...] = (
    ("US", 40, "1", 10, None),
    ("GB", 10, "44", 10, "co.uk"),
    ("DE", 9, "49", 11, "de"),
    ("FR", 6, "33", 9, "fr"),
    ("CA", 5, "1", 10, "ca"),
    ("NL", 4, "31", 9, "nl"),
    ("AU", 4, "61", 9, "com.au"),
    ("IN", 4, "91", 10, "in"),
    ("SE", 3, "46", 9, "se"),
    ("ES", 3, "34", 9, "es"),
    ("BR", 3, "55", 11, "com.br"),
    ("IE", 2, "353", 9, "ie"),
    ("CH", 2, "41", 9, "ch"),
    ("SG", 2, "65", 8, "sg"),
    ("JP", 2, "81", 10, "jp"),
    ("PL", 1, "48", 9, "pl"),
)

_CRM_OWNERS: dict[str, tuple[str, ...]] = {
    # Enterprise accounts have named account executives; self-serve ones share a small pool.
    "enterprise": ("Maya Chen", "Daniel Okafor", "Sofia Lindqvist", "Marcus Reed"),
    "pro": ("Priya Nair", "Tom Becker", "Lucia Alvarez"),
    "starter": ("Hannah Kim", "Oliver Grant", "Self-serve Team"),
    "free": ("Self-serve Team",),
}

_FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Paul",
    "Emily",
    "Steven",
    "Michelle",
    "Andrew",
    "Laura",
    "Joshua",
    "Emma",
    "Kevin",
    "Olivia",
    "Brian",
    "Sophia",
    "Lukas",
    "Lea",
    "Hugo",
    "Chloe",
    "Mateo",
    "Lucia",
    "Aarav",
    "Ananya",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Lars",
    "Ingrid",
    "Sean",
    "Aoife",
    "Rafael",
    "Camila",
    "Piotr",
    "Zofia",
    "Noah",
    "Mia",
    "Liam",
    "Amelia",
    "Arjun",
    "Priya",
    "Tomas",
    "Elena",
]
_LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Hill",
    "Campbell",
    "Mitchell",
    "Roberts",
    "Carter",
    "Mueller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Dubois",
    "Moreau",
    "Laurent",
    "Rossi",
    "Bianchi",
    "Kowalski",
    "Nowak",
    "Jansen",
    "Visser",
    "Andersson",
    "Nilsson",
    "Murphy",
    "Kelly",
    "Sato",
    "Suzuki",
    "Tanaka",
    "Patel",
    "Sharma",
    "Gupta",
    "Chen",
    "Wang",
    "Silva",
    "Santos",
    "Costa",
    "Fernandez",
]

# (title, weight); a few users have no title in the CRM.
_TITLES: tuple[tuple[str, int], ...] = (
    ("Software Engineer", 14),
    ("Data Analyst", 11),
    ("Product Manager", 9),
    ("Data Engineer", 7),
    ("Marketing Manager", 7),
    ("Customer Success Manager", 6),
    ("Operations Manager", 6),
    ("Account Executive", 5),
    ("Designer", 5),
    ("Sales Operations Analyst", 4),
    ("RevOps Lead", 3),
    ("Head of Growth", 3),
    ("VP Engineering", 2),
    ("CTO", 2),
    ("CEO", 2),
    ("Founder", 2),
)
_TITLE_NULL_SHARE = 0.05

# Per plan: monthly list price per seat (cents), product events per active user-day,
# support tickets per user-year, CRM touches (emails, calls, meetings) per user-year.
_PLAN_PARAMS: dict[str, dict[str, float]] = {
    "free": {"seat_cents": 0, "events_per_day": 0.06, "tickets_per_year": 0.2, "touches_per_year": 0.3},
    "starter": {"seat_cents": 1500, "events_per_day": 0.10, "tickets_per_year": 0.5, "touches_per_year": 1.0},
    "pro": {"seat_cents": 4000, "events_per_day": 0.13, "tickets_per_year": 0.7, "touches_per_year": 2.5},
    "enterprise": {"seat_cents": 11000, "events_per_day": 0.16, "tickets_per_year": 0.9, "touches_per_year": 5.0},
}

_MAX_ACCOUNT_AGE_DAYS = 6 * 365


# ---------------------------------------------------------------- SQL helpers


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _array(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


class _Rand:
    """SQL expressions for seeded pseudo-random draws: a hash of the row's coordinates.

    `u(...)` is uniform in [0, 1): the top 53 bits of a 64-bit hash, so it never reaches 1.
    The multi-argument hash is re-hashed because DuckDB combines argument hashes cheaply:
    draws that differ only in their salt came out ~0.87 correlated without it, ~0 with it.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def u(self, salt: str, *parts: str) -> str:
        args = ", ".join((*parts, str(self.seed), _lit(salt)))
        return f"((hash(hash({args})) >> 11) / 9007199254740992.0)"

    def exp(self, salt: str, *parts: str) -> str:
        """Exponential(1) draw: heavy-ish tail for per-user rates and durations."""
        return f"(-ln(1 - {self.u(salt, *parts)}))"

    def pick(self, values: tuple[str, ...] | list[str], salt: str, *parts: str) -> str:
        return f"{_array(values)}[1 + CAST(floor({self.u(salt, *parts)} * {len(values)}) AS BIGINT)]"

    def weighted(self, pairs: tuple[tuple[str, float], ...] | list[tuple[str, float]], salt: str, *parts: str) -> str:
        total = float(sum(w for _, w in pairs))
        u = self.u(salt, *parts)
        arms, acc = [], 0.0
        for value, weight in pairs[:-1]:
            acc += weight / total
            arms.append(f"WHEN {u} < {acc!r} THEN {_lit(value)}")
        return f"(CASE {' '.join(arms)} ELSE {_lit(pairs[-1][0])} END)"


def _plan_case(param: str) -> str:
    arms = " ".join(f"WHEN {_lit(p)} THEN {_PLAN_PARAMS[p][param]!r}" for p in PLANS)
    return f"(CASE plan {arms} END)"


def _ts(d: datetime) -> str:
    return f"TIMESTAMP '{d.isoformat(sep=' ')}'"


def _seconds(expr: str) -> str:
    """An interval of floor(expr) seconds."""
    return f"to_seconds(CAST(floor({expr}) AS BIGINT))"


# ---------------------------------------------------------------- accounts & subscriptions (Python)


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _build_accounts(n: int, seed: int, now: datetime) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Accounts and their subscription history, drawn row by row (small: one per account)."""
    rng = random.Random(seed)
    acc: dict[str, list[Any]] = {
        k: []
        for k in (
            "account_id",
            "acc_num",
            "name",
            "domain",
            "industry",
            "employees",
            "country",
            "created_at",
            "crm_owner",
            "plan",
            "n_users",
            "user_offset",
            "declining",
            "churned_at",
        )
    }
    sub: dict[str, list[Any]] = {
        k: []
        for k in (
            "subscription_id",
            "account_id",
            "plan",
            "seats",
            "mrr",
            "started_at",
            "ended_at",
            "status",
        )
    }
    used_names: set[str] = set()
    used_domains: set[str] = set()
    country_codes = [c[0] for c in _COUNTRIES]
    country_weights = [c[1] for c in _COUNTRIES]
    tlds = {c[0]: c[4] for c in _COUNTRIES}
    user_offset = 0
    sub_num = 0

    for i in range(1, n + 1):
        # Name: an unused (prefix, suffix) if one is easy to find, else a numbered duplicate
        # (only at sizes beyond the ~3,200 combinations).
        tries = 20 if len(used_names) < len(_PREFIXES) * len(_SUFFIXES) // 2 else 3
        for _ in range(tries):
            prefix, (suffix, industry) = rng.choice(_PREFIXES), rng.choice(_SUFFIXES)
            name = f"{prefix} {suffix}"
            if name not in used_names:
                break
        k = 2
        base_name = name
        while name in used_names:
            name = f"{base_name} {k}"
            k += 1
        used_names.add(name)

        country = rng.choices(country_codes, country_weights)[0]
        p, s = _slug(prefix), _slug(suffix)
        r = rng.random()
        if r < 0.55:
            domain = f"{p}{s}.com"
        elif r < 0.70:
            domain = f"{p}.io" if industry == "Software" else f"{p}{s}.co"
        elif r < 0.85 and tlds[country]:
            domain = f"{p}{s}.{tlds[country]}"
        else:
            domain = f"{rng.choice(('get', 'try', 'use'))}{p}.com" if rng.random() < 0.5 else f"{p}hq.com"
        if domain in used_domains:
            domain = f"{p}{s}.com"
        k = 2
        while domain in used_domains:
            domain = f"{p}{s}{k}.com"
            k += 1
        used_domains.add(domain)

        # Company size is log-normal; bigger companies buy bigger plans.
        employees = max(2, min(60_000, int(math.exp(rng.gauss(4.0, 1.6)))))
        if employees < 20:
            weights = (55, 35, 10, 0)
        elif employees < 200:
            weights = (30, 34, 28, 8)
        elif employees < 1000:
            weights = (14, 24, 36, 26)
        else:
            weights = (8, 12, 35, 45)
        plan = rng.choices(PLANS, weights)[0]

        # Somewhat more young accounts than old ones (the company is growing).
        age_days = 2 + int((_MAX_ACCOUNT_AGE_DAYS - 2) * rng.random() ** 1.2)
        created_at = now - timedelta(days=age_days) + timedelta(seconds=rng.randrange(86_400))

        # Users per account: 1-5 on free up to 18-40 on enterprise, skewed small within a plan.
        u = rng.random()
        n_users = {
            "free": 1 + int(6 * u**2.0),
            "starter": 2 + int(13 * u**1.5),
            "pro": 5 + int(28 * u**1.3),
            "enterprise": 18 + int(23 * u**0.9),
        }[plan]
        n_users = max(1, min(n_users, employees))

        # Seats: room to grow above the current head count (enterprise buys in blocks of 10).
        if plan == "free":
            seats = max(3, n_users)
        elif plan == "starter":
            seats = max(2, math.ceil(n_users * rng.uniform(1.0, 1.2)))
        else:
            block = 10 if plan == "enterprise" else 5
            seats = block * math.ceil(n_users * rng.uniform(1.05, 1.35) / block)
        discount = rng.uniform(0.0, 0.25) if plan == "enterprise" else (rng.uniform(0, 0.1) if rng.random() < 0.3 else 0.0)

        # Upgrade history: older accounts often started on a smaller plan.
        path = [plan]
        if age_days > 90:
            r = rng.random()
            if plan == "enterprise":
                path = ["starter", "pro", "enterprise"] if r < 0.12 else (["pro", "enterprise"] if r < 0.5 else path)
            elif plan == "pro":
                path = ["free", "pro"] if r < 0.15 else (["starter", "pro"] if r < 0.45 else path)
            elif plan == "starter":
                path = ["free", "starter"] if r < 0.35 else path
        cuts = sorted(rng.uniform(0.1, 0.85) for _ in range(len(path) - 1))
        starts = [created_at] + [created_at + (now - created_at) * c for c in cuts]
        starts = [s.replace(microsecond=0) for s in starts]

        # How the current (last) subscription ends.
        last_start = starts[-1]
        churn_p = {"free": 0.12, "starter": 0.10, "pro": 0.07, "enterprise": 0.03}[plan]
        churned_at: datetime | None = None
        status = "active"
        if (now - last_start).days > 45 and rng.random() < churn_p:
            span = (now - last_start) - timedelta(days=31)
            churned_at = (last_start + timedelta(days=30) + span * rng.random()).replace(microsecond=0)
            status = "cancelled"
        elif plan != "free" and rng.random() < 0.04:
            status = "past_due"
        # Declining: an established account whose usage is dropping (see _users_base_sql).
        declining = churned_at is None and age_days > 180 and rng.random() < (0.30 if plan == "enterprise" else 0.08)

        for j, step_plan in enumerate(path):
            sub_num += 1
            last = j == len(path) - 1
            step_seats = seats if last else max(1, round(seats * rng.uniform(0.4, 0.8)))
            if step_plan == "free":
                step_seats = max(3, min(step_seats, 5))
            mrr_cents = round(step_seats * _PLAN_PARAMS[step_plan]["seat_cents"] * (1 - discount))
            sub["subscription_id"].append(f"sub_{sub_num:05d}")
            sub["account_id"].append(f"acc_{i:04d}")
            sub["plan"].append(step_plan)
            sub["seats"].append(step_seats)
            sub["mrr"].append(f"{mrr_cents // 100}.{mrr_cents % 100:02d}")
            sub["started_at"].append(starts[j])
            # Superseded rows (upgraded away from) are closed as 'cancelled' at the upgrade.
            sub["ended_at"].append(churned_at if last else starts[j + 1])
            sub["status"].append(status if last else "cancelled")

        for key, value in (
            ("account_id", f"acc_{i:04d}"),
            ("acc_num", i),
            ("name", name),
            ("domain", domain),
            ("industry", industry),
            ("employees", employees),
            ("country", country),
            ("created_at", created_at.replace(microsecond=0)),
            ("crm_owner", rng.choice(_CRM_OWNERS[plan])),
            ("plan", plan),
            ("n_users", n_users),
            ("user_offset", user_offset),
            ("declining", declining),
            ("churned_at", churned_at),
        ):
            acc[key].append(value)
        user_offset += n_users
    return acc, sub


def _load_columns(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list[Any]], types: dict[str, str]) -> None:
    """Create a temp table from Python column lists in one statement (zipped unnest of list
    parameters), which is far faster than executemany for tens of thousands of rows."""
    select = ", ".join(f"CAST(unnest(${i + 1}) AS {types[c]}) AS {c}" for i, c in enumerate(columns))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {select}", list(columns.values()))


# ---------------------------------------------------------------- DDL

_DDL: dict[str, str] = {
    "accounts": """
        account_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        domain VARCHAR NOT NULL UNIQUE,
        industry VARCHAR NOT NULL,
        employees INTEGER NOT NULL,
        country VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        crm_owner VARCHAR NOT NULL""",
    "users": """
        user_id VARCHAR PRIMARY KEY,
        account_id VARCHAR NOT NULL,
        email VARCHAR NOT NULL UNIQUE,
        first_name VARCHAR NOT NULL,
        last_name VARCHAR NOT NULL,
        phone VARCHAR,
        title VARCHAR,
        country VARCHAR NOT NULL,
        signed_up_at TIMESTAMP NOT NULL,
        last_seen_at TIMESTAMP NOT NULL,
        email_opt_in BOOLEAN NOT NULL""",
    "subscriptions": """
        subscription_id VARCHAR PRIMARY KEY,
        account_id VARCHAR NOT NULL,
        plan VARCHAR NOT NULL CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
        seats INTEGER NOT NULL,
        mrr DECIMAL(12, 2) NOT NULL,
        started_at TIMESTAMP NOT NULL,
        ended_at TIMESTAMP,
        status VARCHAR NOT NULL CHECK (status IN ('active', 'cancelled', 'past_due'))""",
    "invoices": """
        invoice_id VARCHAR PRIMARY KEY,
        account_id VARCHAR NOT NULL,
        amount DECIMAL(12, 2) NOT NULL,
        paid_at TIMESTAMP NOT NULL""",
    # No primary-key index on events: millions of rows, and nothing looks them up by id.
    "product_events": """
        event_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        account_id VARCHAR NOT NULL,
        event VARCHAR NOT NULL,
        occurred_at TIMESTAMP NOT NULL""",
    "support_tickets": """
        ticket_id VARCHAR PRIMARY KEY,
        account_id VARCHAR NOT NULL,
        user_id VARCHAR,
        priority VARCHAR NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
        status VARCHAR NOT NULL CHECK (status IN ('open', 'pending', 'solved')),
        channel VARCHAR NOT NULL CHECK (channel IN ('email', 'chat', 'phone')),
        created_at TIMESTAMP NOT NULL,
        solved_at TIMESTAMP""",
    "contact_touches": """
        user_id VARCHAR NOT NULL,
        channel VARCHAR NOT NULL CHECK (channel IN ('email', 'call', 'meeting', 'chat')),
        touched_at TIMESTAMP NOT NULL""",
}


# ---------------------------------------------------------------- generate


def generate(
    con: duckdb.DuckDBPyConnection,
    *,
    accounts: int = 300,
    seed: int = 7,
    today: date = date(2026, 11, 1),
) -> dict[str, int]:
    """(Re)create the `analytics` demo tables; returns row counts per table."""
    if accounts < 1:
        raise ValueError("accounts must be >= 1")
    now = datetime(today.year, today.month, today.day)  # midnight: every timestamp is before it
    R = _Rand(seed)
    T = _ts(now)

    acc, sub = _build_accounts(accounts, seed, now)
    con.execute("BEGIN TRANSACTION")
    try:
        _load_columns(
            con,
            "_demo_acc",
            acc,
            {
                "account_id": "VARCHAR",
                "acc_num": "BIGINT",
                "name": "VARCHAR",
                "domain": "VARCHAR",
                "industry": "VARCHAR",
                "employees": "INTEGER",
                "country": "VARCHAR",
                "created_at": "TIMESTAMP",
                "crm_owner": "VARCHAR",
                "plan": "VARCHAR",
                "n_users": "BIGINT",
                "user_offset": "BIGINT",
                "declining": "BOOLEAN",
                "churned_at": "TIMESTAMP",
            },
        )
        _load_columns(
            con,
            "_demo_sub",
            sub,
            {
                "subscription_id": "VARCHAR",
                "account_id": "VARCHAR",
                "plan": "VARCHAR",
                "seats": "INTEGER",
                "mrr": "DECIMAL(12, 2)",
                "started_at": "TIMESTAMP",
                "ended_at": "TIMESTAMP",
                "status": "VARCHAR",
            },
        )
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for table in TABLES:
            con.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}")
            con.execute(f"CREATE TABLE {SCHEMA}.{table} ({_DDL[table]})")

        con.execute(f"""
            INSERT INTO {SCHEMA}.accounts
            SELECT account_id, name, domain, industry, employees, country, created_at, crm_owner
            FROM _demo_acc ORDER BY account_id""")
        con.execute(f"""
            INSERT INTO {SCHEMA}.subscriptions
            SELECT subscription_id, account_id, plan, seats, mrr, started_at, ended_at, status
            FROM _demo_sub ORDER BY subscription_id""")

        con.execute(_users_base_sql(R, T))
        con.execute(_events_sql(R, T))
        for statement in _users_sql():
            con.execute(statement)
        con.execute(_invoices_sql(R, T))
        con.execute(_tickets_sql(R, T))
        con.execute(_touches_sql(R, T))
        for tmp in ("_demo_acc", "_demo_sub", "_demo_u", "_demo_ev"):
            con.execute(f"DROP TABLE IF EXISTS {tmp}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {t: con.execute(f"SELECT count(*) FROM {SCHEMA}.{t}").fetchall()[0][0] for t in TABLES}


def _users_base_sql(R: _Rand, T: str) -> str:
    """Per-user facts that drive every other table: identity, signup, how active the user is
    and until when, and when (if ever) each onboarding step was done."""
    n = "user_num"
    countries = [(c[0], float(c[1])) for c in _COUNTRIES]
    title_pairs = [(t, float(w)) for t, w in _TITLES]
    # Onboarding: the step is done with probability p (much lower for "stalled" users), a
    # while after signup (exponential delay, mean in days), and only if that moment has
    # already happened and the user was still around.
    steps = (("created_project", 0.95, 0.2), ("invited_teammate", 0.75, 1.0), ("connected_integration", 0.60, 2.0))
    step_cols = []
    for idx, (event, p, mean_days) in enumerate(steps, start=1):
        delay = R.exp(f"ob{idx}_delay", n) + f" * {mean_days * 86400} + 300"
        at = f"signed_up_at + {_seconds(delay)}"
        done = R.u(f"ob{idx}", n) + f" < CASE WHEN stalled THEN 0.25 ELSE {p} END"
        step_cols.append(f"/* {event} */ CASE WHEN {done} AND {at} < active_until THEN {at} END AS ob{idx}_at")
    step_sql = ",\n                ".join(step_cols)
    return f"""
        CREATE OR REPLACE TEMP TABLE _demo_u AS
        WITH x AS (
            SELECT a.account_id, a.domain, a.plan, a.declining, a.churned_at,
                   a.country AS acc_country, a.created_at AS acc_created_at,
                   a.user_offset + j + 1 AS user_num, j
            FROM (SELECT *, unnest(range(n_users)) AS j FROM _demo_acc) AS a
        ), s AS (
            SELECT *,
                -- The first user is the one who created the account; the others joined
                -- since, most of them early on (u^2 skews toward the account's start).
                CASE WHEN j = 0
                     THEN acc_created_at + {_seconds(f"{R.u('signup', n)} * 3600")}
                     ELSE acc_created_at + {_seconds(f"pow({R.u('signup', n)}, 2) * date_diff('second', acc_created_at, {T})")}
                END AS signed_up_at,
                {R.pick(_FIRST_NAMES, "first", n)} AS first_name,
                {R.pick(_LAST_NAMES, "last", n)} AS last_name
            FROM x
        ), t AS (
            SELECT *,
                -- Some users leave (their company, or the product) at some point.
                CASE WHEN {R.u("left", n)} < 0.12
                     THEN signed_up_at + {_seconds(f"{R.u('left_at', n)} * date_diff('second', signed_up_at, {T})")}
                END AS left_at,
                -- Declining accounts: most users went quiet 5 to 19 weeks ago.
                CASE WHEN declining AND {R.u("quiet", n)} < 0.85
                     THEN {T} - INTERVAL 35 DAY - {_seconds(f"{R.u('quiet_at', n)} * 100 * 86400")}
                END AS quiet_draw,
                {R.u("stalled", n)} < 0.10 AS stalled
            FROM s
        ), t2 AS (
            -- ...only users who were there before going quiet.
            SELECT *, CASE WHEN quiet_draw > signed_up_at THEN quiet_draw END AS quiet_at FROM t
        ), v AS (
            SELECT *,
                greatest(signed_up_at, least({T}, left_at, churned_at, quiet_at)) AS active_until,
                -- Events per active day: exponential across users (a few power users).
                least(3.0, {_plan_case("events_per_day")} * {R.exp("rate", n)}
                           * CASE WHEN declining THEN 0.6 ELSE 1.0 END) AS rate
            FROM t2
        ), w AS (
            SELECT *,
                {step_sql}
            FROM v
        )
        SELECT
            user_num, printf('usr_%05d', user_num) AS user_id, account_id, domain, plan,
            declining, first_name, last_name,
            lower(CASE WHEN {R.u("fmt", n)} < 0.60 THEN first_name || '.' || last_name
                       WHEN {R.u("fmt", n)} < 0.75 THEN first_name || last_name
                       WHEN {R.u("fmt", n)} < 0.90 THEN left(first_name, 1) || last_name
                       ELSE first_name END) AS local_part,
            CASE WHEN {R.u("title_null", n)} < {_TITLE_NULL_SHARE} THEN NULL
                 ELSE {R.weighted(title_pairs, "title", n)} END AS title,
            CASE WHEN {R.u("abroad", n)} < 0.88 THEN acc_country
                 ELSE {R.weighted(countries, "country", n)} END AS country,
            {R.u("phone_null", n)} AS phone_draw,
            {R.u("phone", n)} AS phone_digits_draw,
            {R.u("opt_in", n)} < 0.72 AS email_opt_in,
            signed_up_at, active_until, rate, ob1_at, ob2_at, ob3_at
        FROM w
    """


def _phone_sql() -> str:
    """E.164 phone: +<calling code><national number>, first digit non-zero; 22% unknown."""
    calling = " ".join(f"WHEN '{c[0]}' THEN '{c[2]}'" for c in _COUNTRIES)
    nsn_len = " ".join(f"WHEN '{c[0]}' THEN {c[3]}" for c in _COUNTRIES)
    length = f"(CASE country {nsn_len} END)"
    return (
        f"CASE WHEN phone_draw < 0.22 THEN NULL ELSE '+' || (CASE country {calling} END) || "
        f"CAST(CAST(pow(10, {length} - 1) AS BIGINT) + CAST(floor(phone_digits_draw * 9 * pow(10, {length} - 1)) AS BIGINT) AS VARCHAR) END"
    )


def _events_sql(R: _Rand, T: str) -> str:
    """Regular usage inside the retention window, plus the onboarding milestones."""
    n = "user_num"
    # Weights of regular events; onboarding-type events only happen to users who did that
    # step (and after they did it), otherwise they are a login, so a stalled user stays stalled.
    mix = (
        ("login", 52.0),
        ("exported_report", 14.0),
        ("used_api", 10.0),
        ("created_project", 14.0),
        ("invited_teammate", 6.0),
        ("connected_integration", 4.0),
    )
    picked = R.weighted(mix, "event", n, "k")
    return f"""
        CREATE OR REPLACE TEMP TABLE _demo_ev AS
        WITH win AS (
            SELECT user_num, user_id, account_id, rate, ob1_at, ob2_at, ob3_at, active_until,
                   greatest(signed_up_at, {T} - INTERVAL {EVENT_RETENTION_DAYS} DAY) AS w_start
            FROM _demo_u
        ), cnt AS (
            SELECT *, date_diff('second', w_start, active_until) AS span,
                   CASE WHEN active_until > w_start
                        THEN CAST(floor(rate * date_diff('second', w_start, active_until) / 86400.0
                                        + {R.u("n_events", n)}) AS BIGINT)
                        ELSE 0 END AS n_events
            FROM win
        ), numbered AS (
            -- Each user owns a block of event numbers (n_events regular + 3 milestones), so
            -- ids come from a running sum over users instead of a sort of millions of events.
            -- (BIGINT: sum() yields HUGEINT, on which printf is ~8x slower.)
            SELECT *, CAST(sum(n_events + 3) OVER (ORDER BY user_num) - (n_events + 3) AS BIGINT) AS ev_base
            FROM cnt
        ), ev AS (
            SELECT user_num, user_id, account_id, ob1_at, ob2_at, ob3_at, ev_base + k + 1 AS ev_num,
                   w_start + {_seconds(f"{R.u('event_at', n, 'k')} * span")} AS occurred_at,
                   {picked} AS picked
            FROM (SELECT *, unnest(range(n_events)) AS k FROM numbered)
        )
        SELECT ev_num, user_num, user_id, account_id, occurred_at,
               CASE WHEN picked = 'created_project' AND NOT coalesce(occurred_at > ob1_at, false) THEN 'login'
                    WHEN picked = 'invited_teammate' AND NOT coalesce(occurred_at > ob2_at, false) THEN 'login'
                    WHEN picked IN ('connected_integration', 'used_api')
                         AND NOT coalesce(occurred_at > ob3_at, false) THEN 'login'
                    ELSE picked END AS event
        FROM ev
        UNION ALL
        SELECT ev_base + n_events + step AS ev_num, user_num, user_id, account_id,
               milestone_at AS occurred_at, event
        FROM (
            SELECT user_num, user_id, account_id, ev_base, n_events,
                   unnest([ob1_at, ob2_at, ob3_at]) AS milestone_at,
                   unnest({_array(ONBOARDING_EVENTS)}) AS event,
                   unnest([1, 2, 3]) AS step
            FROM numbered
        )
        WHERE milestone_at IS NOT NULL
    """


def _users_sql() -> list[str]:
    """Users with a unique e-mail at the account's domain and last_seen_at = last event;
    then the events (ids grouped by user, not in time order)."""
    return [
        f"""
        INSERT INTO {SCHEMA}.users
        WITH seen AS (
            SELECT user_num, max(occurred_at) AS last_event_at FROM _demo_ev GROUP BY user_num
        ), named AS (
            SELECT u.*,
                   row_number() OVER (PARTITION BY account_id, local_part ORDER BY u.user_num) AS dup
            FROM _demo_u AS u
        )
        SELECT user_id, account_id,
               local_part || CASE WHEN dup > 1 THEN CAST(dup AS VARCHAR) ELSE '' END || '@' || domain,
               first_name, last_name, {_phone_sql()}, title, country, signed_up_at,
               coalesce(greatest(seen.last_event_at, signed_up_at), signed_up_at), email_opt_in
        FROM named LEFT JOIN seen USING (user_num)
        ORDER BY user_num
    """,
        f"""
        INSERT INTO {SCHEMA}.product_events
        -- No ORDER BY: sorting ~5M rows would double the build time at accounts=30000, and
        -- DuckDB keeps the (deterministic) order of _demo_ev anyway (preserve_insertion_order).
        SELECT printf('evt_%08d', ev_num), user_id, account_id, event, occurred_at
        FROM _demo_ev
    """,
    ]


def _invoices_sql(R: _Rand, T: str) -> str:
    """Monthly invoices for paid subscriptions, paid a few days after each billing date.
    A past-due subscription's latest invoice is unpaid, so it is not in the table."""
    return f"""
        INSERT INTO {SCHEMA}.invoices
        WITH periods AS (
            SELECT s.subscription_id, s.account_id, s.mrr, s.status, s.started_at,
                   coalesce(s.ended_at, {T}) AS until_at, m
            FROM (SELECT *, unnest(range(date_diff('month', started_at, coalesce(ended_at, {T})) + 1)) AS m
                  FROM _demo_sub WHERE mrr > 0) AS s
        ), billed AS (
            SELECT *, started_at + to_months(CAST(m AS INTEGER)) AS billed_at,
                   max(m) FILTER (WHERE started_at + to_months(CAST(m AS INTEGER)) < until_at)
                       OVER (PARTITION BY subscription_id) AS last_m
            FROM periods
        ), paid AS (
            SELECT *, billed_at + {_seconds(f"{R.u('pay_delay', 'subscription_id', 'm')} * 4 * 86400")} AS paid_at
            FROM billed
            WHERE billed_at < until_at AND NOT (status = 'past_due' AND m = last_m)
        )
        SELECT printf('inv_%06d', row_number() OVER (ORDER BY paid_at, subscription_id, m)),
               account_id, mrr, paid_at
        FROM paid
        WHERE paid_at < {T}
        ORDER BY paid_at, subscription_id, m
    """


def _tickets_sql(R: _Rand, T: str) -> str:
    """Tickets at a per-plan rate over each user's active life, plus a burst of recent
    escalations from declining accounts."""
    n = "user_num"
    base_priority = (("low", 25.0), ("normal", 50.0), ("high", 18.0), ("urgent", 7.0))
    hot_priority = (("low", 5.0), ("normal", 30.0), ("high", 40.0), ("urgent", 25.0))
    channels = (("email", 50.0), ("chat", 35.0), ("phone", 15.0))
    return f"""
        INSERT INTO {SCHEMA}.support_tickets
        WITH per_user AS (
            SELECT user_num, user_id, account_id, signed_up_at, active_until,
                   date_diff('second', signed_up_at, active_until) AS span,
                   CAST(floor({_plan_case("tickets_per_year")}
                              * date_diff('second', signed_up_at, active_until) / (365.0 * 86400)
                              * {R.exp("tickets", n)} + {R.u("tickets_round", n)}) AS BIGINT) AS n_tickets
            FROM _demo_u
        ), regular AS (
            SELECT user_num, user_id, account_id, 0 AS src, k, false AS hot,
                   signed_up_at + {_seconds(f"{R.u('ticket_at', n, 'k')} * span")} AS created_at
            FROM (SELECT *, unnest(range(n_tickets)) AS k FROM per_user)
        ), escalation AS (
            -- Declining accounts: 3-8 recent tickets (enterprise) or 0-2 (others), filed by
            -- any of their users, within the last 30 days.
            SELECT a.user_offset + 1 + CAST(floor({R.u("esc_user", "a.acc_num", "k")} * a.n_users) AS BIGINT) AS user_num,
                   a.account_id, 1 AS src, k, true AS hot,
                   {T} - INTERVAL 29 DAY + {_seconds(f"{R.u('esc_at', 'a.acc_num', 'k')} * 28 * 86400")} AS created_at
            FROM (SELECT *, unnest(range(CASE WHEN plan = 'enterprise'
                                              THEN 3 + CAST(floor({R.u("n_esc", "acc_num")} * 6) AS BIGINT)
                                              ELSE CAST(floor({R.u("n_esc", "acc_num")} * 3) AS BIGINT) END)) AS k
                  FROM _demo_acc WHERE declining) AS a
        ), t AS (
            SELECT user_num, user_id, account_id, src, k, hot, created_at FROM regular
            UNION ALL
            SELECT e.user_num, printf('usr_%05d', e.user_num), e.account_id, e.src, e.k, e.hot, e.created_at
            FROM escalation AS e
        ), drawn AS (
            SELECT *,
                   date_diff('second', created_at, {T}) / 86400.0 AS age_days,
                   {R.u("status", n, "src", "k")} AS s,
                   created_at + {_seconds(f"600 + {R.exp('resolve', n, 'src', 'k')} * 20 * 3600")} AS resolved_at
            FROM t
        ), statused AS (
            SELECT *,
                   CASE WHEN age_days < 2 THEN (CASE WHEN s < 0.6 THEN 'open' WHEN s < 0.9 THEN 'pending' ELSE 'solved' END)
                        WHEN age_days < 14 THEN (CASE WHEN s < 0.2 THEN 'open' WHEN s < 0.5 THEN 'pending' ELSE 'solved' END)
                        ELSE (CASE WHEN s < 0.02 THEN 'open' WHEN s < 0.05 THEN 'pending' ELSE 'solved' END)
                   END AS drawn_status
            FROM drawn
        )
        SELECT printf('tkt_%06d', row_number() OVER (ORDER BY created_at, user_num, src, k)),
               account_id, user_id,
               CASE WHEN hot THEN {R.weighted(hot_priority, "priority", n, "src", "k")}
                    ELSE {R.weighted(base_priority, "priority", n, "src", "k")} END,
               -- A ticket whose resolution would land in the future is still pending.
               CASE WHEN drawn_status = 'solved' AND resolved_at >= {T} THEN 'pending' ELSE drawn_status END,
               {R.weighted(channels, "channel", n, "src", "k")},
               created_at,
               CASE WHEN drawn_status = 'solved' AND resolved_at < {T} THEN resolved_at END
        FROM statused
        ORDER BY created_at, user_num, src, k
    """


def _touches_sql(R: _Rand, T: str) -> str:
    """Sales and CS touches: more for bigger plans; they continue for a while after a user
    goes quiet (that's when CS reaches out)."""
    n = "user_num"
    channels = (("email", 55.0), ("call", 20.0), ("meeting", 15.0), ("chat", 10.0))
    return f"""
        INSERT INTO {SCHEMA}.contact_touches
        WITH per_user AS (
            SELECT user_num, user_id, signed_up_at,
                   least({T}, active_until + INTERVAL 60 DAY) AS until_at,
                   {_plan_case("touches_per_year")} AS per_year
            FROM _demo_u
        ), counted AS (
            SELECT *, date_diff('second', signed_up_at, until_at) AS span,
                   CAST(floor(per_year * date_diff('second', signed_up_at, until_at) / (365.0 * 86400)
                              * {R.exp("touches", n)} + {R.u("touches_round", n)}) AS BIGINT) AS n_touches
            FROM per_user
        )
        SELECT user_id, {R.weighted(channels, "touch_channel", n, "k")},
               signed_up_at + {_seconds(f"{R.u('touch_at', n, 'k')} * span")} AS touched_at
        FROM (SELECT *, unnest(range(n_touches)) AS k FROM counted)
        ORDER BY touched_at, user_num, k
    """


# ---------------------------------------------------------------- mutate


def mutate(
    con: duckdb.DuckDBPyConnection,
    *,
    change: int,
    delete: int,
    seed: int = 11,
) -> dict[str, list[str]]:
    """Simulate source changes between two sync runs, deterministically.

    `change` users get a different title and a new last_seen_at (just after the latest
    activity in the data: "seen again today"), and about half of them flip email_opt_in.
    `delete` other users are deleted with their product events and contact touches; their
    support tickets stay with the account (user_id set to NULL), as a helpdesk would keep them.
    """
    if change < 0 or delete < 0:
        raise ValueError("change and delete must be >= 0")
    total = con.execute(f"SELECT count(*) FROM {SCHEMA}.users").fetchall()[0][0]
    if change + delete > total:
        raise ValueError(f"change + delete = {change + delete} exceeds the {total} users")
    R = _Rand(seed)
    titles = [t for t, _ in _TITLES]
    con.execute("BEGIN TRANSACTION")
    try:
        # Rank users by a seeded hash of their id: a stable, seed-dependent sample whose
        # first `change` rows are changed and the next `delete` rows deleted (disjoint).
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _demo_mut AS
            SELECT user_id,
                   CASE WHEN rn <= {int(change)} THEN 'change' ELSE 'delete' END AS kind
            FROM (SELECT user_id, row_number() OVER (ORDER BY {R.u("pick", "user_id")}, user_id) AS rn
                  FROM {SCHEMA}.users)
            WHERE rn <= {int(change) + int(delete)}
        """)
        con.execute(f"""
            UPDATE {SCHEMA}.users AS u SET
                -- Move to another title: an offset of 1..n-1 from the current one, never itself.
                title = {_array(titles)}[1 + ((coalesce(nullif(list_position({_array(titles)}, u.title), 0), 1) - 1
                         + 1 + CAST(floor({R.u("title", "u.user_id")} * {len(titles) - 1}) AS BIGINT)) % {len(titles)})],
                last_seen_at = (SELECT max(last_seen_at) FROM {SCHEMA}.users)
                               + {_seconds(f"60 + {R.u('seen', 'u.user_id')} * 36000")},
                email_opt_in = CASE WHEN {R.u("opt_in", "u.user_id")} < 0.5 THEN NOT u.email_opt_in
                                    ELSE u.email_opt_in END
            WHERE u.user_id IN (SELECT user_id FROM _demo_mut WHERE kind = 'change')
        """)
        gone = "(SELECT user_id FROM _demo_mut WHERE kind = 'delete')"
        con.execute(f"DELETE FROM {SCHEMA}.product_events WHERE user_id IN {gone}")
        con.execute(f"DELETE FROM {SCHEMA}.contact_touches WHERE user_id IN {gone}")
        con.execute(f"UPDATE {SCHEMA}.support_tickets SET user_id = NULL WHERE user_id IN {gone}")
        con.execute(f"DELETE FROM {SCHEMA}.users WHERE user_id IN {gone}")
        rows = con.execute("SELECT kind, user_id FROM _demo_mut ORDER BY user_id").fetchall()
        con.execute("DROP TABLE _demo_mut")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {
        "changed_user_ids": [uid for kind, uid in rows if kind == "change"],
        "deleted_user_ids": [uid for kind, uid in rows if kind == "delete"],
    }
