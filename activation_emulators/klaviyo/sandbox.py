"""`--sandbox` for the Klaviyo destination: a local account (lists are created by the syncs)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.klaviyo.server import KlaviyoEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(KlaviyoEmulator(api_keys={SANDBOX_TOKEN}, polls_to_complete=0))
    update: dict[str, Any] = {"api_key": SANDBOX_TOKEN, "base_url": emu.url, "poll_seconds": 0.05}
    if spec.list_id:
        update["list_id"] = emu.create_list(next((s.audience for s in syncs if s.audience), None) or "Sandbox list")

    def summary(name: str) -> str:
        lists = "".join(f", {len(emu.list_members(i))} in list {title!r}" for i, title in emu.lists().items())
        return f"{name}: local Klaviyo at {emu.url} holds {len(emu.profiles())} profiles{lists}"

    return StandIn(spec.model_copy(update=update), emu, summary)
