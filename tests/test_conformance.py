"""The destination conformance suite: the same cases, run over every built-in destination
through its vendor's emulator (real SDK or HTTP client, real HTTP), through the CLI.

Each case states what every destination must do, whatever the vendor:

- every row is delivered once, under its identity, and a rerun sends nothing;
- a 429 is waited out, and the run succeeds;
- a 5xx that outlasts the retries fails the run as transient (the daemon backs off), and
  the next run delivers everything;
- a refused credential (401) fails the run as terminal (the daemon pauses the sync), and no
  secret appears in any output;
- a write whose answer was lost (the vendor applied it) is resent harmlessly: no duplicate;
- a row that leaves the model is removed at the destination;
- a row the vendor (or its identifier rules) refuses is rejected alone: the rest arrive.

A vendor joins the suite with one `Vendor` entry: how to start its emulator, its
`destinations:` block, and how to read the identities it holds. A third-party destination
joins it the same way: the example plugin (examples/destination-plugin, `type: jsonbin`) is
pip-installed into a folder of its own and run in a subprocess with that folder on
PYTHONPATH, registered through the entry point alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, make_project, plugin_emulator

from activation_emulators.braze import BrazeEmulator
from activation_emulators.customerio import CustomerioEmulator
from activation_emulators.google_ads import GoogleAdsEmulator
from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.intercom import IntercomEmulator
from activation_emulators.iterable import IterableEmulator
from activation_emulators.klaviyo import KlaviyoEmulator
from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.meta import MetaEmulator
from activation_emulators.salesforce import Field, SalesforceEmulator
from activation_emulators.webhook import WebhookReceiver
from activation_emulators.zendesk import ZendeskEmulator

SECRET = "conformance-secret-7f3a9c"  # every vendor's credential: it must never be printed


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _ad_members(people: set[frozenset[tuple[str, str]]], key: str) -> list[str]:
    return [v for person in people for k, v in person if k == key]


@dataclass(frozen=True)
class Vendor:
    type: str
    start: Callable[[], Any]  # a context manager: the emulator
    destination: Callable[[Any], str]  # the `dest:` block, pointed at the emulator
    sync: str  # the `people:` sync's settings (from, to and match are added)
    held: Callable[[Any], list[str]]  # the identities the vendor holds (a list: duplicates show)
    identity: Callable[[str], str] = lambda email: email.lower()  # a model email as the vendor holds it
    write: str | None = None  # a fault `match` that hits the requests writing rows
    throttles: bool = True  # the vendor answers 429 (Salesforce says REQUEST_LIMIT_EXCEEDED in a 403)
    refuses_bad_email: bool = True
    match: str = "email"  # the vendor's name for the email it matches on
    plugin: bool = False  # a third-party package: installed apart, run in a subprocess


def _jsonbin() -> Any:
    return plugin_emulator()(token=SECRET)


def _salesforce() -> SalesforceEmulator:
    emu = SalesforceEmulator(tokens=(SECRET,))
    emu.add_field("Contact", Field("Email_Key__c", external_id=True, unique=True))
    return emu


def _mailchimp() -> MailchimpEmulator:
    emu = MailchimpEmulator(api_keys={f"{SECRET}-us1"})
    emu.create_list("People")
    return emu


def _intercom() -> IntercomEmulator:
    emu = IntercomEmulator(tokens={SECRET})
    emu.add_attribute("contact", "plan")
    return emu


def _mailchimp_held(emu: MailchimpEmulator) -> list[str]:
    [list_id] = emu.lists()
    return list(emu.members(list_id))


def _meta_held(emu: MetaEmulator) -> list[str]:
    return [h for a in emu.audiences() for h in _ad_members(emu.members(a), "EMAIL")]


def _google_held(emu: GoogleAdsEmulator) -> list[str]:
    return [h for u in emu.user_lists() for h in _ad_members(emu.members(u), "hashedEmail")]


VENDORS = [
    Vendor(
        "webhook",
        lambda: WebhookReceiver(),
        lambda emu: f"{{type: webhook, url: '{emu.url}', headers: {{Authorization: 'Bearer {SECRET}'}}, max_retries: 2}}",
        "{mode: mirror, fields: {plan: plan}}",
        lambda emu: [r["email"] for r in emu.records("people").values()],
        write="POST /hook",
        refuses_bad_email=False,
    ),
    Vendor(
        "hubspot",
        lambda: HubSpotEmulator(tokens={SECRET}),
        lambda emu: f"{{type: hubspot, token: {SECRET}, base_url: '{emu.url}', max_retries: 2, requests_per_second: 500}}",
        "{object: contacts, mode: mirror, fields: {jobtitle: plan}}",
        lambda emu: [r["email"].lower() for r in emu.records("contacts").values()],
        write="/batch/upsert",
    ),
    Vendor(
        "salesforce",
        _salesforce,
        lambda emu: (
            f"{{type: salesforce, instance_url: 'https://{emu.instance}', session_id: {SECRET}, "
            f"transport_url: '{emu.url}', bulk_poll_seconds: 0.01, max_retries: 2}}"
        ),
        "{object: Contact, mode: mirror, fields: {LastName: plan, Email: email}}",
        lambda emu: [r["Email_Key__c"].lower() for r in emu.records("Contact").values()],
        write="/composite/sobjects",
        throttles=False,
        match="Email_Key__c",
    ),
    Vendor(
        "mailchimp",
        _mailchimp,
        lambda emu: f"{{type: mailchimp, api_key: {SECRET}-us1, base_url: '{emu.url}', list_name: People, max_retries: 2}}",
        "{mode: mirror, fields: {FNAME: plan}}",
        _mailchimp_held,
        write="POST /3.0/lists/",
        match="email_address",
    ),
    Vendor(
        "meta_audience",
        lambda: MetaEmulator(tokens={SECRET}),
        lambda emu: (
            f"{{type: meta_audience, token: {SECRET}, ad_account: act_4242, base_url: '{emu.url}', "
            "retry_backoff_seconds: 0.01, max_retries: 2}"
        ),
        "{mode: audience, audience: People}",
        _meta_held,
        identity=lambda e: _sha(e.strip().lower()),
        write="/users",
    ),
    Vendor(
        "google_ads",
        lambda: GoogleAdsEmulator(developer_tokens={SECRET}, client_id="cid", client_secret=SECRET, refresh_tokens={SECRET}),
        lambda emu: (
            f"{{type: google_ads, customer_id: 123-456-7890, developer_token: {SECRET}, client_id: cid, "
            f"client_secret: {SECRET}, refresh_token: {SECRET}, base_url: '{emu.url}', "
            f"token_url: '{emu.token_url}', retry_backoff_seconds: 0.01, max_retries: 2}}"
        ),
        "{mode: audience, audience: People}",
        _google_held,
        identity=lambda e: _sha(e.strip().lower()),
        write=":addOperations",
    ),
    Vendor(
        "iterable",
        lambda: IterableEmulator(api_keys={SECRET}),
        lambda emu: f"{{type: iterable, api_key: {SECRET}, base_url: '{emu.url}', max_retries: 2}}",
        "{mode: mirror, fields: {plan: plan}}",
        lambda emu: emu.identities(),
        write="/api/users/bulkUpdate",
    ),
    Vendor(
        "braze",
        lambda: BrazeEmulator(api_keys={SECRET}),
        lambda emu: f"{{type: braze, api_key: {SECRET}, rest_endpoint: '{emu.url}', max_retries: 2}}",
        "{mode: mirror, fields: {email: email, plan: plan}}",
        lambda emu: list(emu.profiles()),
        identity=lambda email: email,  # external_id is compared exactly
        write="POST /users/track",
        match="external_id",
    ),
    Vendor(
        "klaviyo",
        lambda: KlaviyoEmulator(api_keys={SECRET}),
        lambda emu: f"{{type: klaviyo, api_key: {SECRET}, base_url: '{emu.url}', poll_seconds: 0.01, max_retries: 2}}",
        "{mode: mirror, fields: {plan: plan}}",
        lambda emu: emu.held(),  # profiles not suppressed (a removal suppresses by default)
        write="POST /api/profile-bulk-import-jobs",
    ),
    Vendor(
        "intercom",
        _intercom,
        lambda emu: f"{{type: intercom, token: {SECRET}, base_url: '{emu.url}', max_retries: 2}}",
        "{object: contacts, mode: mirror, fields: {plan: plan}}",
        lambda emu: [str(c["email"]).lower() for c in emu.live_contacts()],
        write="POST /contacts:create",
    ),
    Vendor(
        "customerio",
        lambda: CustomerioEmulator(credentials={("site-1", SECRET)}, identify_by="email"),
        lambda emu: f"{{type: customerio, site_id: site-1, api_key: {SECRET}, url: '{emu.url}', identify_by: email, max_retries: 2}}",
        "{mode: mirror, fields: {plan: plan}}",
        lambda emu: emu.identities(),
        write="POST /api/v2/batch",
    ),
    Vendor(
        "zendesk",
        lambda: ZendeskEmulator(tokens={SECRET}),
        lambda emu: (
            f"{{type: zendesk, subdomain: acme, email: agent@example.com, token: {SECRET}, base_url: '{emu.url}', "
            "job_poll_seconds: 0.01, max_retries: 2}"
        ),
        "{mode: mirror, fields: {name: plan, notes: plan}}",
        lambda emu: list(emu.people()),
        write="POST /api/v2/users/create_or_update_many",
    ),
    Vendor(
        "jsonbin",
        _jsonbin,
        lambda emu: f"{{type: jsonbin, url: '{emu.url}', token: {SECRET}, max_retries: 2}}",
        "{mode: mirror, fields: {plan: plan}}",
        lambda emu: [r["email"] for r in emu.records().values()],
        write="POST /bins/",
        refuses_bad_email=False,
        plugin=True,
    ),
]


@dataclass(frozen=True)
class Ran:
    """What a command printed and how it ended, in or out of process alike."""

    exit_code: int
    stdout: str
    output: str  # stdout and stderr


@dataclass
class Case:
    vendor: Vendor
    emu: Any
    p: Project
    site: Path | None = None  # where a plugin vendor is installed

    def cli(self, *args: str, expect: int | None = None) -> Ran:
        if self.site is None:
            r = self.p.cli(*args, expect=expect)
            return Ran(r.exit_code, r.stdout, r.output)
        env = {**os.environ, **self.p.env, "HOOK_URL": self.p.rx.url, "PYTHONPATH": str(self.site)}
        done = subprocess.run(
            [sys.executable, "-m", "activation.cli", *args, "--project", str(self.p.root)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if expect is not None:
            assert done.returncode == expect, f"exit {done.returncode}, wanted {expect}:\n{done.stdout}\n{done.stderr}"
        return Ran(done.returncode, done.stdout, done.stdout + done.stderr)

    def run(self, *args: str, expect: int | None = None) -> dict[str, Any]:
        result = self.cli("run", "people", *args, "--json", expect=expect)
        assert SECRET not in result.output, "a secret was printed"
        [sync] = json.loads(result.stdout)["syncs"]
        return sync

    def held(self) -> list[str]:
        return sorted(self.vendor.held(self.emu))

    def model(self) -> list[str]:
        return sorted(self.vendor.identity(e) for (e,) in self.p.sql("SELECT email FROM src.users"))


@pytest.fixture(params=VENDORS, ids=lambda v: v.type)
def case(request: pytest.FixtureRequest, tmp_path: Path, rx: WebhookReceiver) -> Iterator[Case]:
    vendor: Vendor = request.param
    with ExitStack() as stack:
        emu = stack.enter_context(vendor.start())
        p = make_project(tmp_path / "p", rx, n=30, orders=60)
        text = (p.root / "syncs.yaml").read_text().replace("destinations:\n", f"destinations:\n  dest: {vendor.destination(emu)}\n", 1)
        sync = vendor.sync.replace("{", f"{{from: user, to: dest, match: {{{vendor.match}: email}}, max_removal: 100%, ", 1)
        (p.root / "syncs.yaml").write_text(text + f"  people: {sync}\n")
        yield Case(vendor, emu, p, request.getfixturevalue("plugin_site") if vendor.plugin else None)


def test_every_row_is_delivered_once_and_a_rerun_sends_nothing(case: Case) -> None:
    first = case.run(expect=0)
    assert first["status"] == "success" and first["acknowledged"] == 30, first
    assert case.held() == case.model()
    again = case.run(expect=0)
    assert again["status"] == "up_to_date" and again["sent"] == 0, again


def test_a_429_is_waited_out(case: Case) -> None:
    if not case.vendor.throttles:
        pytest.skip(f"{case.vendor.type} does not answer 429 (its own test covers its quota error)")
    case.emu.faults.inject("throttle", n=2, retry_after=0, match=case.vendor.write)
    result = case.run(expect=0)
    assert result["status"] == "success", result
    assert result["destination_report"]["throttled"] >= 1
    assert case.held() == case.model()


def test_a_5xx_outlasting_the_retries_fails_the_run_as_transient(case: Case) -> None:
    case.emu.faults.inject("error", n=1000, status=503)
    result = case.run(expect=1)
    assert result["status"] == "failed" and result["terminal"] is False, result
    assert case.emu.faults.injected["error"] >= 2, "retried before giving up"
    case.emu.faults.clear()
    assert case.run(expect=0)["status"] == "success"
    assert case.held() == case.model()


def test_a_refused_credential_fails_the_run_as_terminal_and_prints_no_secret(case: Case) -> None:
    case.emu.faults.inject("unauthorized", n=1000)
    result = case.run(expect=1)
    assert result["status"] == "failed" and result["terminal"] is True, result
    assert case.emu.faults.injected["unauthorized"] == 1, "a refused credential is not retried"
    assert result["error"]
    history = case.cli("history", "people", "--json")
    assert SECRET not in history.output
    assert case.held() == []


def test_a_write_whose_answer_was_lost_is_resent_without_a_duplicate(case: Case) -> None:
    case.emu.faults.inject("drop_after", n=1, match=case.vendor.write)
    case.run()  # failed, partial or success (a retry may have been answered): the rows may be held
    assert case.emu.faults.injected["drop_after"] == 1, "the answer of a write was lost"
    case.emu.faults.clear()
    case.run(expect=0)
    assert case.held() == case.model(), "exactly one record or member per identity"
    assert case.run(expect=0)["status"] == "up_to_date"


def test_a_row_leaving_the_model_is_removed(case: Case) -> None:
    case.run(expect=0)
    case.p.sql("DELETE FROM src.users WHERE user_id IN ('u0003', 'u0011', 'u0020')")
    result = case.run(expect=0)
    assert result["status"] == "success" and result["released"] == 3, result
    assert case.held() == case.model() and len(case.model()) == 27


def test_a_row_the_vendor_refuses_is_rejected_alone(case: Case) -> None:
    if not case.vendor.refuses_bad_email:
        pytest.skip(f"{case.vendor.type} accepts any value")
    case.p.sql("UPDATE src.users SET email = 'not an email' WHERE user_id = 'u0007'")
    result = case.run(expect=1)
    assert result["status"] == "partial", result
    rejected = result["rejected_by_destination"] + result["plan"]["counts"]["rejected"]
    assert rejected == 1 and result["acknowledged"] == 29, result
    assert case.held() == sorted(i for i in case.model() if i != case.vendor.identity("not an email"))
