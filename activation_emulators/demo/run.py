"""`activation demo` (what `make demo` runs): the whole loop on the embedded default.

Generates a B2B SaaS warehouse in DuckDB, starts a local webhook receiver standing in for a
CRM, then: validate → plan → run → run again (nothing to send) → change and delete some
source rows → plan (exactly those) → run → check every destination equals the model.
No credentials, no network.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.markup import escape

from activation.destinations.file.destination import read_file_records
from activation.extras import needs
from activation.project.loader import load_project
from activation_emulators.demo.data import PLANS, generate, mutate
from activation_emulators.webhook import WebhookReceiver

CHANGED, DELETED = 12, 4
WEBHOOK_ENV = "CRM_WEBHOOK_URL"
MAILCHIMP_KEY = "demo0123456789abcdef0123456789ab-us1"
# The custom contact properties users_to_hubspot writes, as the demo portal defines them.
HUBSPOT_PROPERTIES: dict[str, dict[str, Any]] = {
    "plan": {"type": "enumeration", "field_type": "select", "options": [*PLANS, "none"]},
    "onboarding_steps": {"type": "number"},
    "last_contact_at": {"type": "datetime"},
}


def _cli(console: Console, *args: str) -> int:
    from activation.cli import app

    console.rule(f"[bold]$ activation {' '.join(args)}", align="left")
    try:
        app(list(args), standalone_mode=False)
        return 0
    except SystemExit as e:  # typer.Exit surfaces as SystemExit / click Exit
        return int(e.code or 0)
    except Exception as e:  # click.exceptions.Exit carries exit_code
        code = getattr(e, "exit_code", None)
        if code is None:
            raise
        return int(code)


#: The example project, shipped as package data (in a clone: links to the root's syncs.yaml,
#: syncs/ and audiences/, which a build copies into the package).
EXAMPLE = Path(__file__).parent / "project"
#: What the demo needs beyond the base install: the emulators and the vendors it syncs to.
NEEDS = {
    "hubspot-api-client": "hubspot",
    "simple-salesforce": "simple_salesforce",
    "mailchimp-marketing": "mailchimp_marketing",
    "phonenumbers": "phonenumbers",
    "openapi-core": "openapi_core",
    "requests": "requests",
}


def demo_project(directory: Path | None, console: Console) -> Path:
    """Where the demo runs: `directory` (default: the current one, e.g. a clone's root) when it
    holds a syncs.yaml; otherwise the example project is copied there first (default:
    ./activation-demo), so an installed package runs it from anywhere."""
    chosen = directory if directory is not None else Path(".")
    if (chosen / "syncs.yaml").exists():
        return chosen
    target = directory if directory is not None else Path("activation-demo")
    if not (target / "syncs.yaml").exists():
        shutil.copytree(EXAMPLE, target, dirs_exist_ok=True)  # links in a clone are copied as files
        console.print(f"[bold]Example project[/] copied to {target}/ (syncs.yaml, syncs/, audiences/)", highlight=False)
    return target


def run_demo(directory: Path | None, console: Console) -> int:
    if (problem := needs("activation demo", "demo", NEEDS)) is not None:
        console.print(f"error: {problem}", style="bold red", markup=False, highlight=False)
        return 2
    root = demo_project(directory, console).resolve()
    loaded = load_project(root)
    warehouse = root / (loaded.project.warehouse.path or ".activation/warehouse.duckdb")
    # A demo starts from scratch every time: a new warehouse, no state, no output files.
    shutil.rmtree(warehouse.parent, ignore_errors=True)
    shutil.rmtree(root / "out", ignore_errors=True)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse))
    counts = generate(con)
    con.close()
    console.print(f"[bold]Demo warehouse[/] {warehouse.relative_to(root)}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))

    from activation_emulators.demo.ads import ad_emulators
    from activation_emulators.hubspot import HubSpotEmulator
    from activation_emulators.mailchimp import MailchimpEmulator
    from activation_emulators.salesforce import SalesforceEmulator

    with (
        WebhookReceiver() as rx,
        HubSpotEmulator(tokens={"demo-token"}) as hubspot,
        SalesforceEmulator() as sf,
        MailchimpEmulator(api_keys={MAILCHIMP_KEY}) as mailchimp,
        ad_emulators() as (meta, google),
    ):
        _mailchimp_audience(mailchimp)
        os.environ.update(MAILCHIMP_URL=mailchimp.url, MAILCHIMP_API_KEY=MAILCHIMP_KEY)
        os.environ.update(SALESFORCE_INSTANCE_URL=f"https://{sf.instance}", SALESFORCE_SESSION_ID=sf.token, SALESFORCE_TRANSPORT_URL=sf.url)
        os.environ[WEBHOOK_ENV] = rx.url
        os.environ["HUBSPOT_URL"], os.environ["HUBSPOT_TOKEN"] = hubspot.url, "demo-token"
        for prop, kind in HUBSPOT_PROPERTIES.items():  # the demo portal's custom properties
            hubspot.add_property("contacts", prop, **kind)
        console.print(f"[bold]Local CRM webhook receiver[/] at {rx.url}")
        checked = (
            "validates every request against HubSpot's OpenAPI documents"
            if hubspot.unvalidated_reason is None
            else f"requests not validated: {hubspot.unvalidated_reason}"
        )
        console.print(f"[bold]Local HubSpot emulator[/] at {hubspot.url} ({checked})", highlight=False)
        console.print(f"[bold]Local Salesforce emulator[/] at {sf.url} (simple-salesforce is routed to it)")
        console.print(f"[bold]Local Mailchimp emulator[/] at {mailchimp.url} (audience 'Customers', through mailchimp-marketing)")
        console.print(f"[bold]Local Meta Graph API emulator[/] at {meta.url} and [bold]Google Ads API emulator[/] at {google.url}\n")
        p = ["--project", str(root)]
        steps = [("validate",), ("plan",), ("run",), ("run",)]
        for step in steps:
            code = _cli(console, *step, *p)
            if code != 0:
                console.print(f"[red]demo step failed: activation {' '.join(step)} (exit {code})[/]")
                return code

        con = duckdb.connect(str(warehouse))
        changed = mutate(con, change=CHANGED, delete=DELETED)
        con.close()
        console.rule("[bold]Changing the source", align="left")
        console.print(f"changed the title of {CHANGED} users: {', '.join(changed['changed_user_ids'])}")
        console.print(f"deleted {DELETED} users: {', '.join(changed['deleted_user_ids'])}")

        from activation import app as application

        with application.workspace(load_project(root), dry_run=True) as w:
            plan = w.plan(w.prepare(["users_to_crm"], None))[0]
        _cli(console, "plan", "users_to_crm", *p)
        exact = (
            plan.counts.changed == CHANGED
            and plan.counts.removed == DELETED
            and {c.key for c in plan.changed_samples} <= set(changed["changed_user_ids"])
        )
        mark = "[green]✓[/]" if exact else "[red]✗[/]"
        console.print(
            f"{mark} the plan holds exactly the {CHANGED} changed users (fields: "
            f"{', '.join(plan.field_changes)}) and the {DELETED} deleted ones"
        )
        if _cli(console, "run", *p) != 0:
            return 1
        invalid = len(hubspot.invalid_requests)
        if hubspot.unvalidated_reason is not None:  # nothing was checked: no green mark for it
            console.print(
                f"[yellow]![/] HubSpot: {hubspot.request_count} requests, not validated ({escape(hubspot.unvalidated_reason)})",
                highlight=False,
            )
        else:
            console.print(f"{'[green]✓[/]' if not invalid else '[red]✗[/]'} HubSpot: {hubspot.request_count} requests, {invalid} invalid")
        _cli(console, "status", *p)
        ok = exact and _check_destinations(console, root, rx, hubspot, sf, mailchimp, (meta, google))
        ok &= _check_no_pii(console, warehouse, meta, google)
    return 0 if ok else 1


def _mailchimp_audience(mailchimp: Any) -> None:
    """The demo account's audience, with the merge fields syncs/email.yaml maps."""
    list_id = mailchimp.create_list("Customers")
    for tag, type_ in (("SIGNUP", "date"), ("STEPS", "number"), ("COMPANY", "text"), ("ADOPTION", "number")):
        mailchimp.add_merge_field(list_id, tag, type_)


def _mailchimp_held(mailchimp: Any, sync: Any, delivered: list[dict[str, Any]]) -> tuple[dict, dict]:
    """(what the tag holds, what was delivered), as {email: merge fields} in Mailchimp's form."""
    from activation.destinations.mailchimp.destination import merge_value

    [list_id] = list(mailchimp.lists())
    types = mailchimp.merge_fields(list_id)
    members = mailchimp.members(list_id)
    held = {e: {t: members[e]["merge_fields"].get(t) for t in sync.fields} for e in mailchimp.tag_members(list_id, sync.audience)}
    want = {str(v["email_address"]).lower(): {t: merge_value(types.get(t), v.get(t)) for t in sync.fields} for v in delivered}
    return held, want


def _check_no_pii(console: Console, warehouse: Path, meta: Any, google: Any) -> bool:
    from activation_emulators.demo.ads import raw_pii_seen

    raw = meta.raw_requests() + google.raw_requests()
    seen = raw_pii_seen(str(warehouse), raw)
    mark = "[green]✓[/]" if not seen and raw else "[red]✗[/]"
    console.print(
        f"{mark} no raw email or phone number in the {len(raw):,} bytes the Meta and Google emulators received"
        + (f" (found {len(seen)})" if seen else "")
    )
    return not seen and bool(raw)


def _check_destinations(console: Console, root: Path, rx: WebhookReceiver, hubspot: Any, sf: Any, mailchimp: Any, ads: Any = None) -> bool:
    """Every destination holds exactly what the state store says was delivered, and the
    state equals the model (the last plan was empty): so each destination equals the model."""
    from activation.destinations.file.destination import _cell
    from activation.session import Session

    ok = True
    loaded = load_project(root)
    with Session(loaded, dry_run=True) as s:
        for name, sync in loaded.project.syncs.items():
            delivered = [d.values for d in s.state.delivered_rows(name).values()]
            dest = loaded.project.destinations[sync.to]
            if dest.type == "webhook":
                held: dict = {str(k): v for k, v in rx.records(name).items()}
                want: dict = {str(k): d.values for k, d in s.state.delivered_rows(name).items()}
            elif dest.type == "file":
                match = list(sync.match)
                held = read_file_records(root / dest.path, dest.format, match)
                encode = _cell if dest.format == "csv" else (lambda v: v)
                want = {tuple(encode(v[f]) for f in match): {f: encode(x) for f, x in v.items()} for v in delivered}
            elif dest.type == "hubspot" and sync.mode == "audience":
                from activation.destinations.hubspot.destination import property_value

                [list_id] = [i for i, meta in hubspot.lists().items() if meta["name"] == sync.audience]
                records = hubspot.records(sync.object)
                held = {records[m]["email"] for m in hubspot.list_members(list_id)}
                want = {property_value(v["email"]) for v in delivered}
            elif dest.type == "hubspot":
                from activation.destinations.hubspot.values import PropertyInfo, converter

                # The delivered values as HubSpot stores them, converted by each property's type.
                defs = hubspot.property_definitions(sync.object)
                conv = {f: converter(PropertyInfo.from_api(defs[f]), f) for f in [*sync.match, *sync.fields]}
                idp = next(iter(sync.match))
                held = {r[idp]: {f: r.get(f, "") for f in conv} for r in hubspot.records(sync.object).values()}
                want = {conv[idp](v[idp]): {f: conv[f](x) for f, x in v.items()} for v in delivered}
            elif dest.type in ("meta_audience", "google_ads"):
                from activation_emulators.demo.ads import google_members, held_members, meta_members

                held = held_members(dest.type, sync.audience or "", *ads)
                want = (meta_members if dest.type == "meta_audience" else google_members)(delivered)
            elif dest.type == "mailchimp":
                held, want = _mailchimp_held(mailchimp, sync, delivered)
            elif dest.type == "salesforce":
                ext = next(iter(sync.match))  # compared by external id and name (types differ by field)
                held = {r.get(ext): r.get("Name") for r in sf.records(sync.object).values()}
                want = {v[ext]: v.get("Name") for v in delivered}
            else:
                continue
            same = held == want
            ok &= same
            mark = "[green]✓[/]" if same else "[red]✗[/]"
            how = {
                "salesforce": " (compared by external id and Name)",
                "mailchimp": f" (members tagged {sync.audience!r}, with their merge fields)",
                "meta_audience": " (people, by their hashes)",
                "google_ads": " (people, by their hashes)",
            }.get(dest.type, "")
            console.print(f"{mark} {name}: the {dest.type} destination holds exactly the model ({len(held):,} rows){how}")
    return ok
