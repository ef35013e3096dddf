"""Identifiers for ad platforms: normalised exactly as each platform documents, then SHA-256.

Meta (Custom Audiences, customer-file keys) and Google (Customer Match) both match people on
hashed identifiers, but normalise them differently:

- email: both trim and lower-case; Google also removes every space, and for gmail.com /
  googlemail.com removes the dots and any ``+tag`` of the local part (Data Manager API
  formatting guide: ``cloudy.sanfrancisco+shopping@gmail.com`` → ``cloudysanfrancisco@gmail.com``).
- phone: E.164. Meta hashes the digits alone (``16505551212``), Google keeps the ``+``
  (``+16505551212``). A number without a country code is read in the row's country (or the
  destination's ``phone_region``); without either it is invalid, never guessed.
- names: Meta keeps letters only (``Mary-Ann`` → ``maryann``, accents kept: ``valéry``);
  Google trims and lower-cases.
- Google sends country and postal code unhashed; Meta hashes them (country ISO-2 lower-case,
  US zip codes cut to 5 digits). Meta's EXTERN_ID and MADID, Google's third-party user id and
  mobile id are sent as they are.

A value that already is a SHA-256 hex digest is passed through (pre-hashed warehouse data).
`Identifiers.transform` turns a mapped row into what is stored and sent: the raw values never
leave it. Its errors name the field and the rule, never the value (they end up in logs and
in the state store).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import phonenumbers

InvalidPolicy = Literal["reject", "drop"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_SPACE = re.compile(r"\s+")
_US_ZIP = re.compile(r"^([0-9]{5})(?:-?[0-9]{4})?$")
_GMAIL = frozenset({"gmail.com", "googlemail.com"})


class InvalidIdentifier(ValueError):
    """A value that cannot be normalised; the message says why, without the value."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and bool(_SHA256.match(value))


# ---------------------------------------------------------------- single rules
# Each takes the value as text (stripped, non-empty) and the region a phone number is read in
# (ISO-2, from the row's country or the destination's phone_region); returns the normalised
# text or raises InvalidIdentifier.


def email(text: str, region: str | None = None) -> str:
    value = text.strip().lower()
    if not _EMAIL.match(value):
        raise InvalidIdentifier("not an email address")
    return value


def google_email(text: str, region: str | None = None) -> str:
    value = email(_SPACE.sub("", text))
    local, _, domain = value.rpartition("@")
    if domain in _GMAIL:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            raise InvalidIdentifier("not an email address")
    return f"{local}@{domain}"


