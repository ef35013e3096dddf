"""`--sandbox` for the Braze destination: a local Braze workspace that accepts one key."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.braze.server import BrazeEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(BrazeEmulator(api_keys={SANDBOX_TOKEN}))

    def summary(name: str) -> str:
        return f"{name}: local Braze at {emu.url} holds {len(emu.profiles())} users"

    return StandIn(spec.model_copy(update={"api_key": SANDBOX_TOKEN, "rest_endpoint": emu.url}), emu, summary)
