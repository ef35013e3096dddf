"""`--sandbox` for the Google Ads destination: a local Google Ads API and OAuth endpoint."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from activation_emulators.google_ads.emulator import GoogleAdsEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(GoogleAdsEmulator(client_id="sandbox", client_secret=SANDBOX_TOKEN, record=False))
    update = {
        "base_url": emu.url,
        "token_url": emu.token_url,
        "developer_token": SANDBOX_TOKEN,
        "client_id": "sandbox",
        "client_secret": SANDBOX_TOKEN,
        "refresh_token": SANDBOX_TOKEN,
        "customer_id": "1234567890",
        "login_customer_id": None,
    }

    def summary(name: str) -> str:
        people = sum(len(emu.members(u)) for u in emu.user_lists())
        return f"{name}: local Google Ads API at {emu.url} holds {len(emu.user_lists())} user lists, {people} people"

    return StandIn(spec.model_copy(update=update), emu, summary)