def e164(text: str, region: str | None = None) -> str:
    """+<country code><number>; a national number is read in `region` (ISO-2)."""
    compact = re.sub(r"[\s().\-/]", "", text)
    if _E164.match(compact):
        return compact  # already E.164: the common case, no parsing needed
    if compact.startswith("00"):
        compact = "+" + compact[2:]  # the international call prefix
    try:
        number = phonenumbers.parse(compact, None if compact.startswith("+") else (region or None))
    except phonenumbers.NumberParseException:
        if not compact.startswith("+") and not region:
            raise InvalidIdentifier(
                "not a phone number with a country code (write it as +<country code><number>, "
                "map the row's country, or set the destination's phone_region)") from None
        raise InvalidIdentifier("not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier("not a possible phone number (wrong length for its country)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def letters(text: str, region: str | None = None) -> str:
    """Lower-case letters only (any script; accents kept), NFC: Meta's names, city, state."""
    value = "".join(c for c in unicodedata.normalize("NFC", text.lower()) if c.isalpha())
    if not value:
        raise InvalidIdentifier("has no letters")
    return value


def trimmed_lower(text: str, region: str | None = None) -> str:
    return text.strip().lower()


def trimmed(text: str, region: str | None = None) -> str:
    return text.strip()


def country_code(text: str, region: str | None = None) -> str:
    value = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise InvalidIdentifier("not a two-letter ISO 3166-1 country code")
    return value


def meta_zip(text: str, region: str | None = None) -> str:
    value = _SPACE.sub("", text.lower())
    us = _US_ZIP.match(value)
    return us.group(1) if us else value.split("-", 1)[0]


def gender(text: str, region: str | None = None) -> str:
    value = text.strip().lower()
    if value in ("m", "male", "f", "female"):
        return value[0]
    raise InvalidIdentifier("not m or f")


def _number(text: str, low: int, high: int, width: int, what: str) -> str:
    try:
        n = int(float(text))
    except ValueError:
        raise InvalidIdentifier(f"not a {what}") from None
    if not low <= n <= high:
        raise InvalidIdentifier(f"not a {what} ({low}-{high})")
    return str(n).zfill(width)


def birth_year(text: str, region: str | None = None) -> str:
    return _number(text, 1900, date.today().year, 4, "year")


def birth_month(text: str, region: str | None = None) -> str:
    return _number(text, 1, 12, 2, "month")


def birth_day(text: str, region: str | None = None) -> str:
    return _number(text, 1, 31, 2, "day of the month")


# ---------------------------------------------------------------- a platform's identifiers


Rule = Callable[[str, "str | None"], str]


def meta_phone(text: str, region: str | None = None) -> str:
    return e164(text, region)[1:]  # Meta: the digits, country code first, no "+"


@dataclass(frozen=True)
class Identifier:
    key: str  # how the platform names it (Meta's schema key, Google's field)
    rule: Rule
    hashed: bool
    description: str


class Identifiers:
    """The identifiers one platform accepts, how each is normalised and which are hashed.

    Field names in `match`/`fields` are the lower-case keys (`email`, `fn`, …); `aliases`
    only serve "did you mean" hints.
    """

    def __init__(self, platform: str, version: str, identifiers: Iterable[tuple[str, Identifier]],
                 aliases: Mapping[str, str], country: str) -> None:
        self.platform = platform
        self.version = version  # salts the row hashes: a change of rules re-diffs every row
        self.by_name = dict(identifiers)
        self.aliases = dict(aliases)
        self.country = country  # the field whose value is the region phone numbers are read in

    def problem(self, field: str) -> str | None:
        """Why `field` is not an identifier of this platform (with a suggestion), or None."""
        if field in self.by_name:
            return None
        if field.lower() in self.by_name:
            return f"write {field.lower()!r} (lower-case) instead of {field!r}"
        known = ", ".join(self.by_name)
        hint = self.aliases.get(field.lower()) or next(iter(difflib.get_close_matches(field.lower(), self.by_name, 1, 0.6)), None)
        did_you_mean = f"did you mean {hint!r} ({self.by_name[hint].description})? " if hint else ""
        return f"{field!r} is not a {self.platform} identifier; {did_you_mean}accepted: {known}"

    def hashed(self, fields: Iterable[str]) -> frozenset[str]:
        return frozenset(f for f in fields if f in self.by_name and self.by_name[f].hashed)

    def normalise(self, field: str, value: Any, row: Mapping[str, Any], region: str | None) -> str:
        """The value as sent: normalised, and hashed where the platform wants it hashed."""
        return _normalise(self.by_name[field], value, row, self.country, region)

    def transform(self, fields: Iterable[str], *, invalid: InvalidPolicy = "reject",
                  region: str | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A function from a mapped row (raw values) to the row to store and send.

        `invalid="reject"` rejects a row with a value that cannot be normalised (the error
        names the field); `"drop"` sends that identifier as unknown instead, unless it was the
        row's last one.
        """
        names = [f for f in fields if f in self.by_name]
        idents = [(f, self.by_name[f]) for f in names]
        country = self.country

        def apply(row: dict[str, Any]) -> dict[str, Any]:  # runs per row: kept tight
            out: dict[str, Any] = dict(row)
            for field, ident in idents:
                try:
                    out[field] = _normalise(ident, row.get(field), row, country, region)
                except InvalidIdentifier as e:
                    if invalid == "reject":
                        raise InvalidIdentifier(f"field {field!r}: {e}") from None
                    out[field] = ""
            if names and not any(out[f] for f in names):
                raise InvalidIdentifier("no usable identifier left to match on")
            return out

        return apply


def _normalise(ident: Identifier, value: Any, row: Mapping[str, Any], country_field: str, region: str | None) -> str:
    if value is None:
        return ""
    text = (value if type(value) is str else str(value)).strip()
    if not text:
        return ""
    if ident.hashed and len(text) == 64 and _SHA256.match(text.lower()):
        return text.lower()  # hashed upstream already
    if ident.rule is e164 or ident.rule is meta_phone:  # read in the row's country, else the default
        country = row.get(country_field)
        region = str(country).strip().upper() if country else region
    normalised = ident.rule(text, region)
    return hashlib.sha256(normalised.encode()).hexdigest() if ident.hashed else normalised


META = Identifiers(
    "Meta", "meta-1",
    [
        ("email", Identifier("EMAIL", email, True, "email address")),
        ("phone", Identifier("PHONE", meta_phone, True, "phone number, E.164 digits")),
        ("fn", Identifier("FN", letters, True, "first name")),
        ("ln", Identifier("LN", letters, True, "last name")),
        ("fi", Identifier("FI", lambda t, region=None: letters(t)[0], True, "first initial")),
        ("ct", Identifier("CT", letters, True, "city")),
        ("st", Identifier("ST", letters, True, "state or province")),
        ("zip", Identifier("ZIP", meta_zip, True, "zip or postal code")),
        ("country", Identifier("COUNTRY", lambda t, region=None: country_code(t).lower(), True, "ISO 3166-1 alpha-2 country")),
        ("doby", Identifier("DOBY", birth_year, True, "birth year, YYYY")),
        ("dobm", Identifier("DOBM", birth_month, True, "birth month, MM")),
        ("dobd", Identifier("DOBD", birth_day, True, "birth day, DD")),
        ("gen", Identifier("GEN", gender, True, "gender, m or f")),
        ("madid", Identifier("MADID", trimmed_lower, False, "mobile advertiser id (IDFA/AAID), not hashed")),
        ("extern_id", Identifier("EXTERN_ID", trimmed, False, "your own id for the person, not hashed")),
    ],
    aliases={"first_name": "fn", "firstname": "fn", "last_name": "ln", "lastname": "ln", "city": "ct",
             "state": "st", "zip_code": "zip", "postal_code": "zip", "zipcode": "zip", "country_code": "country",
             "gender": "gen", "phone_number": "phone", "mobile": "phone", "external_id": "extern_id",
             "first_initial": "fi", "birth_year": "doby", "birth_month": "dobm", "birth_day": "dobd"},
    country="country",
)

GOOGLE = Identifiers(
    "Google Customer Match", "google-1",
    [
        ("email", Identifier("hashedEmail", google_email, True, "email address")),
        ("phone", Identifier("hashedPhoneNumber", e164, True, "phone number, E.164 with +")),
        ("first_name", Identifier("hashedFirstName", trimmed_lower, True, "first name (address match)")),
        ("last_name", Identifier("hashedLastName", trimmed_lower, True, "last name (address match)")),
        ("country_code", Identifier("countryCode", country_code, False, "ISO 3166-1 alpha-2 country (address match), not hashed")),
        ("postal_code", Identifier("postalCode", trimmed, False, "postal code (address match), not hashed")),
        ("third_party_user_id", Identifier("thirdPartyUserId", trimmed, False, "your CRM id (CRM_ID lists), not hashed")),
        ("mobile_id", Identifier("mobileId", trimmed, False, "mobile advertising id (MOBILE_ADVERTISING_ID lists), not hashed")),
    ],
    aliases={"fn": "first_name", "firstname": "first_name", "ln": "last_name", "lastname": "last_name",
             "country": "country_code", "zip": "postal_code", "zip_code": "postal_code", "postcode": "postal_code",
             "phone_number": "phone", "mobile": "phone", "crm_id": "third_party_user_id", "user_id": "third_party_user_id",
             "madid": "mobile_id", "idfa": "mobile_id", "gaid": "mobile_id"},
    country="country_code",
)

#: Google's address match needs all four parts; a row missing any sends no address.
GOOGLE_ADDRESS = ("first_name", "last_name", "country_code", "postal_code")
