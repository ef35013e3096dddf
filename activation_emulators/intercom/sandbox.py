"""`--sandbox` for the Intercom destination: a local Intercom workspace that accepts one token,
with a data attribute for every custom attribute its syncs map (as text: typed attributes are
the workspace's own business)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.intercom.server import COMPANY_FIELDS, CONTACT_FIELDS, IntercomEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(IntercomEmulator(tokens={SANDBOX_TOKEN}))
    for sync in syncs:
        model = "company" if getattr(sync, "object", None) == "companies" else "contact"
        standard = {*COMPANY_FIELDS, "company_id"} if model == "company" else set(CONTACT_FIELDS)
        for field in getattr(sync, "fields", None) or {}:
            if field not in standard and field not in (getattr(sync, "match", None) or {}):
                emu.add_attribute(model, field, "string")

    def summary(name: str) -> str:
        return f"{name}: local Intercom at {emu.url} holds {len(emu.live_contacts())} contacts and {len(emu.companies)} companies"

    return StandIn(spec.model_copy(update={"token": SANDBOX_TOKEN, "base_url": emu.url}), emu, summary)
