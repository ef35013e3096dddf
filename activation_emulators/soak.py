"""The soak: many runs of several syncs while the source mutates, faults fire at random and the
process is SIGKILLed at random points; then one clean run, and every destination must equal
the model exactly.

Used in a short form by `tests/test_soak.py` (CI) and in a long form by `bench/soak.py`.
Each run is a real `activation run` child process (so a kill is a real SIGKILL, mid-batch);
the emulators live in this process and keep their records across runs, like a vendor would.
The model the destinations must hold is computed here from the source tables with plain SQL,
independently of activation's code.

Identities are exercised on purpose: some users' emails go A -> B and, a round later (often
across a SIGKILLed run), back to A (the world keeps each user's email history to do it); a few
pairs of users share one email differing only by case (one record at HubSpot, Salesforce and
Mailchimp, one hashed identifier at Meta and Google) and a few pairs share a phone (one hashed
identifier in the ad audiences); each round one of a pair leaves the model, and the shared
record or identifier must stay for the other. The final check counts by key (each model row's
identities held with its values) and by identity (expected identities against held ones).

The warehouse, and with it the state, is DuckDB or the Postgres server (`backend`); on
Postgres every run uses schemas of its own (`src_<tag>`, `act_<tag>`, `state_<tag>`), dropped
at the end, so soaks can run side by side.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, Field

from activation.destinations.identifiers import sha256_hex
from activation_emulators.braze import BrazeEmulator
from activation_emulators.customerio import CustomerioEmulator
from activation_emulators.faults import Fault
from activation_emulators.google_ads import GoogleAdsEmulator
from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.intercom import IntercomEmulator
from activation_emulators.iterable import IterableEmulator
from activation_emulators.klaviyo import KlaviyoEmulator
from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.meta import MetaEmulator
from activation_emulators.salesforce import Field as SalesforceField
from activation_emulators.salesforce import SalesforceEmulator
from activation_emulators.webhook import WebhookReceiver
from activation_emulators.zendesk import ZendeskEmulator

#: The project; __WAREHOUSE__, __STATE__ and __SRC__ are filled in per backend (see `project_yaml`).
#: The syncs whose destination keeps one record per email merge rows that share it (the last
#: write wins; the record goes when no row maps to it): pairs of users share an email on purpose.
PROJECT = """
version: 1
warehouse: __WAREHOUSE__
__STATE__
entities:
  user: {table: __SRC__.users, key: user_id}
  account: {table: __SRC__.accounts, key: account_id}
audiences:
  pros: {entity: user, where: "plan = 'pro'"}
destinations:
  hook: {type: webhook, url: "${SOAK_HOOK_URL}", batch_size: 200, max_retries: 4, timeout_seconds: 1}
  hubspot: {type: hubspot, token: soak-token, base_url: "${SOAK_HUBSPOT_URL}", requests_per_second: 1000, max_retries: 6}
  salesforce:
    type: salesforce
    instance_url: "${SOAK_SF_INSTANCE}"
    session_id: "${SOAK_SF_TOKEN}"
    transport_url: "${SOAK_SF_URL}"
    bulk_threshold: 1000
    bulk_poll_seconds: 0.05
    max_retries: 6
  mailchimp: {type: mailchimp, api_key: soak-key-us1, base_url: "${SOAK_MC_URL}", list_name: Soak, max_retries: 6}
  meta: {type: meta_audience, token: soak-token, ad_account: act_1, base_url: "${SOAK_META_URL}", max_retries: 6,
         retry_backoff_seconds: 0.05}
  google:
    {type: google_ads, customer_id: 123-456-7890, developer_token: dev, client_id: cid, client_secret: secret,
     refresh_token: refresh, base_url: "${SOAK_GOOGLE_URL}", token_url: "${SOAK_GOOGLE_URL}/token", max_retries: 6,
     retry_backoff_seconds: 0.05, job_poll_seconds: 0.01, job_wait_seconds: 10}
  braze: {type: braze, api_key: soak-key, rest_endpoint: "${SOAK_BRAZE_URL}", max_retries: 6}
  iterable: {type: iterable, api_key: soak-key, base_url: "${SOAK_ITERABLE_URL}", max_retries: 6}
  klaviyo: {type: klaviyo, api_key: soak-key, base_url: "${SOAK_KLAVIYO_URL}", poll_seconds: 0.01, max_retries: 6}
  intercom: {type: intercom, token: soak-token, base_url: "${SOAK_INTERCOM_URL}", max_retries: 6}
  customerio: {type: customerio, site_id: soak-site, api_key: soak-key, url: "${SOAK_CIO_URL}", identify_by: id, max_retries: 6}
  zendesk:
    {type: zendesk, subdomain: soak, email: agent@example.com, token: soak-token, base_url: "${SOAK_ZENDESK_URL}",
     job_poll_seconds: 0.01, max_retries: 6}
