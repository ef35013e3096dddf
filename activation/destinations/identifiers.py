"""Identifiers for ad platforms: normalised exactly as each platform documents, then SHA-256.

Meta (Custom Audiences, customer-file keys) and Google (Customer Match) both match people on
hashed identifiers, but normalise them differently:

- email: both trim and lower-case; Google also removes every space, and for gmail.com /
  googlemail.com removes the dots and any ``+tag`` of the local part (Data Manager API
  formatting guide: ``cloudy.sanfrancisco+shopping@gmail.com`` → ``cloudysanfrancisco@gmail.com``).
- phone: always parsed by libphonenumber, sent as E.164. Meta hashes the digits alone
  (``16505551212``), Google keeps the ``+`` (``+16505551212``). A number without a country code
  is read in the row's country (or the destination's ``phone_region``); without either it is
  invalid, never guessed; a number that cannot exist (wrong length for its country) is invalid.
- names: Meta keeps letters only (``Mary-Ann`` → ``maryann``, accents kept: ``valéry``);
  Google trims and lower-cases.
- country: an ISO 3166-1 alpha-2 code (``UK`` is read as ``GB``); Meta hashes it lower-case
  (a code that is no country is refused: Meta cannot tell), Google sends it unhashed,
  upper-case (Google refuses an unknown one itself, with its reason).
- postal code: Meta hashes it lower-case without spaces or dashes, a US ZIP cut to its first 5
  digits; Google sends it unhashed as written, a US ZIP as 5 digits or ZIP+4 (see `meta_zip`
  and `google_postal_code` for the documents and the UK). Both read the row's country.
- Meta's EXTERN_ID and MADID, Google's third-party user id and mobile id are sent as they are.

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
from functools import lru_cache
from typing import Any, Literal

import phonenumbers

InvalidPolicy = Literal["reject", "drop"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SPACE = re.compile(r"\s+")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_SPACE_OR_DASH = re.compile(r"[\s\-]+")
_ZIP = re.compile(r"^([0-9]{5})(?:[0-9]{4})?$")  # a US ZIP or ZIP+4, spaces and dashes removed
_US_ZIP_AS_WRITTEN = re.compile(r"^([0-9]{5})(?:[\s\-]?([0-9]{4}))?$")
_GMAIL = frozenset({"gmail.com", "googlemail.com"})
#: Where addresses carry USPS ZIP codes: the US and its territories with their own ISO codes.
_USPS = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})
#: ISO 3166-1 alpha-2 codes: every region libphonenumber knows (it follows ISO and CLDR, so it
#: has XK for Kosovo, as Google's CLDR codes do) and the uninhabited ones it has no numbers for.
COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS) | {"AQ", "BV", "GS", "HM", "PN", "TF", "UM"}


class InvalidIdentifier(ValueError):
    """A value that cannot be normalised; the message says why, without the value."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and bool(_SHA256.match(value))


def region_of(country: Any) -> str | None:
    """The ISO 3166-1 alpha-2 code a row's country value names, or None. ``UK`` is ISO's
    exceptionally reserved code for the United Kingdom, whose assigned code is ``GB``."""
    if not country:
        return None
    value = str(country).strip().upper()
    value = "GB" if value == "UK" else value
    return value if value in COUNTRIES else None


# ---------------------------------------------------------------- single rules
# Each takes the value as text (stripped, non-empty) and the region (ISO-2) the value is read
# in: for a phone number the row's country or the destination's phone_region, for a postal
# code the row's country alone; returns the normalised text or raises InvalidIdentifier.


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
    """+<country code><number>, always parsed by libphonenumber; a national number is read in
    `region` (ISO-2). There is no shortcut for text that already looks like E.164: "+44 (0)20
    7946 0958" does, once its punctuation is gone, and only the parse drops the trunk "0"."""
    compact = _PHONE_PUNCTUATION.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]  # the international call prefix of most of the world
    # An international number is read the same in any region: one cache entry for it.
    return _e164_cached(compact, None if compact.startswith("+") else (region or None))


