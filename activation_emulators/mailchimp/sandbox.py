"""`--sandbox` for the Mailchimp destination: a local account with the sync's audience and
every merge tag the syncs map."""

from __future__ import annotations

import re
from contextlib import ExitStack
from typing import Any

from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(MailchimpEmulator())  # any key of its data center
    list_id = emu.create_list(spec.list_name or "Sandbox audience")
    defaults = set(emu.merge_fields(list_id))
    for tag in sorted({f for s in syncs for f in s.fields} - defaults):  # the sandbox audience has every merge tag mapped
        if re.fullmatch(r"[A-Z0-9_]{1,10}", tag):  # not a merge tag: the sync's check reports it
            emu.add_merge_field(list_id, tag, "text")
    update = {"api_key": f"{SANDBOX_TOKEN}-{emu.dc}", "server": None, "base_url": emu.url, "list_id": list_id, "list_name": None}

    def summary(name: str) -> str:
        counts = ", ".join(f"{len(emu.members(i))} members in {title!r}" for i, title in emu.lists().items())
        return f"{name}: local Mailchimp at {emu.url} holds {counts}"

    return StandIn(spec.model_copy(update=update), emu, summary)
