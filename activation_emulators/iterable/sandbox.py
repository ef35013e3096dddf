"""`--sandbox` for the Iterable destination: a local project with every list the syncs name."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.iterable.server import IterableEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(IterableEmulator(api_keys={SANDBOX_TOKEN}, identify_by=spec.identify_by))
    update: dict[str, Any] = {"api_key": SANDBOX_TOKEN, "base_url": emu.url}
    if spec.list_id:
        update["list_id"] = str(emu.create_list(next((s.audience for s in syncs if s.audience), None) or "Sandbox list"))

    def summary(name: str) -> str:
        lists = "".join(f", {len(emu.list_members(i))} in list {title!r}" for i, title in emu.lists().items())
        return f"{name}: local Iterable at {emu.url} holds {len(emu.users())} users{lists}"

    return StandIn(spec.model_copy(update=update), emu, summary)
