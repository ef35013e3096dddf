"""The soak: many runs of several syncs while the source mutates, faults fire at random and the
process is SIGKILLed at random points; then one clean run, and every destination must equal
the model exactly.

Used in a short form by `tests/test_soak.py` (CI) and in a long form by `bench/soak.py`.
Each run is a real `activation run` child process (so a kill is a real SIGKILL, mid-batch);
the emulators live in this process and keep their records across runs, like a vendor would.
The model the destinations must hold is computed here from the source tables with plain SQL,
independently of activation's code.
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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, Field

from activation_emulators.faults import Fault
from activation.destinations.identifiers import sha256_hex
from activation_emulators.google_ads import GoogleAdsEmulator
from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.meta import MetaEmulator
from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.salesforce import Field as SalesforceField, SalesforceEmulator
from activation_emulators.webhook import WebhookReceiver

PROJECT = """
version: 1
warehouse: {type: duckdb, path: warehouse.duckdb}
entities:
  user: {table: src.users, key: user_id}
  account: {table: src.accounts, key: account_id}
audiences:
  pros: {entity: user, where: "plan = 'pro'"}
destinations:
  hook: {type: webhook, url: "${SOAK_HOOK_URL}", batch_size: 200, max_retries: 4, timeout_seconds: 5}
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
syncs:
  users_to_hook:
    {from: user, to: hook, object: contacts, mode: mirror, match: {email: email},
     fields: {first_name: first_name, plan: plan, score: score}, max_removal: 100%}
  users_to_hubspot:
    {from: user, to: hubspot, object: contacts, mode: mirror, match: {email: email},
     fields: {firstname: first_name, plan: plan}, max_removal: 100%}
  pros_to_hubspot_list:
    {from: pros, to: hubspot, object: contacts, mode: audience, audience: Soak pros, match: {email: email},
     max_removal: 100%}
  users_to_salesforce:
    {from: user, to: salesforce, object: Contact, mode: mirror, match: {Soak_Email__c: email},
     fields: {LastName: first_name, Email: email}, max_removal: 100%}
  pros_to_salesforce_campaign:
    {from: pros, to: salesforce, object: Contact, mode: audience, audience: Soak pros, match: {Email: email},
     max_removal: 100%}
  users_to_mailchimp:
    {from: user, to: mailchimp, mode: mirror, match: {email_address: email}, fields: {FNAME: first_name}, max_removal: 100%}
  pros_to_mailchimp_tag:
    {from: pros, to: mailchimp, mode: audience, audience: Pros, match: {email_address: email}, max_removal: 100%}
  pros_to_meta:
    {from: pros, to: meta, mode: audience, audience: Soak pros, match: {email: email}, max_removal: 100%}
  pros_to_google:
    {from: pros, to: google, mode: audience, audience: Soak pros, match: {email: email}, max_removal: 100%}
  accounts_to_salesforce:
    {from: account, to: salesforce, object: Account, mode: mirror, match: {External_Id__c: account_id},
     fields: {Name: name, NumberOfEmployees: employees}, max_removal: 100%}
