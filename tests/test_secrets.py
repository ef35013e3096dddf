"""Secrets never leave in anything we print or keep: tokens, API keys, session ids and
passwords in URLs, through every destination, every command's text and JSON output, the
warnings logged while retrying, and the state store. Real processes, real emulators."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from activation_emulators.hubspot import HubSpotEmulator
from activation_emulators.mailchimp import MailchimpEmulator
from activation_emulators.salesforce import SalesforceEmulator
from activation_emulators.webhook import WebhookReceiver

SECRETS = {
    "HS_TOKEN": "pat-na1-hubspot-SECRET-1111",
    "SF_SESSION": "00DEm0000000001!SALESFORCE-SECRET-2222",
    "MC_KEY": "mailchimpSECRET3333-us1",
    "HOOK_TOKEN": "webhook-SECRET-4444",
    "STATE_PASSWORD": "state-db-SECRET-5555",
}
PROJECT = """
version: 1
warehouse: {type: duckdb, path: wh.duckdb}
state: {url: "sqlite:///state.db?password=${STATE_PASSWORD}"}
entities:
  user: {table: src.users, key: user_id}
destinations:
  hook: {type: webhook, url: "${HOOK_URL}?token=${HOOK_TOKEN}", headers: {Authorization: "Bearer ${HOOK_TOKEN}"}, max_retries: 2}
  hs: {type: hubspot, token: "${HS_TOKEN}", base_url: "${HS_URL}", max_retries: 2}
  sf: {type: salesforce, instance_url: "https://${SF_INSTANCE}", session_id: "${SF_SESSION}", transport_url: "${SF_URL}", max_retries: 2}
  mc: {type: mailchimp, api_key: "${MC_KEY}", base_url: "${MC_URL}", list_name: People, max_retries: 2}
syncs:
  to_hook: {from: user, to: hook, mode: mirror, match: {email: email}, fields: {plan: plan}}
  to_hs: {from: user, to: hs, object: contacts, mode: mirror, match: {email: email}, fields: {firstname: plan}}
  to_sf: {from: user, to: sf, object: Contact, mode: mirror, match: {External_Id__c: user_id}, fields: {LastName: plan, Email: email}}
  to_mc: {from: user, to: mc, mode: mirror, match: {email_address: email}, fields: {FNAME: plan}}
"""


@pytest.mark.slow
def test_no_secret_in_any_output_log_or_state(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "syncs.yaml").write_text(textwrap.dedent(PROJECT))
    con = duckdb.connect(str(root / "wh.duckdb"))
    con.execute(
        "CREATE SCHEMA src; CREATE TABLE src.users AS SELECT 'u' || i AS user_id, 'p' || i || '@example.com' AS email, "
        "['free', 'pro'][1 + i % 2] AS plan FROM range(30) t(i)"
    )
    con.close()
    with (
        WebhookReceiver() as rx,
        HubSpotEmulator(tokens={SECRETS["HS_TOKEN"]}) as hs,
        SalesforceEmulator(tokens=(SECRETS["SF_SESSION"],)) as sf,
        MailchimpEmulator(api_keys={SECRETS["MC_KEY"]}) as mc,
    ):
        mc.create_list("People")
        env = {
            **os.environ,
            **SECRETS,
            "HOOK_URL": rx.url,
            "HS_URL": hs.url,
            "SF_INSTANCE": sf.instance,
            "SF_URL": sf.url,
            "MC_URL": mc.url,
        }
        outputs: list[str] = []

        def cli(*args: str) -> None:
            r = subprocess.run(
                [sys.executable, "-m", "activation.cli", *args, "-p", str(root)], env=env, capture_output=True, text=True, timeout=120
            )
            outputs.append(f"$ {' '.join(args)} → {r.returncode}\n{r.stdout}\n{r.stderr}")

        # faults that make every destination log retries and report errors
        for emu in (rx, hs, sf, mc):
            emu.faults.inject("error", n=2, status=503)
        cli("validate"), cli("validate", "--remote"), cli("plan", "--json"), cli("plan", "--format", "markdown")
        cli("run")
        for emu in (rx, hs, sf, mc):
            emu.faults.inject("error", n=9, status=500)  # retries run out: failures with messages
        con = duckdb.connect(str(root / "wh.duckdb"))
        con.execute("UPDATE src.users SET plan = 'team' WHERE user_id IN ('u1', 'u2')")
        con.close()
        cli("run", "--json")
        for emu in (rx, hs, sf, mc):
            emu.faults.clear()
            emu.faults.inject("unauthorized", n=5)
        cli("run", "--json")
        for emu in (rx, hs, sf, mc):
            emu.faults.clear()
        rx.reject_keys({"u3": f"bad token {SECRETS['HOOK_TOKEN']}"})  # a receiver echoing the secret back
        con = duckdb.connect(str(root / "wh.duckdb"))
        con.execute("UPDATE src.users SET plan = 'x' WHERE user_id = 'u3'")
        con.close()
        cli("run")
        cli("status"), cli("status", "--json"), cli("lint")
        for sync in ("to_hook", "to_hs", "to_sf", "to_mc"):
            cli("history", sync), cli("history", sync, "--json")
        assert len(hs.records("contacts")) == 30 and len(sf.records("Contact")) == 30  # the secrets were used
    text = "\n".join(outputs)
    assert "503" in text and "401" in text and "retry" in text  # the failure paths really ran
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} leaked:\n" + "\n".join(o for o in outputs if secret in o)[:3000]
    state = (root / "state.db").read_bytes()
    for name, secret in SECRETS.items():
        assert secret.encode() not in state, f"{name} is in the state store"
