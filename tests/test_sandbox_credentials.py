"""`--sandbox` needs no credential: whatever auth style a destination uses, every `${ENV}` its
spec references is stood in for (issue 16: Salesforce password+token failed with "environment
variable SF_SECURITY_TOKEN is not set")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ad_project import make_ad_project

SF_SYNC = """
people_to_sf:
  from: person
  to: sf
  object: Contact
  match: {External_Id__c: person_id}
  fields: {Email: email, LastName: last_name}
"""

# (destination yaml, sync yaml): each auth style of each destination, every value an unset ${ENV}
STYLES: dict[str, tuple[str, str]] = {
    "salesforce_password_token": (
        """
sf:
  type: salesforce
  username: "${SBX_SF_USERNAME}"
  password: "${SBX_SF_PASSWORD}"
  security_token: "${SBX_SF_SECURITY_TOKEN}"
  domain: "${SBX_SF_DOMAIN}"
""",
        SF_SYNC,
    ),
    "salesforce_jwt": (
        """
sf:
  type: salesforce
  username: "${SBX_SF_USERNAME}"
  consumer_key: "${SBX_SF_CONSUMER_KEY}"
  private_key_file: "${SBX_SF_KEY_FILE}"
""",
        SF_SYNC,
    ),
    "salesforce_session": (
        """
sf:
  type: salesforce
  instance_url: "${SBX_SF_INSTANCE_URL}"
  session_id: "${SBX_SF_SESSION_ID}"
  transport_url: "${SBX_SF_TRANSPORT}"
""",
        SF_SYNC,
    ),
    "hubspot_token": (
        """
hs:
  type: hubspot
  token: "${SBX_HUBSPOT_TOKEN}"
  base_url: "${SBX_HUBSPOT_URL}"
""",
        """
people_to_hs:
  from: person
  to: hs
  object: contacts
  match: {email: email}
  fields: {firstname: first_name}
""",
    ),
    "hubspot_default_token": (
        """
hs: {type: hubspot}
""",
        """
people_to_hs:
  from: person
  to: hs
  object: contacts
  match: {email: email}
""",
    ),
    "mailchimp_key": (
        """
mc:
  type: mailchimp
  api_key: "${SBX_MAILCHIMP_KEY}"
  server: "${SBX_MAILCHIMP_DC}"
  list_id: "${SBX_MAILCHIMP_LIST}"
""",
        """
members_to_mc:
  from: members
  to: mc
  mode: audience
  audience: Members
  match: {email_address: email}
  fields: {FNAME: first_name}
""",
    ),
    "meta_token_and_app_secret": (
        """
meta:
  type: meta_audience
  token: "${SBX_META_TOKEN}"
  app_secret: "${SBX_META_APP_SECRET}"
  ad_account: "${SBX_META_AD_ACCOUNT}"
  base_url: "${SBX_META_URL}"
""",
        """
members_to_meta:
  from: members
  to: meta
  mode: audience
  audience: Members
  match: {email: email}
  max_removal: 100%
""",
    ),
    "google_ads_oauth": (
        """
google:
  type: google_ads
  customer_id: "${SBX_GADS_CUSTOMER}"
  login_customer_id: "${SBX_GADS_LOGIN_CUSTOMER}"
  developer_token: "${SBX_GADS_DEVELOPER_TOKEN}"
  client_id: "${SBX_GADS_CLIENT_ID}"
  client_secret: "${SBX_GADS_CLIENT_SECRET}"
  refresh_token: "${SBX_GADS_REFRESH_TOKEN}"
  token_url: "${SBX_GADS_TOKEN_URL}"
  ad_user_data_consent: GRANTED
""",
        """
members_to_google:
  from: members
  to: google
  mode: audience
  audience: Members
  match: {email: email}
  max_removal: 100%
""",
    ),
    "webhook_bearer": (
        """
hook:
  type: webhook
  url: "${SBX_HOOK_URL}"
  headers: {Authorization: "Bearer ${SBX_HOOK_TOKEN}", X-Api-Key: "${SBX_HOOK_KEY}"}
""",
        """
people_to_hook:
  from: person
  to: hook
  match: {email: email}
""",
    ),
}


@pytest.mark.parametrize("style", list(STYLES))
def test_sandbox_stands_in_for_every_credential_of_every_auth_style(tmp_path: Path, style: str) -> None:
    destination, sync = STYLES[style]
    assert not any(k.startswith("SBX_") for k in os.environ)
    p = make_ad_project(tmp_path / style, destination, sync, n=20)
    p.sql("UPDATE src.people SET email = lower(trim(email))")  # HubSpot's emulator, like HubSpot, refuses padded emails
    errors = p.json("run", expect=2)["errors"]
    assert any("is not set" in e for e in errors), "outside the sandbox the unset variables are an error"
    plans = p.json("plan", "--sandbox")["plans"]
    assert [pl["counts"]["added"] for pl in plans] == [15 if "from: members" in sync else 20]
    result = p.json("run", "--sandbox")
    assert [(s["status"], s["acknowledged"]) for s in result["syncs"]] == [("success", plans[0]["counts"]["added"])], result


def test_a_setting_no_hook_knows_gets_a_placeholder_for_each_unset_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The net under every hook (a third-party plugin's included): only unset references without
    a default are filled; the others are left for the destination to resolve."""
    from activation.destinations.webhook.spec import WebhookDestinationSpec
    from activation_emulators.sandbox import SANDBOX_TOKEN, without_unset_env

    monkeypatch.setenv("SBX_SET", "real")
    spec = WebhookDestinationSpec(
        type="webhook",
        url="https://h/${SBX_UNSET}/x",
        headers={"A": "Bearer ${SBX_UNSET_TOO}", "B": "${SBX_SET}", "C": "${SBX_UNSET_DEFAULT:-d}"},
        batch_size=7,
    )
    filled = without_unset_env(spec)
    assert filled.url == f"https://h/{SANDBOX_TOKEN}/x"
    assert filled.headers == {"A": f"Bearer {SANDBOX_TOKEN}", "B": "${SBX_SET}", "C": "${SBX_UNSET_DEFAULT:-d}"}
    assert filled.batch_size == 7 and spec.url == "https://h/${SBX_UNSET}/x"