"""

PLANS = ("free", "pro", "enterprise")

#: Random faults per emulator: what each vendor really does when it misbehaves.
HTTP_CHAOS: dict[Fault, float] = {
    Fault("error", 500): 3, Fault("error", 502): 1, Fault("error", 503): 2, Fault("throttle", retry_after=0.2): 2,
    Fault("throttle", retry_after=None): 1, Fault("drop"): 2, Fault("drop_after"): 2, Fault("truncate"): 1,
}
# Salesforce does not answer 429 (its quota error is a 403 REQUEST_LIMIT_EXCEEDED).
CHAOS = {"salesforce": {f: w for f, w in HTTP_CHAOS.items() if f.kind != "throttle"}}


class SoakConfig(BaseModel):
    users: int = Field(300, ge=10)
    accounts: int = Field(60, ge=5)
    rounds: int = Field(6, ge=1, description="Runs while faults fire (each after a mutation of the source).")
    kill_rate: float = Field(0.5, ge=0, le=1, description="Share of runs SIGKILLed at a random point.")
    fault_rate: float = Field(0.08, ge=0, le=1, description="Share of requests struck by a random fault.")
    change_rate: float = Field(0.05, ge=0, le=1, description="Share of rows updated per round.")
    churn_rate: float = Field(0.02, ge=0, le=1, description="Share of rows deleted, and as many inserted, per round.")
    email_change_rate: float = Field(0.005, ge=0, le=1, description="Share of users whose email (the match key) changes per round.")
    seed: int = 1


class SyncCheck(BaseModel):
    expected: int
    held: int
    lost: int = Field(description="Rows of the model missing at the destination.")
    stale: int = Field(description="Rows present with other values than the model's.")
    orphaned: int = Field(description="Rows at the destination that left the model (should have been removed).")
    duplicated: int = Field(description="Extra records sharing one identity (0 where the API upserts).")


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
    seconds: float = 0.0
    syncs: dict[str, SyncCheck] = Field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(c.lost for c in self.syncs.values())

    @property
    def corrupted(self) -> int:
        return sum(c.stale + c.orphaned + c.duplicated for c in self.syncs.values())

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        out = [
            f"runs {self.runs} ({self.runs_ok} ok, {self.runs_failed} failed, {self.kills} SIGKILLed), "
            f"then {self.clean_runs} clean run(s); {self.seconds:.1f} s; sync outcomes of unkilled runs: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.sync_runs.items())) or "none"),
            f"model rows {self.model_rows:,} (users + accounts); rows mutated {self.rows_mutated:,}; "
            f"requests {self.requests:,}; faults injected {sum(self.faults.values()):,} ({faults})",
        ]
        for name, c in self.syncs.items():
            out.append(f"  {name}: expected {c.expected:,}, held {c.held:,}; lost {c.lost}, stale {c.stale}, "
                       f"orphaned {c.orphaned}, duplicated {c.duplicated}")
        out.append(f"rows lost: {self.lost}; rows corrupted (stale, orphaned or duplicated): {self.corrupted}")
        return out


@dataclass
class SoakWorld:
    """The project directory, its warehouse and the emulators standing in for the vendors."""

    root: Path
    hook: WebhookReceiver
    hubspot: HubSpotEmulator
    salesforce: SalesforceEmulator
    mailchimp: MailchimpEmulator
    meta: MetaEmulator
    google: GoogleAdsEmulator
    rng: random.Random
    next_user: int = 0
    next_account: int = 0
    emails: Counter[str] = field(default_factory=Counter)

    @property
    def env(self) -> dict[str, str]:
        sf = self.salesforce
        return {**os.environ, "SOAK_HOOK_URL": self.hook.url, "SOAK_HUBSPOT_URL": self.hubspot.url,
                "SOAK_SF_INSTANCE": f"https://{sf.instance}", "SOAK_SF_TOKEN": sf.token, "SOAK_SF_URL": sf.url,
                "SOAK_MC_URL": self.mailchimp.url, "SOAK_META_URL": self.meta.url, "SOAK_GOOGLE_URL": self.google.url}

    @property
    def emulators(self) -> dict[str, Any]:
        return {"hook": self.hook, "hubspot": self.hubspot, "salesforce": self.salesforce, "mailchimp": self.mailchimp,
                "meta": self.meta, "google": self.google}

    @property
    def requests(self) -> int:
        return sum(emu.request_count for emu in self.emulators.values())

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            result = con.execute(statement, params or [])
            return result.fetchall() if result.description else []
        finally:
            con.close()

    # ------------------------------------------------------------ the source

    def _user(self, i: int) -> tuple[Any, ...]:
        plan = self.rng.choice(PLANS)
        return (f"u{i:07d}", f"user{i}.{self.rng.randrange(10**6)}@soak.example", f"First{self.rng.randrange(1000)}",
                plan, round(self.rng.random() * 100, 2))

    def _account(self, i: int) -> tuple[Any, ...]:
        return (f"a{i:06d}", f"Account {i} {self.rng.randrange(1000)}", self.rng.randrange(1, 5000))

    def create_source(self, users: int, accounts: int) -> None:
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        con.execute("CREATE SCHEMA src")
        con.execute("CREATE TABLE src.users (user_id VARCHAR PRIMARY KEY, email VARCHAR, first_name VARCHAR, plan VARCHAR, score DOUBLE)")
        con.execute("CREATE TABLE src.accounts (account_id VARCHAR PRIMARY KEY, name VARCHAR, employees INTEGER)")
        _insert(con, "src.users", [self._user(i) for i in range(users)])
        _insert(con, "src.accounts", [self._account(i) for i in range(accounts)])
        con.close()
        self.next_user, self.next_account = users, accounts

    def mutate(self, cfg: SoakConfig) -> int:
        """Update, delete, insert and re-key some rows; return how many rows were touched."""
        rng = self.rng
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            users = [r[0] for r in con.execute("SELECT user_id FROM src.users").fetchall()]
            accounts = [r[0] for r in con.execute("SELECT account_id FROM src.accounts").fetchall()]
            touched = 0
            for uid in rng.sample(users, max(1, int(len(users) * cfg.change_rate))):
                con.execute("UPDATE src.users SET plan = ?, first_name = ?, score = ? WHERE user_id = ?",
                            [rng.choice(PLANS), f"First{rng.randrange(1000)}", round(rng.random() * 100, 2), uid])
                touched += 1
            for uid in rng.sample(users, int(len(users) * cfg.email_change_rate)):
                con.execute("UPDATE src.users SET email = ? WHERE user_id = ?", [f"moved.{uid}.{rng.randrange(10**9)}@soak.example", uid])
                touched += 1
            for aid in rng.sample(accounts, max(1, int(len(accounts) * cfg.change_rate))):
                con.execute("UPDATE src.accounts SET name = ?, employees = ? WHERE account_id = ?",
                            [f"Account {aid} {rng.randrange(1000)}", rng.randrange(1, 5000), aid])
                touched += 1
            churned = self._churn(con, "src.users", "user_id", rng.sample(users, int(len(users) * cfg.churn_rate)), "next_user", self._user)
            churned += self._churn(con, "src.accounts", "account_id", rng.sample(accounts, int(len(accounts) * cfg.churn_rate)),
                                   "next_account", self._account)
            return touched + 2 * churned
        finally:
            con.close()

    def _churn(self, con: duckdb.DuckDBPyConnection, table: str, key: str, gone: list[str], counter: str,
               make: Callable[[int], tuple[Any, ...]]) -> int:
        """Delete `gone` rows of `table` and insert as many new ones (numbered from `counter`)."""
        if not gone:
            return 0
        con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))", [gone])
        start = getattr(self, counter)
        _insert(con, table, [make(start + i) for i in range(len(gone))])
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
        users = {uid: (email, first, plan, score) for uid, email, first, plan, score in self.sql(
            "SELECT user_id, email, first_name, plan, score FROM src.users")}
        accounts = {aid: (name, emp) for aid, name, emp in self.sql("SELECT account_id, name, employees FROM src.accounts")}
        checks = {}

        want_hook = {uid: {"email": e, "first_name": f, "plan": p, "score": s} for uid, (e, f, p, s) in users.items()}
        checks["users_to_hook"] = _compare(want_hook, {k: [v] for k, v in self.hook.records("users_to_hook").items()})

        held_contacts: dict[str, list[dict[str, Any]]] = {}
        for props in self.hubspot.records("contacts").values():
            held_contacts.setdefault(props.get("email", "").lower(), []).append(
                {"firstname": props.get("firstname", ""), "plan": props.get("plan", "")})
        want_contacts = {e.lower(): {"firstname": f, "plan": p} for e, f, p, _ in users.values()}
        checks["users_to_hubspot"] = _compare(want_contacts, held_contacts)

        lists = [i for i, meta in self.hubspot.lists().items() if meta["name"] == "Soak pros"]
        records = self.hubspot.records("contacts")
        members: dict[str, list[dict[str, Any]]] = {}
        for list_id in lists:
            for m in self.hubspot.list_members(list_id):
                email = records.get(m, {}).get("email", f"<archived record {m}>").lower()
                members.setdefault(email, []).append({})
        want_members = {e.lower(): {} for e, _, p, _ in users.values() if p == "pro"}
        checks["pros_to_hubspot_list"] = _compare(want_members, members, duplicated_extra=max(0, len(lists) - 1))

        held_people: dict[str, list[dict[str, Any]]] = {}
        for rec in self.salesforce.records("Contact").values():
            held_people.setdefault(str(rec.get("Soak_Email__c")).lower(), []).append({"LastName": rec.get("LastName")})
        checks["users_to_salesforce"] = _compare({e.lower(): {"LastName": f} for e, f, _, _ in users.values()}, held_people)

        campaigns = [c for c in self.salesforce.records("Campaign").values() if c.get("Name") == "Soak pros"]
        contacts = self.salesforce.records("Contact")
        in_campaign: dict[str, list[dict[str, Any]]] = {}
        for m in self.salesforce.records("CampaignMember").values():
            if any(m.get("CampaignId") == c.get("Id") for c in campaigns):
                email = str(contacts.get(m.get("ContactId"), {}).get("Email", f"<deleted contact {m.get('ContactId')}>"))
                in_campaign.setdefault(email.lower(), []).append({})
        checks["pros_to_salesforce_campaign"] = _compare(want_members, in_campaign, duplicated_extra=max(0, len(campaigns) - 1))

        [list_id] = self.mailchimp.lists()
        live = self.mailchimp.members(list_id)
        held_members = {e: [{"FNAME": m["merge_fields"].get("FNAME")}] for e, m in live.items()}
        checks["users_to_mailchimp"] = _compare({e.lower(): {"FNAME": f} for e, f, _, _ in users.values()}, held_members)
        # archived members keep their tags in Mailchimp (and get them back if re-added): only
        # the live members' tags are the audience marketing sees
        tagged = {e: [{}] for e in self.mailchimp.tag_members(list_id, "Pros") if e in live}
        checks["pros_to_mailchimp_tag"] = _compare(want_members, tagged)

        # ad platforms hold hashes: compare the hashed, lower-cased emails of the pros
        want_hashes = {sha256_hex(e.strip().lower()): {} for e, _, p, _ in users.values() if p == "pro"}
        for name, emu, audience, key in (("pros_to_meta", self.meta, "audience_named", "EMAIL"),
                                         ("pros_to_google", self.google, "list_named", "hashedEmail")):
            try:
                people = emu.members(getattr(emu, audience)("Soak pros"))
            except ValueError:  # never created (no run got that far)
                people = set()
            held_hashes: dict[str, list[dict[str, Any]]] = {}
            for person in people:
                held_hashes.setdefault(dict(person).get(key, "?"), []).append({})
            checks[name] = _compare(want_hashes, held_hashes)

        held_accounts: dict[str, list[dict[str, Any]]] = {}
        for rec in self.salesforce.records("Account").values():
            held_accounts.setdefault(str(rec.get("External_Id__c")), []).append(
                {"Name": rec.get("Name"), "NumberOfEmployees": rec.get("NumberOfEmployees")})
        want_accounts = {aid: {"Name": n, "NumberOfEmployees": e} for aid, (n, e) in accounts.items()}
        checks["accounts_to_salesforce"] = _compare(want_accounts, held_accounts)
        return checks


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Rows in one statement, column by column (DuckDB's executemany goes row by row)."""
    columns = [list(c) for c in zip(*rows)]
    con.execute(f"INSERT INTO {table} SELECT {', '.join('unnest(?)' for _ in columns)}", columns)


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


