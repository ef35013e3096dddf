"""`--sandbox`: rehearse a project end to end without touching a real account.

Every destination is pointed at a local emulator started for this command (HubSpot, whose
account gets a property for each mapped field, typed from the model; Salesforce, Mailchimp,
Meta, Google Ads, a webhook receiver; files go under `.activation/sandbox/`), the warehouse is
opened read-only with models as temporary tables (as `plan` does), and the state lives in
a throwaway SQLite file: a sandbox run is always a first full load, through the real SDKs,
and leaves the project's real state and warehouse untouched.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from activation.project.loader import LoadedProject

SANDBOX_TOKEN = "sandbox-token"


@dataclass
class Sandbox:
    loaded: LoadedProject  # the project with every destination pointed at an emulator
    state_url: str
    emulators: dict[str, Any] = field(default_factory=dict)  # destination name -> emulator

    def summary(self) -> list[str]:
        lines = []
        for name, emu in self.emulators.items():
            kind = type(emu).__name__
            if kind == "HubSpotEmulator":
                held = ", ".join(f"{len(emu.records(t))} {t}" for t in ("contacts", "companies"))
                lines.append(f"{name}: local HubSpot at {emu.url} holds {held}; {len(emu.invalid_requests)} invalid requests")
            elif kind == "SalesforceEmulator":
                lines.append(f"{name}: local Salesforce at {emu.url}, {emu.request_count} requests")
            elif kind == "MetaEmulator":
                people = sum(len(emu.members(a)) for a in emu.audiences())
                lines.append(f"{name}: local Meta Graph API at {emu.url} holds {len(emu.audiences())} custom audiences, {people} people")
            elif kind == "GoogleAdsEmulator":
                people = sum(len(emu.members(u)) for u in emu.user_lists())
                lines.append(f"{name}: local Google Ads API at {emu.url} holds {len(emu.user_lists())} user lists, {people} people")
            elif kind == "MailchimpEmulator":
                counts = ", ".join(f"{len(emu.members(i))} members in {name!r}" for i, name in emu.lists().items())
                lines.append(f"{name}: local Mailchimp at {emu.url} holds {counts}")
            elif kind == "WebhookReceiver":
                held = ", ".join(f"{len(r)} rows of {s}" for s, r in emu.all_records().items()) or "nothing"
                lines.append(f"{name}: local webhook receiver at {emu.url} holds {held}")
        return lines

    def add_properties(self, session: Any, prepared: dict[str, Any]) -> None:
        """Give each sandbox HubSpot account every property its syncs map and it lacks, typed
        from the model: a field that maps a column takes the type of that column's values (of a
        sample of rows); any other field is a string property."""
        project = self.loaded.project
        for name, ps in prepared.items():
            spec = project.syncs[name]
            emu = self.emulators.get(spec.to)
            if type(emu).__name__ != "HubSpotEmulator":
                continue
            obj = spec.object or "contacts"
            try:
                known = emu.property_definitions(obj)
            except KeyError:
                continue  # an object the emulator lacks: reported at run time
            sample = None
            for prop, expr in {**spec.match, **spec.fields}.items():
                if prop in known:
                    continue
                if sample is None:
                    sql = f"SELECT * FROM ({ps.query.model_sql}) AS q LIMIT {_SAMPLE}"
                    sample = [dict(r._mapping) for chunk in session.warehouse.stream(session.conn, sql) for r in chunk]
                emu.add_property(obj, prop, type=_property_type(expr, sample))


_SAMPLE = 200


def _property_type(expr: str, rows: list[dict[str, Any]]) -> str:
    """A HubSpot property type for a field mapping `expr`: its column's, else string."""
    column = {k.lower(): k for k in rows[0]}.get(expr.strip().lower()) if rows else None
    values = [r[column] for r in rows if r[column] is not None] if column else []
    if not values:
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in values):
        return "number"
    if all(isinstance(v, datetime) for v in values):
        return "datetime"
    if all(isinstance(v, date) and not isinstance(v, datetime) for v in values):
        return "date"
    return "string"