# Possible, not valid: a possible number has a length its country's numbering plan allows; a
# valid one also falls in a range libphonenumber's metadata lists as allocated. Requiring
# validity would refuse real numbers from ranges allocated after the installed phonenumbers
# release (its metadata ages with the install), and with `invalid_identifiers: reject` that
# refuses the person's whole row, email included. A possible but unallocated number costs one
# hash that matches nobody; an impossible one (a digit too many, a trunk prefix left in) is a
# data error, so it is refused with the reason.
_NOT_POSSIBLE = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "not a phone number (no such country calling code)",
    phonenumbers.ValidationResult.TOO_SHORT: "not a possible phone number (too short for its country)",
    phonenumbers.ValidationResult.TOO_LONG: "not a possible phone number (too long for its country)",
    phonenumbers.ValidationResult.INVALID_LENGTH: "not a possible phone number (wrong length for its country)",
    # dialable only inside its area: no country code + area code makes it a number elsewhere
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "not a possible phone number (a local number without its area code)",
}


# Parsing is ~15 µs of the ~16 a phone costs (bench/phone_normalisation.py); a hit ~0.3. The
# cache pays where a number comes back within a few thousand rows in one process (a shared
# office line, the same changed people mapped for Meta and for Google in one daemon cycle); a
# first load of distinct numbers misses every time and pays the parse, as it must. Bounded:
# ~250 bytes an entry, 4 MB full.
@lru_cache(maxsize=16_384)
def _e164_cached(compact: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException:
        if not compact.startswith("+") and not region:
            raise InvalidIdentifier(
                "not a phone number with a country code (write it as +<country code><number>, "
                "map the row's country, or set the destination's phone_region)"
            ) from None
        raise InvalidIdentifier("not a phone number") from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidIdentifier(_NOT_POSSIBLE.get(possible, "not a possible phone number"))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def letters(text: str, region: str | None = None) -> str:
    """Lower-case letters only (any script; accents kept), NFC: Meta's names, city, state."""
    value = "".join(c for c in unicodedata.normalize("NFC", text.lower()) if c.isalpha())
    if not value:
        raise InvalidIdentifier("has no letters")
    return value


def first_initial(text: str, region: str | None = None) -> str:
    """The first letter of a name (Meta's FI), normalised as `letters`."""
    return letters(text)[0]


def trimmed_lower(text: str, region: str | None = None) -> str:
    return text.strip().lower()


def trimmed(text: str, region: str | None = None) -> str:
    return text.strip()


def country_code(text: str, region: str | None = None) -> str:
    """Google's countryCode: two letters, upper-case (``UK`` read as ``GB``). Google checks the
    code itself and refuses an unknown one per member (INVALID_COUNTRY_CODE, with its reason)."""
    value = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise InvalidIdentifier("not a two-letter ISO 3166-1 country code")
    return "GB" if value == "UK" else value


def meta_country(text: str, region: str | None = None) -> str:
    """Meta's COUNTRY: "the lowercase, 2-letter country codes in ISO 3166-1 alpha-2". Meta
    cannot refuse a hash it does not know, so a code that is no country is refused here."""
    value = region_of(text)
    if value is None:
        raise InvalidIdentifier("not an ISO 3166-1 alpha-2 country code (two letters, e.g. us, gb)")
    return value.lower()


def meta_zip(text: str, region: str | None = None) -> str:
    """Meta's ZIP: "Use lowercase with no spaces and no dash. Use only the first 5 digits for
    U.S. zip codes. Use the area, district, and sector format for the UK." with the examples
    94035 (US), 1987 (Australia), 75018 (France) and m11ae (UK) — Conversions API, Customer
    Information Parameters, `zp`:
    https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
    (the customer-file custom audience key ZIP says the same in its table:
    https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences).

    UK: Meta's own example keeps the whole postcode ("M1 1AE" → "m11ae", unit "AE" included),
    and so does its Business SDK's normaliser; cutting to the sector ("m11") would contradict
    the one worked example Meta gives, so a UK postcode gets the general rule.
    US (the row's country US or a US territory): 5 digits or ZIP+4, cut to 5; anything else
    is invalid (a ZIP that lost its leading zero in a numeric column would match no one).
    Without a country, a value shaped as ZIP+4 (9 digits) is cut to 5: no other country's
    code has 9 digits; a 5-digit value is the same under every rule."""
    value = _SPACE_OR_DASH.sub("", text.lower())
    if region in _USPS:
        us = _ZIP.match(value)
        if us is None:
            raise InvalidIdentifier("not a US ZIP code (5 digits, or ZIP+4)")
        return us.group(1)
    if region is None and len(value) == 9 and value.isdigit():
        return value[:5]
    if not value:
        raise InvalidIdentifier("has no postal code")
    return value


def google_postal_code(text: str, region: str | None = None) -> str:
    """Google's postal code, sent unhashed: "Both US and international zip and postal codes are
    allowed. For US addresses, use either 5 digits or 5 digits followed by a 4-digit extension.
    [...] For all other countries, don't use postal code extensions." Whitespace: "Trim leading
    and trailing whitespace." — Data Manager API, Format user data:
    https://developers.google.com/data-manager/api/devguides/concepts/formatting
    (Google's Customer Match file template writes a UK code as "WC2H 8LG": as written, its
    space kept; Google's own Data Manager formatter only trims postal codes).
    A US ZIP+4 is written with its dash, as USPS writes it; a US value that is neither 5
    digits nor ZIP+4 is invalid. Other countries' codes are sent as written."""
    value = text.strip()
    if region in _USPS:
        us = _US_ZIP_AS_WRITTEN.match(value)
        if us is None:
            raise InvalidIdentifier("not a US ZIP code (5 digits, or ZIP+4)")
        return f"{us.group(1)}-{us.group(2)}" if us.group(2) else us.group(1)
    return value


def gender(text: str, region: str | None = None) -> str:
    value = text.strip().lower()
    if value in ("m", "male", "f", "female"):
        return value[0]
    raise InvalidIdentifier("not m or f")


def _number(text: str, low: int, high: int, width: int, what: str) -> str:
    try:
        f = float(text)
    except ValueError:
        raise InvalidIdentifier(f"not a {what}") from None
    if not f.is_integer():  # 16.0 from a float column is 16; 16.5 is no day at all
        raise InvalidIdentifier(f"not a {what} (a whole number)")
    if not low <= f <= high:
        raise InvalidIdentifier(f"not a {what} ({low}-{high})")
    return str(int(f)).zfill(width)


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
    # The region the rule reads the value in: "phone" the row's country, else the destination's
    # phone_region; "country" the row's country alone; None none.
    reads: Literal["phone", "country"] | None = None


class Identifiers:
    """The identifiers one platform accepts, how each is normalised and which are hashed.

    Field names in `match`/`fields` are the lower-case keys (`email`, `fn`, …); `aliases`
    only serve "did you mean" hints.
    """

    def __init__(
        self, platform: str, version: str, identifiers: Iterable[tuple[str, Identifier]], aliases: Mapping[str, str], country: str
    ) -> None:
        self.platform = platform
        self.version = version  # salts the row hashes: a change of rules re-diffs every row
        self.by_name = dict(identifiers)
        self.aliases = dict(aliases)
        self.country = country  # the field naming the row's country: phones and postal codes are read in it

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
        """The value as sent: normalised, and hashed where the platform wants it hashed.
        `region` is the destination's phone_region."""
        return _normalise(self.by_name[field], value, region_of(row.get(self.country)), region)

    def transform(
        self, fields: Iterable[str], *, invalid: InvalidPolicy = "reject", region: str | None = None
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A function from a mapped row (raw values) to the row to store and send.

        `invalid="reject"` rejects a row with a value that cannot be normalised (the error
        names the field); `"drop"` sends that identifier as unknown instead, unless it was the
        row's last one.
        """
        names = [f for f in fields if f in self.by_name]
        idents = [(f, self.by_name[f]) for f in names]
        country_field = self.country if any(ident.reads for _, ident in idents) else None

        def apply(row: dict[str, Any]) -> dict[str, Any]:  # runs per row: kept tight
            out: dict[str, Any] = dict(row)
            country = region_of(row.get(country_field)) if country_field else None
            for field, ident in idents:
                try:
                    out[field] = _normalise(ident, row.get(field), country, region)
                except InvalidIdentifier as e:
                    if invalid == "reject":
                        raise InvalidIdentifier(f"field {field!r}: {e}") from None
                    out[field] = ""
            if names and not any(out[f] for f in names):
                raise InvalidIdentifier("no usable identifier left to match on")
            return out

        return apply


def _normalise(ident: Identifier, value: Any, country: str | None, phone_region: str | None) -> str:
    """`country`: the row's (ISO-2, or None); `phone_region`: the destination's default."""
    if value is None:
        return ""
    text = (value if type(value) is str else str(value)).strip()
    if not text:
        return ""
    if ident.hashed and len(text) == 64 and _SHA256.match(text.lower()):
        return text.lower()  # hashed upstream already
    region = (country or phone_region) if ident.reads == "phone" else country if ident.reads == "country" else None
    normalised = ident.rule(text, region)
    return hashlib.sha256(normalised.encode()).hexdigest() if ident.hashed else normalised


META = Identifiers(
    "Meta",
    "meta-2",  # meta-2: phones always parsed; ZIP per country; ISO countries
    [
        ("email", Identifier("EMAIL", email, True, "email address")),
        ("phone", Identifier("PHONE", meta_phone, True, "phone number, E.164 digits", reads="phone")),
        ("fn", Identifier("FN", letters, True, "first name")),
        ("ln", Identifier("LN", letters, True, "last name")),
        ("fi", Identifier("FI", first_initial, True, "first initial")),
        ("ct", Identifier("CT", letters, True, "city")),
        ("st", Identifier("ST", letters, True, "state or province")),
        ("zip", Identifier("ZIP", meta_zip, True, "zip or postal code", reads="country")),
        ("country", Identifier("COUNTRY", meta_country, True, "ISO 3166-1 alpha-2 country")),
        ("doby", Identifier("DOBY", birth_year, True, "birth year, YYYY")),
        ("dobm", Identifier("DOBM", birth_month, True, "birth month, MM")),
        ("dobd", Identifier("DOBD", birth_day, True, "birth day, DD")),
        ("gen", Identifier("GEN", gender, True, "gender, m or f")),
        ("madid", Identifier("MADID", trimmed_lower, False, "mobile advertiser id (IDFA/AAID), not hashed")),
        ("extern_id", Identifier("EXTERN_ID", trimmed, False, "your own id for the person, not hashed")),
    ],
    aliases={
        "first_name": "fn",
        "firstname": "fn",
        "last_name": "ln",
        "lastname": "ln",
        "city": "ct",
        "state": "st",
        "zip_code": "zip",
        "postal_code": "zip",
        "zipcode": "zip",
        "country_code": "country",
        "gender": "gen",
        "phone_number": "phone",
        "mobile": "phone",
        "external_id": "extern_id",
        "first_initial": "fi",
        "birth_year": "doby",
        "birth_month": "dobm",
        "birth_day": "dobd",
    },
    country="country",
)

GOOGLE = Identifiers(
    "Google Customer Match",
    "google-2",  # google-2: phones always parsed; US ZIPs checked; UK is GB
    [
        ("email", Identifier("hashedEmail", google_email, True, "email address")),
        ("phone", Identifier("hashedPhoneNumber", e164, True, "phone number, E.164 with +", reads="phone")),
        ("first_name", Identifier("hashedFirstName", trimmed_lower, True, "first name (address match)")),
        ("last_name", Identifier("hashedLastName", trimmed_lower, True, "last name (address match)")),
        ("country_code", Identifier("countryCode", country_code, False, "ISO 3166-1 alpha-2 country (address match), not hashed")),
        ("postal_code", Identifier("postalCode", google_postal_code, False, "postal code (address match), not hashed", reads="country")),
        ("third_party_user_id", Identifier("thirdPartyUserId", trimmed, False, "your CRM id (CRM_ID lists), not hashed")),
        ("mobile_id", Identifier("mobileId", trimmed, False, "mobile advertising id (MOBILE_ADVERTISING_ID lists), not hashed")),
    ],
    aliases={
        "fn": "first_name",
        "firstname": "first_name",
        "ln": "last_name",
        "lastname": "last_name",
        "country": "country_code",
        "zip": "postal_code",
        "zip_code": "postal_code",
        "postcode": "postal_code",
        "phone_number": "phone",
        "mobile": "phone",
        "crm_id": "third_party_user_id",
        "user_id": "third_party_user_id",
        "madid": "mobile_id",
        "idfa": "mobile_id",
        "gaid": "mobile_id",
    },
    country="country_code",
)

#: Google's address match needs all four parts; a row missing any sends no address.
GOOGLE_ADDRESS = ("first_name", "last_name", "country_code", "postal_code")