syncs:
  users_to_hook:
    {from: user, to: hook, object: contacts, mode: mirror, match: {email: email},
     fields: {first_name: first_name, plan: plan, score: score}, max_removal: 100%}
  users_to_hubspot:
    {from: user, to: hubspot, object: contacts, mode: mirror, match: {email: email},
     fields: {firstname: first_name, plan: plan}, max_removal: 100%, identity_conflicts: merge}
  pros_to_hubspot_list:
    {from: pros, to: hubspot, object: contacts, mode: audience, audience: Soak pros, match: {email: email},
     max_removal: 100%, identity_conflicts: merge}
  users_to_salesforce:
    {from: user, to: salesforce, object: Contact, mode: mirror, match: {Soak_Email__c: email},
     fields: {LastName: first_name, Email: email}, max_removal: 100%, identity_conflicts: merge}
  pros_to_salesforce_campaign:
    {from: pros, to: salesforce, object: Contact, mode: audience, audience: Soak pros, match: {Email: email},
     max_removal: 100%, identity_conflicts: merge}
  users_to_mailchimp:
    {from: user, to: mailchimp, mode: mirror, match: {email_address: email}, fields: {FNAME: first_name}, max_removal: 100%,
     identity_conflicts: merge}
  pros_to_mailchimp_tag:
    {from: pros, to: mailchimp, mode: audience, audience: Pros, match: {email_address: email}, max_removal: 100%,
     identity_conflicts: merge}
  pros_to_meta:
    {from: pros, to: meta, mode: audience, audience: Soak pros, match: {email: email}, fields: {phone: phone},
     max_removal: 100%}
  pros_to_google:
    {from: pros, to: google, mode: audience, audience: Soak pros, match: {email: email}, fields: {phone: phone},
     max_removal: 100%}
  users_to_braze:
    {from: user, to: braze, mode: mirror, match: {external_id: user_id}, fields: {first_name: first_name, plan: plan},
     max_removal: 100%}
  pros_to_braze_attribute:
    {from: pros, to: braze, mode: audience, audience: soak_pro, match: {external_id: user_id}, max_removal: 100%}
  users_to_iterable:
    {from: user, to: iterable, mode: mirror, match: {email: email}, fields: {first_name: first_name, plan: plan},
     max_removal: 100%, identity_conflicts: merge}
  pros_to_iterable_list:
    {from: pros, to: iterable, mode: audience, audience: Soak pros, match: {email: email}, max_removal: 100%,
     identity_conflicts: merge}
  users_to_klaviyo:
    {from: user, to: klaviyo, mode: mirror, match: {email: email}, fields: {first_name: first_name, plan: plan},
     max_removal: 100%, identity_conflicts: merge}
  pros_to_klaviyo_list:
    {from: pros, to: klaviyo, mode: audience, audience: Soak pros, match: {email: email}, max_removal: 100%,
     identity_conflicts: merge}
  users_to_intercom:
    {from: user, to: intercom, object: contacts, mode: mirror, match: {email: email}, fields: {name: first_name, plan: plan},
     max_removal: 100%, identity_conflicts: merge}
  pros_to_intercom_tag:
    {from: pros, to: intercom, object: contacts, mode: audience, audience: Soak pros, match: {email: email},
     max_removal: 100%, identity_conflicts: merge}
  users_to_customerio:
    {from: user, to: customerio, mode: mirror, match: {id: user_id}, fields: {first_name: first_name, plan: plan},
     max_removal: 100%}
  pros_to_customerio_segment:
    {from: pros, to: customerio, mode: audience, audience: "7", match: {id: user_id}, max_removal: 100%}
  users_to_zendesk:
    {from: user, to: zendesk, mode: mirror, match: {email: email}, fields: {name: first_name, plan: plan},
     max_removal: 100%, identity_conflicts: merge}
  pros_to_zendesk_tag:
    {from: pros, to: zendesk, mode: audience, audience: soak_pro, match: {email: email}, fields: {name: first_name},
     max_removal: 100%, identity_conflicts: merge}
  accounts_to_salesforce:
    {from: account, to: salesforce, object: Account, mode: mirror, match: {External_Id__c: account_id},
     fields: {Name: name, NumberOfEmployees: employees}, max_removal: 100%}
