"""`--sandbox` for the Customer.io destination: a local workspace with the manual segments the syncs name."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.customerio.server import CustomerioEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn

SITE = "sandbox-site"


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(CustomerioEmulator(credentials={(SITE, SANDBOX_TOKEN)}, identify_by=spec.identify_by, region=spec.region))
    update: dict[str, Any] = {"site_id": SITE, "api_key": SANDBOX_TOKEN, "url": emu.url}
    audiences = [s.audience for s in syncs if s.mode == "audience"]
    if spec.segment_id:
        update["segment_id"] = str(emu.create_segment(next((a for a in audiences if a), None) or "Sandbox segment"))
    else:
        for audience in audiences:
            if audience and audience.strip().isdigit() and int(audience) not in emu.segments():
                emu.create_segment(f"Segment {audience}", segment_id=int(audience))

    def summary(name: str) -> str:
        segments = "".join(f", {len(emu.members(i))} in segment {i} ({title!r})" for i, title in emu.segments().items())
        return f"{name}: local Customer.io at {emu.url} holds {len(emu.identities())} people{segments}"

    return StandIn(spec.model_copy(update=update), emu, summary)