@contextmanager
def sandbox(loaded: LoadedProject) -> Iterator[Sandbox]:
    p = loaded.project
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="activation-sandbox-")))
        emulators: dict[str, Any] = {}
        destinations: dict[str, Any] = {}
        for name, spec in p.destinations.items():
            syncs = [s for s in p.syncs.values() if s.to == name]
            update: dict[str, Any]
            if spec.type == "webhook":
                from activation_emulators.webhook import WebhookReceiver

                emu = stack.enter_context(WebhookReceiver())
                update = {"url": emu.url, "headers": {}}
            elif spec.type == "hubspot":
                from activation_emulators.hubspot import HubSpotEmulator

                emu = stack.enter_context(HubSpotEmulator(tokens=None))  # properties: add_properties()
                update = {"base_url": emu.url, "token": SANDBOX_TOKEN}
            elif spec.type == "salesforce":
                update, emu = _salesforce(stack, syncs)
            elif spec.type == "meta_audience":
                from activation_emulators.meta import MetaEmulator

                emu = stack.enter_context(MetaEmulator(tokens={SANDBOX_TOKEN}, record=False))
                update = {"base_url": emu.url, "token": SANDBOX_TOKEN, "app_secret": None, "ad_account": "act_1"}
            elif spec.type == "google_ads":
                from activation_emulators.google_ads import GoogleAdsEmulator

                emu = stack.enter_context(GoogleAdsEmulator(client_id="sandbox", client_secret=SANDBOX_TOKEN, record=False))
                update = {"base_url": emu.url, "token_url": emu.token_url, "developer_token": SANDBOX_TOKEN, "client_id": "sandbox",
                          "client_secret": SANDBOX_TOKEN, "refresh_token": SANDBOX_TOKEN, "customer_id": "1234567890",
                          "login_customer_id": None}
            elif spec.type == "mailchimp":
                update, emu = _mailchimp(stack, spec, syncs)
            elif spec.type == "file":
                emulators_path = Path(".activation") / "sandbox" / Path(spec.path).name
                destinations[name] = spec.model_copy(update={"path": str(emulators_path)})
                continue
            else:  # pragma: no cover - every destination type is listed above
                raise ValueError(f"no sandbox for destination type {spec.type!r}")
            emulators[name] = emu
            destinations[name] = spec.model_copy(update=update)
        project = p.model_copy(update={"destinations": destinations})
        yield Sandbox(LoadedProject(project, loaded.root, loaded.file, loaded.locations),
                      f"sqlite:///{tmp / 'state.db'}", emulators)


def _salesforce(stack: ExitStack, syncs: list[Any]) -> tuple[dict[str, Any], Any]:
    from activation_emulators.salesforce import Field, SalesforceEmulator

    emu = stack.enter_context(SalesforceEmulator())
    for s in syncs:
        obj = s.object or "Contact"
        if obj not in emu.schema:
            emu.add_sobject(obj)
        for f in [*s.match, *s.fields]:
            if emu.schema[obj].field(f) is None:
                emu.add_field(obj, Field(f, external_id=f in s.match, unique=f in s.match))
    update = {"instance_url": f"https://{emu.instance}", "session_id": emu.token, "username": None,
              "password": None, "transport_url": emu.url, "bulk_poll_seconds": 0.05}
    return update, emu


def _mailchimp(stack: ExitStack, spec: Any, syncs: list[Any]) -> tuple[dict[str, Any], Any]:
    from activation_emulators.mailchimp import MailchimpEmulator

    emu = stack.enter_context(MailchimpEmulator())  # any key of its data center
    list_id = emu.create_list(spec.list_name or "Sandbox audience")
    defaults = set(emu.merge_fields(list_id))
    for tag in sorted({f for s in syncs for f in s.fields} - defaults):  # the sandbox audience has every merge tag mapped
        if re.fullmatch(r"[A-Z0-9_]{1,10}", tag):  # not a merge tag: the sync's check reports it
            emu.add_merge_field(list_id, tag, "text")
    update = {"api_key": f"{SANDBOX_TOKEN}-{emu.dc}", "server": None, "base_url": emu.url, "list_id": list_id, "list_name": None}
    return update, emu
