"""The demo's ad platforms: local Meta and Google Ads emulators, and the checks that they hold
exactly the hashes delivered and never saw a raw email or phone number."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from activation.destinations.google_ads.destination import GoogleAdsDestination
from activation.destinations.identifiers import META
from activation_emulators.google_ads import GoogleAdsEmulator, identifier_pair
from activation_emulators.meta import MetaEmulator

Members = set[frozenset[tuple[str, str]]]
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DIGITS = re.compile(rb"\d{7,15}")


@contextmanager
def ad_emulators() -> Iterator[tuple[MetaEmulator, GoogleAdsEmulator]]:
    """Both emulators, with the environment syncs/ads.yaml reads pointed at them."""
    with (
        MetaEmulator(tokens={"demo-token"}) as meta,
        GoogleAdsEmulator(
            developer_tokens={"demo-developer-token"},
            client_id="demo-client.apps.googleusercontent.com",
            client_secret="demo-client-secret",
            refresh_tokens={"demo-refresh-token"},
        ) as google,
    ):
        os.environ.update(META_URL=meta.url, GOOGLE_ADS_URL=google.url, GOOGLE_TOKEN_URL=google.token_url)
        yield meta, google


def meta_members(delivered: Iterable[dict[str, Any]]) -> Members:
    """The people Meta should hold for these delivered (already hashed) rows."""
    return {frozenset((META.by_name[f].key, str(v)) for f, v in row.items() if v and f in META.by_name) for row in delivered}


def google_members(delivered: Iterable[dict[str, Any]]) -> Members:
    return {frozenset(identifier_pair(i) for i in GoogleAdsDestination.user_data(row)["userIdentifiers"]) for row in delivered}


def held_members(dest_type: str, audience: str, meta: MetaEmulator, google: GoogleAdsEmulator) -> Members:
    if dest_type == "meta_audience":
        ids = [k for k, v in meta.audiences().items() if v["name"] == audience]
        return meta.members(ids[0]) if ids else set()
    lists = [k for k, v in google.user_lists().items() if v["name"] == audience]
    return google.members(lists[0]) if lists else set()


def raw_pii_seen(warehouse: str, raw: bytes) -> list[str]:
    """Emails and phone numbers of the warehouse's users that appear in `raw` in any form."""
    con = duckdb.connect(warehouse, read_only=True)
    try:
        users = con.execute("SELECT email, phone FROM analytics.users").fetchall()
    finally:
        con.close()
    emails = {e.strip().lower() for e, _ in users}
    phones = {re.sub(r"\D", "", p) for _, p in users if p}
    seen = {m.decode().replace("%40", "@").lower() for m in _EMAIL.findall(raw)} & emails
    seen |= {d.decode() for d in _DIGITS.findall(raw)} & phones
    return sorted(seen)
