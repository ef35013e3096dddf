"""`--sandbox` for the Zendesk destination: a local account with a custom field (text) for
every mapped field that is not a standard attribute."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn
from activation_emulators.zendesk.server import ORG_ATTRS, USER_ATTRS, ZendeskEmulator


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(ZendeskEmulator(tokens={SANDBOX_TOKEN}, oauth_tokens={SANDBOX_TOKEN}))
    for sync in syncs:
        organizations = sync.object == "organizations"
        for name in sorted(set(sync.fields) - (ORG_ATTRS if organizations else USER_ATTRS)):
            (emu.add_organization_field if organizations else emu.add_user_field)(name, "text")
    auth = {"oauth_token": SANDBOX_TOKEN} if spec.oauth_token else {"token": SANDBOX_TOKEN, "email": "sandbox@example.com"}
    update = {"subdomain": "sandbox", "base_url": emu.url, **auth}

    def summary(name: str) -> str:
        return f"{name}: local Zendesk at {emu.url} holds {len(emu.people())} users, {len(emu.organizations())} organizations"

    return StandIn(spec.model_copy(update=update), emu, summary)