def _compare(want: dict[str, dict[str, Any]], held: dict[str, list[dict[str, Any]]], duplicated_extra: int = 0) -> SyncCheck:
    lost = sum(1 for k in want if k not in held)
    stale = sum(1 for k, w in want.items() if k in held and not any(_same(w, h) for h in held[k]))
    orphaned = sum(1 for k in held if k not in want)
    duplicated = sum(len(v) - 1 for v in held.values()) + duplicated_extra
    return SyncCheck(expected=len(want), held=sum(len(v) for v in held.values()), lost=lost, stale=stale,
                     orphaned=orphaned, duplicated=duplicated)


@contextmanager
def soak_world(root: Path, cfg: SoakConfig) -> Iterator[SoakWorld]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "syncs.yaml").write_text(PROJECT)
    with ExitStack() as stack:
        hook = stack.enter_context(WebhookReceiver(keep_requests=False))
        hubspot = stack.enter_context(HubSpotEmulator(tokens={"soak-token"}))
        hubspot.add_property("contacts", "plan")
        sf = stack.enter_context(SalesforceEmulator(keep_requests=False))
        sf.add_field("Contact", SalesforceField("Soak_Email__c", external_id=True, unique=True))
        mailchimp = stack.enter_context(MailchimpEmulator(api_keys={"soak-key-us1"}))
        mailchimp.create_list("Soak")
        meta = stack.enter_context(MetaEmulator(tokens={"soak-token"}, record=False))
        google = stack.enter_context(GoogleAdsEmulator(developer_tokens={"dev"}, client_id="cid", client_secret="secret",
                                                       refresh_tokens={"refresh"}, record=False))
        world = SoakWorld(root, hook, hubspot, sf, mailchimp, meta, google, random.Random(cfg.seed))
        world.create_source(cfg.users, cfg.accounts)
        yield world


def activation_run(world: SoakWorld, *, kill_after_requests: int | None, timeout: float = 300,
                   statuses: Counter[str] | None = None) -> tuple[int | None, bool]:
    """One `activation run` child process; SIGKILL it once the emulators have seen
    `kill_after_requests` more requests. Returns (exit code or None if killed, killed);
    counts each sync's outcome in `statuses`."""
    cmd = [sys.executable, "-m", "activation.cli", "run", "--project", str(world.root), "--json"]
    start = world.requests
    out = tempfile.TemporaryFile()
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
            log(f"round {round_ + 1}/{cfg.rounds}: {'SIGKILLed' if killed else f'exit {code}'}; "
                f"{world.requests:,} requests so far, {sum(world.faults().values())} faults")
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
        report.model_rows = sum(n for (n,) in world.sql(
            "SELECT (SELECT count(*) FROM src.users) + (SELECT count(*) FROM src.accounts)"))
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
