"""`--sandbox` for the Salesforce destination: a local org with every object and field the
syncs map (match fields as unique external ids), reached through simple-salesforce."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.salesforce import Field, SalesforceEmulator
from activation_emulators.sandbox import StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(SalesforceEmulator())
    for s in syncs:
        obj = s.object or "Contact"
        if obj not in emu.schema:
            emu.add_sobject(obj)
        for f in [*s.match, *s.fields]:
            if emu.schema[obj].field(f) is None:
                emu.add_field(obj, Field(f, external_id=f in s.match, unique=f in s.match))
    # the emulator's session, whatever the project's auth style: every other style's settings
    # (password + security token, JWT's consumer key and key file, the login domain) are cleared,
    # so none of their ${ENV} is needed
    update = {
        "instance_url": f"https://{emu.instance}",
        "session_id": emu.token,
        "transport_url": emu.url,
        "username": None,
        "password": None,
        "security_token": None,
        "consumer_key": None,
        "private_key_file": None,
        "domain": "login",
        "bulk_poll_seconds": 0.05,
    }

    def summary(name: str) -> str:
        return f"{name}: local Salesforce at {emu.url}, {emu.request_count} requests"

    return StandIn(spec.model_copy(update=update), emu, summary)
