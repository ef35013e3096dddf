"""`--sandbox` for the webhook destination: a local receiver instead of the real URL."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.sandbox import StandIn
from activation_emulators.webhook.receiver import WebhookReceiver


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(WebhookReceiver())

    def summary(name: str) -> str:
        held = ", ".join(f"{len(r)} rows of {s}" for s, r in emu.all_records().items()) or "nothing"
        return f"{name}: local webhook receiver at {emu.url} holds {held}"

    return StandIn(spec.model_copy(update={"url": emu.url, "headers": {}}), emu, summary)
