"""`--sandbox` for the Meta destination: a local Graph API for custom audiences."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.meta.emulator import MetaEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(MetaEmulator(tokens={SANDBOX_TOKEN}, record=False))
    update = {"base_url": emu.url, "token": SANDBOX_TOKEN, "app_secret": None, "ad_account": "act_1"}

    def summary(name: str) -> str:
        people = sum(len(emu.members(a)) for a in emu.audiences())
        return f"{name}: local Meta Graph API at {emu.url} holds {len(emu.audiences())} custom audiences, {people} people"

    return StandIn(spec.model_copy(update=update), emu, summary)