"""

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

PLANS = ("free", "pro", "enterprise")

#: Random faults per emulator: what each vendor really does when it misbehaves.
HTTP_CHAOS: dict[Fault, float] = {
    Fault("error", 500): 3,
    Fault("error", 502): 1,
    Fault("error", 503): 2,
    Fault("throttle", retry_after=0.2): 2,
    Fault("throttle", retry_after=None): 1,
    Fault("drop"): 2,
    Fault("drop_after"): 2,
    Fault("truncate"): 1,
}
# Salesforce does not answer 429 (its quota error is a 403 REQUEST_LIMIT_EXCEEDED).
# The webhook receiver also answers 2xx bodies that cannot be read (its rows possibly
# delivered), and lets a request wait in its queue past the client's 1 s timeout: the retry
# lands first and the stalled write is applied late, after it (dropped by its older version).
CHAOS = {
    "salesforce": {f: w for f, w in HTTP_CHAOS.items() if f.kind != "throttle"},
    "hook": {**HTTP_CHAOS, Fault("garble"): 2, Fault("stall", seconds=1.5): 2},
}


class SoakConfig(BaseModel):
    users: int = Field(300, ge=10)
    accounts: int = Field(60, ge=5)
    rounds: int = Field(6, ge=1, description="Runs while faults fire (each after a mutation of the source).")
    kill_rate: float = Field(0.5, ge=0, le=1, description="Share of runs SIGKILLed at a random point.")
    fault_rate: float = Field(0.08, ge=0, le=1, description="Share of requests struck by a random fault.")
    change_rate: float = Field(0.05, ge=0, le=1, description="Share of rows updated per round.")
    churn_rate: float = Field(0.02, ge=0, le=1, description="Share of rows deleted, and as many inserted, per round.")
    email_change_rate: float = Field(0.01, ge=0, le=1, description="Share of users whose email (the match key) goes A -> B per round.")
    flip_back_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the users whose email changed in a round that go back (B -> A) "
        "the next round; as many older changes go back too.",
    )
    shared_pairs: int = Field(
        3,
        ge=0,
        description="Pairs of users sharing an email (case aside) and pairs sharing a phone, "
        "made at the start; each round one of a pair leaves and a new pair forms.",
    )
    backend: Literal["duckdb", "postgres"] = Field("duckdb", description="Where the warehouse (and the state in it) lives.")
    seed: int = 1


class SyncCheck(BaseModel):
    rows: int = Field(description="Model rows the sync must deliver (by key).")
    rows_lost: int = Field(description="Model rows an identity of which the destination lacks.")
    rows_stale: int = Field(description="Model rows whose record holds values no row mapping to it has.")
    expected: int = Field(description="Identities the destination must hold (normalised email, hashed identifier, key...).")
    held: int = Field(description="Identities the destination holds (records or identifiers).")
    lost: int = Field(description="Identities of the model missing at the destination.")
    stale: int = Field(description="Identities held with values that no row mapping to them has.")
    orphaned: int = Field(description="Identities held that no row of the model maps to (should have been removed).")
    duplicated: int = Field(description="Extra records sharing one identity (0 where the API upserts).")
    examples: dict[str, list[str]] = Field(default_factory=dict, description="Up to 3 identities per kind of problem.")


class SoakReport(BaseModel):
    config: SoakConfig
    runs: int = 0
    runs_ok: int = 0
    runs_failed: int = 0
    kills: int = 0
    clean_runs: int = 0
    requests: int = 0
    faults: dict[str, int] = Field(default_factory=dict)
    sync_runs: dict[str, int] = Field(default_factory=dict, description="Sync outcomes of the runs not killed.")
    model_rows: int = 0
    rows_mutated: int = 0
    identity: dict[str, int] = Field(
        default_factory=dict, description="Identity events made in the source: A -> B, B -> A, pairs formed and broken."
    )
    seconds: float = 0.0
    syncs: dict[str, SyncCheck] = Field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(c.lost + c.rows_lost for c in self.syncs.values())

    @property
    def corrupted(self) -> int:
        return sum(c.rows_stale + c.stale + c.orphaned + c.duplicated for c in self.syncs.values())

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        ident = self.identity
        out = [
            f"{self.config.backend}, seed {self.config.seed}: runs {self.runs} ({self.runs_ok} ok, {self.runs_failed} failed, "
            f"{self.kills} SIGKILLed), then {self.clean_runs} clean run(s); {self.seconds:.1f} s; sync outcomes of unkilled runs: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.sync_runs.items())) or "none"),
            f"model rows {self.model_rows:,} (users + accounts); rows mutated {self.rows_mutated:,}; "
            f"requests {self.requests:,}; faults injected {sum(self.faults.values()):,} ({faults})",
            f"identities: {ident.get('changed', 0)} emails A -> B, {ident.get('back', 0)} back B -> A "
            f"({ident.get('back_next_round', 0)} the next round); shared emails: {ident.get('email_pairs', 0)} pairs formed, "
            f"{ident.get('email_pairs_broken', 0)} broken by a leaver; shared phones: {ident.get('phone_pairs', 0)} formed, "
            f"{ident.get('phone_pairs_broken', 0)} broken",
        ]
        for name, c in self.syncs.items():
            out.append(
                f"  {name}: by key {c.rows:,} rows, lost {c.rows_lost}, stale {c.rows_stale}; by identity expected "
                f"{c.expected:,}, held {c.held:,}: lost {c.lost}, stale {c.stale}, orphaned {c.orphaned}, "
                f"duplicated {c.duplicated}"
            )
            out.extend(f"    {kind}: {', '.join(ids)}" for kind, ids in c.examples.items())
        out.append(f"lost (rows + identities): {self.lost}; corrupted (stale, orphaned or duplicated): {self.corrupted}")
        return out


class Source:
    """The source tables, in DuckDB (the project's warehouse file) or in a schema of the
    Postgres server; statements are written with `?` placeholders for both."""

    def __init__(self, backend: str, root: Path, tag: str) -> None:
        self.backend, self.root, self.tag = backend, root, tag
        self.schema = "src" if backend == "duckdb" else f"src_{tag}"

    @contextmanager
    def connect(self) -> Iterator[Callable[[str, list[Any] | None], list[tuple[Any, ...]]]]:
        """A function running one statement (committed when the block ends)."""
        if self.backend == "duckdb":
            con = duckdb.connect(str(self.root / "warehouse.duckdb"))
            try:

                def run(statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
                    result = con.execute(statement, params or [])
                    return result.fetchall() if result.description else []

                yield run
            finally:
                con.close()
        else:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=False) as pg:

                def run_pg(statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
                    cur = pg.execute(statement.replace("?", "%s"), params or [])  # type: ignore[arg-type]
                    return cur.fetchall() if cur.description else []

                yield run_pg

    def insert(self, run: Callable[..., Any], table: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.backend == "duckdb":  # one statement, column by column (executemany goes row by row)
            columns = [list(c) for c in zip(*rows, strict=False)]
            run(f"INSERT INTO {table} SELECT {', '.join('unnest(?)' for _ in columns)}", columns)
        else:  # in statements of at most 5,000 rows (Postgres takes 65,535 parameters)
            for at in range(0, len(rows), 5000):
                chunk = rows[at : at + 5000]
                values = ", ".join("(" + ", ".join("?" for _ in r) + ")" for r in chunk)
                run(f"INSERT INTO {table} VALUES {values}", [v for r in chunk for v in r])

    def delete(self, run: Callable[..., Any], table: str, key: str, ids: list[str]) -> None:
        if self.backend == "duckdb":
            run(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))", [ids])
        else:
            run(f"DELETE FROM {table} WHERE {key} = ANY(?)", [ids])

    def drop(self) -> None:
        if self.backend == "postgres":
            with self.connect() as run:
                for schema in (f"src_{self.tag}", f"act_{self.tag}", f"state_{self.tag}"):
                    run(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def project_yaml(backend: str, tag: str) -> str:
    if backend == "duckdb":
        warehouse, state, src = "{type: duckdb, path: warehouse.duckdb}", "", "src"
    else:
        warehouse = f"{{type: postgres, url: 'postgresql+psycopg://postgres@127.0.0.1:5432/test', schema: act_{tag}}}"
        state, src = f"state: {{schema: state_{tag}}}", f"src_{tag}"
    return PROJECT.replace("__WAREHOUSE__", warehouse).replace("__STATE__", state).replace("__SRC__", src)


def postgres_available() -> str | None:
    """None when the Postgres server answers, else why not."""
    try:
        import psycopg
    except ImportError as e:
        return f"psycopg is not installed ({e})"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as pg:
            pg.execute("SELECT 1")
    except psycopg.Error as e:
        return f"no Postgres at 127.0.0.1:5432 (database test): {e}"
    return None


def meta_phone(phone: str) -> str:
    """Meta's documented phone normalisation: E.164 digits, no '+' (the soak's phones are E.164 already)."""
    return "".join(c for c in phone if c.isdigit())


@dataclass
class SoakWorld:
    """The project directory, its warehouse and the emulators standing in for the vendors."""

    root: Path
    source: Source
    hook: WebhookReceiver
    hubspot: HubSpotEmulator
    salesforce: SalesforceEmulator
    mailchimp: MailchimpEmulator
    meta: MetaEmulator
    google: GoogleAdsEmulator
    braze: BrazeEmulator
    iterable: IterableEmulator
    klaviyo: KlaviyoEmulator
    intercom: IntercomEmulator
    customerio: CustomerioEmulator
    zendesk: ZendeskEmulator
    rng: random.Random
    next_user: int = 0
    next_account: int = 0
    #: Every email each live user has had, in order: what an A -> B -> A flip goes back to.
    history: dict[str, list[str]] = field(default_factory=dict)
    #: Users whose email went A -> B in the last round (candidates to go back next round).
    changed_last_round: list[str] = field(default_factory=list)
    #: (owner, sharer) pairs: the sharer holds the owner's email in another case / its phone.
    email_pairs: list[tuple[str, str]] = field(default_factory=list)
    phone_pairs: list[tuple[str, str]] = field(default_factory=list)
    identity_events: Counter[str] = field(default_factory=Counter)

    @property
    def env(self) -> dict[str, str]:
        sf = self.salesforce
        return {
            **os.environ,
            "SOAK_HOOK_URL": self.hook.url,
            "SOAK_HUBSPOT_URL": self.hubspot.url,
            "SOAK_SF_INSTANCE": f"https://{sf.instance}",
            "SOAK_SF_TOKEN": sf.token,
            "SOAK_SF_URL": sf.url,
            "SOAK_MC_URL": self.mailchimp.url,
            "SOAK_META_URL": self.meta.url,
            "SOAK_GOOGLE_URL": self.google.url,
            "SOAK_BRAZE_URL": self.braze.url,
            "SOAK_ITERABLE_URL": self.iterable.url,
            "SOAK_KLAVIYO_URL": self.klaviyo.url,
            "SOAK_INTERCOM_URL": self.intercom.url,
            "SOAK_CIO_URL": self.customerio.url,
            "SOAK_ZENDESK_URL": self.zendesk.url,
        }

    @property
    def emulators(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "hubspot": self.hubspot,
            "salesforce": self.salesforce,
            "mailchimp": self.mailchimp,
            "meta": self.meta,
            "google": self.google,
            "braze": self.braze,
            "iterable": self.iterable,
            "klaviyo": self.klaviyo,
            "intercom": self.intercom,
            "customerio": self.customerio,
            "zendesk": self.zendesk,
        }

    @property
    def requests(self) -> int:
        # (Braze's and Intercom's emulators count per path: request_count() is every request)
        return sum(emu.request_count() if callable(emu.request_count) else emu.request_count for emu in self.emulators.values())

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.source.connect() as run:
            return run(statement, params)

    @property
    def users_table(self) -> str:
        return f"{self.source.schema}.users"

    @property
    def accounts_table(self) -> str:
        return f"{self.source.schema}.accounts"

    # ------------------------------------------------------------ the source

    def _phone(self) -> str:
        return f"+44207{self.rng.randrange(10**7):07d}"  # a London number, E.164

    def _user(self, i: int) -> tuple[Any, ...]:
        plan = self.rng.choice(PLANS)
        uid = f"u{i:07d}"
        email = f"user{i}.{self.rng.randrange(10**6)}@soak.example"
        self.history[uid] = [email]
        return (uid, email, self._phone(), f"First{self.rng.randrange(1000)}", plan, round(self.rng.random() * 100, 2))

    def _account(self, i: int) -> tuple[Any, ...]:
        return (f"a{i:06d}", f"Account {i} {self.rng.randrange(1000)}", self.rng.randrange(1, 5000))

    def create_source(self, users: int, accounts: int, shared_pairs: int) -> None:
        s = self.source.schema
        with self.source.connect() as run:
            run(f"CREATE SCHEMA {s}")
            run(
                f"CREATE TABLE {s}.users (user_id VARCHAR PRIMARY KEY, email VARCHAR, phone VARCHAR, first_name VARCHAR, "
                "plan VARCHAR, score DOUBLE PRECISION)"
            )
            run(f"CREATE TABLE {s}.accounts (account_id VARCHAR PRIMARY KEY, name VARCHAR, employees INTEGER)")
            self.source.insert(run, self.users_table, [self._user(i) for i in range(users)])
            self.source.insert(run, self.accounts_table, [self._account(i) for i in range(accounts)])
            self.next_user, self.next_account = users, accounts
            for _ in range(shared_pairs):
                self._pair(run, "email")
                self._pair(run, "phone")

    def _emails(self, run: Callable[..., Any]) -> dict[str, tuple[str, str]]:
        return {uid: (email, phone) for uid, email, phone in run(f"SELECT user_id, email, phone FROM {self.users_table}")}

    def _paired(self) -> set[str]:
        return {u for pair in self.email_pairs + self.phone_pairs for u in pair}

    def _pair(self, run: Callable[..., Any], what: str) -> None:
        """Two users not yet paired come to share one email (the sharer's in upper case: one
        record where emails compare without case) or one phone."""
        free = sorted(set(self._emails(run)) - self._paired())
        if len(free) < 2:
            return
        owner, sharer = self.rng.sample(free, 2)
        email, phone = self._emails(run)[owner]
        if what == "email":
            run(f"UPDATE {self.users_table} SET email = ? WHERE user_id = ?", [email.upper(), sharer])
            self.history[sharer].append(email.upper())
            self.email_pairs.append((owner, sharer))
        else:
            run(f"UPDATE {self.users_table} SET phone = ? WHERE user_id = ?", [phone, sharer])
            self.phone_pairs.append((owner, sharer))
        self.identity_events[f"{what}_pairs"] += 1

    def _break_pair(self, run: Callable[..., Any], what: str) -> str | None:
        """One of a pair (either side) leaves the model; the other still needs the shared record."""
        pairs = self.email_pairs if what == "email" else self.phone_pairs
        if not pairs:
            return None
        pair = pairs.pop(self.rng.randrange(len(pairs)))
        leaver = self.rng.choice(pair)
        self.identity_events[f"{what}_pairs_broken"] += 1
        return leaver

    def mutate(self, cfg: SoakConfig) -> int:
        """Update, delete, insert and re-key some rows (A -> B, and B -> A for earlier changes);
        break and form shared pairs; return how many rows were touched."""
        rng = self.rng
        with self.source.connect() as run:
            users = sorted(self._emails(run))
            accounts = [r[0] for r in run(f"SELECT account_id FROM {self.accounts_table}")]
            touched = 0
            for uid in rng.sample(users, max(1, int(len(users) * cfg.change_rate))):
                run(
                    f"UPDATE {self.users_table} SET plan = ?, first_name = ?, score = ? WHERE user_id = ?",
                    [rng.choice(PLANS), f"First{rng.randrange(1000)}", round(rng.random() * 100, 2), uid],
                )
                touched += 1
            # B -> A: some of last round's changes (the run between may have been killed), and
            # as many older ones
            live = set(users)
            back = [u for u in self.changed_last_round if u in live and rng.random() < cfg.flip_back_rate]
            older = [
                u
                for u in users
                if len(self.history[u]) >= 2 and self.history[u][-1] != self.history[u][-2] and u not in self.changed_last_round
            ]
            back_older = rng.sample(older, min(len(older), len(back)))
            for uid in back + back_older:
                previous = self.history[uid][-2]
                run(f"UPDATE {self.users_table} SET email = ? WHERE user_id = ?", [previous, uid])
                self.history[uid].append(previous)
                touched += 1
            self.identity_events["back"] += len(back) + len(back_older)
            self.identity_events["back_next_round"] += len(back)
            # A -> B
            flipped = set(back + back_older)
            changed = [u for u in rng.sample(users, int(len(users) * cfg.email_change_rate)) if u not in flipped]
            for uid in changed:
                email = f"moved.{uid}.{rng.randrange(10**9)}@soak.example"
                run(f"UPDATE {self.users_table} SET email = ? WHERE user_id = ?", [email, uid])
                self.history[uid].append(email)
                touched += 1
            self.identity_events["changed"] += len(changed)
            self.changed_last_round = changed
            for aid in rng.sample(accounts, max(1, int(len(accounts) * cfg.change_rate))):
                run(
                    f"UPDATE {self.accounts_table} SET name = ?, employees = ? WHERE account_id = ?",
                    [f"Account {aid} {rng.randrange(1000)}", rng.randrange(1, 5000), aid],
                )
                touched += 1
            # one of a shared pair leaves (of each kind), on top of the random churn
            leavers = {u for what in ("email", "phone") if (u := self._break_pair(run, what)) is not None}
            gone = set(rng.sample(users, int(len(users) * cfg.churn_rate))) | leavers
            self.email_pairs = [p for p in self.email_pairs if not gone & set(p)]
            self.phone_pairs = [p for p in self.phone_pairs if not gone & set(p)]
            churned = self._churn(run, self.users_table, "user_id", sorted(gone), "next_user", self._user)
            for uid in gone:
                self.history.pop(uid, None)
            churned += self._churn(
                run,
                self.accounts_table,
                "account_id",
                rng.sample(accounts, int(len(accounts) * cfg.churn_rate)),
                "next_account",
                self._account,
            )
            if cfg.shared_pairs:
                for what in ("email", "phone"):
                    self._pair(run, what)
            return touched + 2 * churned

    def _churn(
        self, run: Callable[..., Any], table: str, key: str, gone: list[str], counter: str, make: Callable[[int], tuple[Any, ...]]
    ) -> int:
        """Delete `gone` rows of `table` and insert as many new ones (numbered from `counter`)."""
        if not gone:
            return 0
        self.source.delete(run, table, key, gone)
        start = getattr(self, counter)
        self.source.insert(run, table, [make(start + i) for i in range(len(gone))])
        setattr(self, counter, start + len(gone))
        return len(gone)

    # ------------------------------------------------------------ faults

    def chaos(self, rate: float, seed: int) -> None:
        for i, (name, emu) in enumerate(self.emulators.items()):
            emu.faults.chaos(rate, CHAOS.get(name, HTTP_CHAOS), seed=seed + i)

    def calm(self) -> None:
        for emu in self.emulators.values():
            emu.faults.clear()

    def faults(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for emu in self.emulators.values():
            total.update(emu.faults.injected)
        return dict(total)

    # ------------------------------------------------------------ checks

    def check(self) -> dict[str, SyncCheck]:
        """Each sync: its model rows (key -> identities, values) against what the destination
        holds by identity (identity -> the values of each record held under it)."""
        users = {
            uid: (email, phone, first, plan, score)
            for uid, email, phone, first, plan, score in self.sql(
                f"SELECT user_id, email, phone, first_name, plan, score FROM {self.users_table}"
            )
        }
        accounts = {aid: (name, emp) for aid, name, emp in self.sql(f"SELECT account_id, name, employees FROM {self.accounts_table}")}
        pros = {uid: u for uid, u in users.items() if u[3] == "pro"}
        checks = {}

        def by_email(rows: dict[str, tuple[Any, ...]], values: Callable[[tuple[Any, ...]], dict[str, Any]]) -> Rows:
            return {uid: ((u[0].strip().lower(),), values(u)) for uid, u in rows.items()}

        want_hook = {uid: ((uid,), {"email": e, "first_name": f, "plan": p, "score": s}) for uid, (e, _, f, p, s) in users.items()}
        checks["users_to_hook"] = _check(want_hook, {k: [v] for k, v in self.hook.records("users_to_hook").items()})

        held_contacts: dict[str, list[dict[str, Any]]] = {}
        for props in self.hubspot.records("contacts").values():
            held_contacts.setdefault(props.get("email", "").lower(), []).append(
                {"firstname": props.get("firstname", ""), "plan": props.get("plan", "")}
            )
        checks["users_to_hubspot"] = _check(by_email(users, lambda u: {"firstname": u[2], "plan": u[3]}), held_contacts)

        lists = [i for i, meta in self.hubspot.lists().items() if meta["name"] == "Soak pros"]
        records = self.hubspot.records("contacts")
        members: dict[str, list[dict[str, Any]]] = {}
        for list_id in lists:
            for m in self.hubspot.list_members(list_id):
                email = records.get(m, {}).get("email", f"<archived record {m}>").lower()
                members.setdefault(email, []).append({})
        want_members = by_email(pros, lambda u: {})
        checks["pros_to_hubspot_list"] = _check(want_members, members, duplicated_extra=max(0, len(lists) - 1))

        held_people: dict[str, list[dict[str, Any]]] = {}
        for rec in self.salesforce.records("Contact").values():
            held_people.setdefault(str(rec.get("Soak_Email__c")).lower(), []).append({"LastName": rec.get("LastName")})
        checks["users_to_salesforce"] = _check(by_email(users, lambda u: {"LastName": u[2]}), held_people)

        campaigns = [c for c in self.salesforce.records("Campaign").values() if c.get("Name") == "Soak pros"]
        contacts = self.salesforce.records("Contact")
        in_campaign: dict[str, list[dict[str, Any]]] = {}
        for m in self.salesforce.records("CampaignMember").values():
            if any(m.get("CampaignId") == c.get("Id") for c in campaigns):
                email = str(contacts.get(m.get("ContactId"), {}).get("Email", f"<deleted contact {m.get('ContactId')}>"))
                in_campaign.setdefault(email.lower(), []).append({})
        checks["pros_to_salesforce_campaign"] = _check(want_members, in_campaign, duplicated_extra=max(0, len(campaigns) - 1))

        [list_id] = self.mailchimp.lists()
        live = self.mailchimp.members(list_id)
        held_members = {e: [{"FNAME": m["merge_fields"].get("FNAME")}] for e, m in live.items()}
        checks["users_to_mailchimp"] = _check(by_email(users, lambda u: {"FNAME": u[2]}), held_members)
        # archived members keep their tags in Mailchimp (and get them back if re-added): only
        # the live members' tags are the audience marketing sees
        tagged = {e: [{}] for e in self.mailchimp.tag_members(list_id, "Pros") if e in live}
        checks["pros_to_mailchimp_tag"] = _check(want_members, tagged)

        # ad platforms hold hashed identifiers, each an identity of its own (a shared phone is
        # one identity of two rows): every identifier held by some person of the audience
        for name, emu, audience, email_key, phone_key, phone_form in (
            ("pros_to_meta", self.meta, "audience_named", "EMAIL", "PHONE", meta_phone),
            ("pros_to_google", self.google, "list_named", "hashedEmail", "hashedPhoneNumber", lambda p: p),
        ):
            want_ids = {
                uid: ((f"{email_key}:{sha256_hex(e.strip().lower())}", f"{phone_key}:{sha256_hex(phone_form(ph))}"), {})
                for uid, (e, ph, *_rest) in pros.items()
            }
            try:
                people = emu.members(getattr(emu, audience)("Soak pros"))
            except ValueError:  # never created (no run got that far)
                people = set()
            held_ids = {f"{k}:{v}": [{}] for person in people for k, v in person}
            checks[name] = _check(want_ids, held_ids)

        held_accounts: dict[str, list[dict[str, Any]]] = {}
        for rec in self.salesforce.records("Account").values():
            held_accounts.setdefault(str(rec.get("External_Id__c")).lower(), []).append(
                {"Name": rec.get("Name"), "NumberOfEmployees": rec.get("NumberOfEmployees")}
            )
        want_accounts = {aid: ((aid.lower(),), {"Name": n, "NumberOfEmployees": e}) for aid, (n, e) in accounts.items()}
        checks["accounts_to_salesforce"] = _check(want_accounts, held_accounts)

        # Braze keeps profiles by external_id (the user key); the audience is a boolean attribute
        profiles = self.braze.profiles()
        want_braze = {uid: ((uid,), {"first_name": u[2], "plan": u[3]}) for uid, u in users.items()}
        held_braze = {x: [{"first_name": p.get("first_name"), "plan": p.get("plan")}] for x, p in profiles.items()}
        checks["users_to_braze"] = _check(want_braze, held_braze)
        flagged = {x: [{}] for x, p in profiles.items() if p.get("soak_pro") is True}
        checks["pros_to_braze_attribute"] = _check({uid: ((uid,), {}) for uid in pros}, flagged)

        # Iterable keeps users by email without case (pairs sharing an email share one user);
        # the audience is a static list's membership
        people = self.iterable.users()
        held_iterable = {
            e: [{"first_name": u["dataFields"].get("first_name"), "plan": u["dataFields"].get("plan")}] for e, u in people.items()
        }
        checks["users_to_iterable"] = _check(by_email(users, lambda u: {"first_name": u[2], "plan": u[3]}), held_iterable)
        lists = [i for i, name in self.iterable.lists().items() if name == "Soak pros"]
        subscribed = {e.lower(): [{}] for i in lists for e in self.iterable.list_members(i) if e.lower() in people}
        checks["pros_to_iterable_list"] = _check(
            {uid: ((u[0].strip().lower(),), {}) for uid, u in pros.items()}, subscribed, duplicated_extra=max(0, len(lists) - 1)
        )
        checks.update(self._check_sdk_vendors(users, pros, by_email))
        return checks

    def _check_sdk_vendors(
        self, users: dict[str, tuple[Any, ...]], pros: dict[str, tuple[Any, ...]], by_email: Callable[..., Rows]
    ) -> dict[str, SyncCheck]:
        """Klaviyo, Intercom and Zendesk keep people by email without case (pairs sharing one
        share a record); Customer.io by the user key. Audiences: a list, a tag, a segment."""
        checks: dict[str, SyncCheck] = {}
        want_pros = {uid: ((u[0].strip().lower(),), {}) for uid, u in pros.items()}

        live = set(self.klaviyo.held())  # a removal suppresses: the people marketing can reach
        profiles = self.klaviyo.profiles()
        held_k = {
            e: [{"first_name": p.get("first_name"), "plan": (p.get("properties") or {}).get("plan")}]
            for e, p in profiles.items()
            if e in live
        }
        checks["users_to_klaviyo"] = _check(by_email(users, lambda u: {"first_name": u[2], "plan": u[3]}), held_k)
        lists = [i for i, name in self.klaviyo.lists().items() if name == "Soak pros"]
        in_list = {e: [{}] for i in lists for e in self.klaviyo.list_members(i) if e in live}
        checks["pros_to_klaviyo_list"] = _check(want_pros, in_list, duplicated_extra=max(0, len(lists) - 1))

        contacts = self.intercom.live_contacts()
        held_i: dict[str, list[dict[str, Any]]] = {}
        for c in contacts:
            held_i.setdefault(str(c.get("email")).lower(), []).append(
                {"name": c.get("name"), "plan": (c.get("custom_attributes") or {}).get("plan")}
            )
        checks["users_to_intercom"] = _check(by_email(users, lambda u: {"name": u[2], "plan": u[3]}), held_i)
        tagged = self.intercom.tagged("Soak pros")
        checks["pros_to_intercom_tag"] = _check(want_pros, {str(c.get("email")).lower(): [{}] for c in contacts if c["id"] in tagged})

        people = self.customerio.people()
        held_c = {k: [{"first_name": a.get("first_name"), "plan": a.get("plan")}] for k, a in people.items()}
        checks["users_to_customerio"] = _check({uid: ((uid,), {"first_name": u[2], "plan": u[3]}) for uid, u in users.items()}, held_c)
        in_segment = {k: [{}] for k in self.customerio.members(7) if k in people}
        checks["pros_to_customerio_segment"] = _check({uid: ((uid,), {}) for uid in pros}, in_segment)

        zd = self.zendesk.people()
        held_z = {e: [{"name": u.get("name"), "plan": (u.get("user_fields") or {}).get("plan")}] for e, u in zd.items()}
        checks["users_to_zendesk"] = _check(by_email(users, lambda u: {"name": u[2], "plan": u[3]}), held_z)
        checks["pros_to_zendesk_tag"] = _check(want_pros, {e: [{}] for e in self.zendesk.tagged("soak_pro")})
        return checks


#: A sync's model rows: key -> (the identities the destination keeps its record(s) under, the values it must hold).
Rows = dict[str, tuple[tuple[str, ...], dict[str, Any]]]


def _same(want: dict[str, Any], got: dict[str, Any]) -> bool:
    """Values compare as the destination stores them (HubSpot keeps strings, numbers may come back as floats)."""
    for k, w in want.items():
        g = got.get(k)
        if w == g or (w is not None and g is not None and str(w) == str(g)):
            continue
        try:
            if float(w) == float(g):
                continue
        except (TypeError, ValueError):
            pass
        return False
    return True


def _check(rows: Rows, held: dict[str, list[dict[str, Any]]], duplicated_extra: int = 0) -> SyncCheck:
    """By key: a row is lost when one of its identities is not held, stale when the record held
    under it has a value that no row mapping to it has (rows sharing a record: the last write
    wins, field by field).
    By identity: expected identities against held ones."""
    wanted: dict[str, list[dict[str, Any]]] = {}
    for identities, values in rows.values():
        for identity in identities:
            wanted.setdefault(identity, []).append(values)

    def stale(identity: str) -> bool:
        # rows sharing a record (identity_conflicts: merge) each write it, a changed row only
        # its changed fields: the last write wins field by field, so each field must hold the
        # value some row mapping to the record has
        return not any(all(any(_same({f: w.get(f)}, h) for w in wanted[identity]) for f in wanted[identity][0]) for h in held[identity])

    rows_lost = sum(1 for identities, _ in rows.values() if any(i not in held for i in identities))
    rows_stale = sum(1 for identities, _ in rows.values() if all(i in held for i in identities) and any(stale(i) for i in identities))
    problems = {
        "lost": [i for i in wanted if i not in held],
        "stale": [i for i in wanted if i in held and stale(i)],
        "orphaned": [i for i in held if i not in wanted],
        "duplicated": [i for i, v in held.items() if len(v) > 1],
    }
    examples = {kind: [f"{i} (held {held.get(i)}, rows {wanted.get(i)})" for i in ids[:3]] for kind, ids in problems.items() if ids}
    return SyncCheck(
        rows=len(rows),
        rows_lost=rows_lost,
        rows_stale=rows_stale,
        expected=len(wanted),
        held=len(held),
        lost=len(problems["lost"]),
        stale=len(problems["stale"]),
        orphaned=len(problems["orphaned"]),
        duplicated=sum(len(v) - 1 for v in held.values()) + duplicated_extra,
        examples=examples,
    )


@contextmanager
def soak_world(root: Path, cfg: SoakConfig) -> Iterator[SoakWorld]:
    root.mkdir(parents=True, exist_ok=True)
    tag = f"soak_{uuid.uuid4().hex[:10]}"
    (root / "syncs.yaml").write_text(project_yaml(cfg.backend, tag))
    source = Source(cfg.backend, root, tag)
    with ExitStack() as stack:
        stack.callback(source.drop)
        # a receiver as strict as real ones: a retried idempotency key it already applied is a
        # 409, a remove of a key it does not hold is a 404, an older version is dropped
        hook = stack.enter_context(WebhookReceiver(keep_requests=False, replay="conflict", missing_removes="not_found"))
        hubspot = stack.enter_context(HubSpotEmulator(tokens={"soak-token"}))
        hubspot.add_property("contacts", "plan")
        sf = stack.enter_context(SalesforceEmulator(keep_requests=False))
        sf.add_field("Contact", SalesforceField("Soak_Email__c", external_id=True, unique=True))
        mailchimp = stack.enter_context(MailchimpEmulator(api_keys={"soak-key-us1"}))
        mailchimp.create_list("Soak")
        meta = stack.enter_context(MetaEmulator(tokens={"soak-token"}, record=False))
        google = stack.enter_context(
            GoogleAdsEmulator(developer_tokens={"dev"}, client_id="cid", client_secret="secret", refresh_tokens={"refresh"}, record=False)
        )
        braze = stack.enter_context(BrazeEmulator(api_keys={"soak-key"}))
        iterable = stack.enter_context(IterableEmulator(api_keys={"soak-key"}))
        klaviyo = stack.enter_context(KlaviyoEmulator(api_keys={"soak-key"}))
        intercom = stack.enter_context(IntercomEmulator(tokens={"soak-token"}))
        intercom.add_attribute("contact", "plan")
        customerio = stack.enter_context(CustomerioEmulator(credentials={("soak-site", "soak-key")}, identify_by="id"))
        customerio.create_segment("Soak pros", segment_id=7)
        zendesk = stack.enter_context(ZendeskEmulator(tokens={"soak-token"}))
        zendesk.add_user_field("plan")
        world = SoakWorld(
            root,
            source,
            hook,
            hubspot,
            sf,
            mailchimp,
            meta,
            google,
            braze,
            iterable,
            klaviyo,
            intercom,
            customerio,
            zendesk,
            random.Random(cfg.seed),
        )
        world.create_source(cfg.users, cfg.accounts, cfg.shared_pairs)
        yield world


def activation_run(
    world: SoakWorld, *, kill_after_requests: int | None, timeout: float = 300, statuses: Counter[str] | None = None
) -> tuple[int | None, bool]:
    """One `activation run` child process; SIGKILL it once the emulators have seen
    `kill_after_requests` more requests. Returns (exit code or None if killed, killed);
    counts each sync's outcome in `statuses`."""
    cmd = [sys.executable, "-m", "activation.cli", "run", "--project", str(world.root), "--json"]
    start = world.requests
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below, once the child is reaped
    proc = subprocess.Popen(cmd, env=world.env, stdout=out, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if kill_after_requests is not None and world.requests - start >= kill_after_requests:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return None, True
            if time.monotonic() > deadline:
                raise TimeoutError(f"activation run did not finish within {timeout:.0f} s")
            time.sleep(0.005)
        if proc.returncode not in (0, 1) or os.environ.get("ACTIVATION_SOAK_VERBOSE"):
            sys.stderr.write((proc.stderr.read() if proc.stderr else b"").decode(errors="replace")[-3000:])
        out.seek(0)
        try:
            for sync in json.loads(out.read() or b"{}").get("syncs", []):
                if statuses is not None:
                    statuses[f"{sync['status']}"] += 1
        except ValueError:
            pass
        return proc.returncode, False
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        out.close()


def run_soak(root: Path, cfg: SoakConfig, log: Callable[[str], None] = lambda _: None) -> SoakReport:
    report = SoakReport(config=cfg)
    started = time.monotonic()
    with soak_world(root, cfg) as world:
        rng = random.Random(cfg.seed + 100)
        world.chaos(cfg.fault_rate, cfg.seed)
        statuses: Counter[str] = Counter()
        per_run = 10  # requests a run makes, as last seen: kills land inside a run, not after it
        for round_ in range(cfg.rounds):
            if round_:
                report.rows_mutated += world.mutate(cfg)
            kill_at = rng.randint(1, max(1, per_run)) if rng.random() < cfg.kill_rate else None
            before = world.requests
            code, killed = activation_run(world, kill_after_requests=kill_at, statuses=statuses)
            if not killed:
                per_run = world.requests - before
            report.runs += 1
            report.kills += killed
            report.runs_ok += code == 0
            report.runs_failed += code not in (0, None)
            log(
                f"round {round_ + 1}/{cfg.rounds}: {'SIGKILLed' if killed else f'exit {code}'}; "
                f"{world.requests:,} requests so far, {sum(world.faults().values())} faults"
            )
        world.calm()
        report.faults = world.faults()
        report.sync_runs = dict(statuses)
        for _ in range(3):  # one clean run must do; more would be a finding, and are counted
            report.clean_runs += 1
            code, _ = activation_run(world, kill_after_requests=None)
            if code == 0:
                break
        report.requests = world.requests
        report.syncs = world.check()
        report.model_rows = sum(
            n for (n,) in world.sql(f"SELECT (SELECT count(*) FROM {world.users_table}) + (SELECT count(*) FROM {world.accounts_table})")
        )
        report.identity = dict(world.identity_events)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Soak activation under random faults and SIGKILLs.")
    for name, f in SoakConfig.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(f.default), default=f.default, help=f.description)
    parser.add_argument("--json", action="store_true")
    args = vars(parser.parse_args(argv))
    as_json = args.pop("json")
    cfg = SoakConfig(**args)
    with tempfile.TemporaryDirectory(prefix="activation-soak-") as tmp:
        report = run_soak(Path(tmp), cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    if as_json:
        print(json.dumps({**report.model_dump(), "lost": report.lost, "corrupted": report.corrupted}, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.lost == 0 and report.corrupted == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
