"""Our normalisation and hashing against the platforms' own documented examples.

Meta: the "Customer Information Parameters" page of the Conversions API documents inputs,
normalised forms and the expected SHA-256 (the same rules as customer-file custom audiences):
``John_Smith@gmail.com`` → ``62a14e44…``, US phone ``(650)555-1212`` → ``16505551212`` →
``e323ec62…``, first names ``Mary``, ``Valéry``, ``정``, and ``smith``, ``menlopark``, ``ca``,
``94035``, ``us``, ``f``. The hashes below are copied from that page, not computed here.

Google publishes normalised forms but no hashes: the Data Manager API formatting guide
(``cloudy.sanfrancisco+shopping@gmail.com`` → ``cloudysanfrancisco@gmail.com``,
``user.name+NYC@Example.com`` → ``user.name+nyc@example.com``, ``(800)555-0100`` →
``+18005550100``) and the Google Ads API Customer Match example (``+1 800 5550101``,
``Alex``/``Quinn``, ``US``, ``94045`` unhashed). For those we check the normalised form, then
that the value sent is the SHA-256 of exactly that form (hashlib, computed here).
"""

from __future__ import annotations

import hashlib

import pytest

from activation.destinations.identifiers import (
    GOOGLE,
    META,
    Identifiers,
    InvalidIdentifier,
    e164,
    google_email,
    google_postal_code,
    meta_zip,
)

META_DOCUMENTED = [  # (field, input, expected SHA-256 from Meta's page)
    ("email", "John_Smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"),
    ("email", "  JOHN_SMITH@GMAIL.COM ", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"),
    ("fn", "Mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
    ("fn", "Valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
    ("fn", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
    ("ln", "Smith", "6627835f988e2c5e50533d491163072d3f4f41f5c8b04630150debb3722ca2dd"),
    ("ct", "Menlo Park", "0007a3d64c01e23d5075203c5977c14e4f7e01a3fc570686fcc50b5e1dd42685"),
    ("st", "CA", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
    ("zip", "94035", "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"),
    ("zip", "94035-1234", "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"),  # US: first 5 digits
    ("country", "US", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
    ("gen", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
    ("gen", "Female", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("field", "value", "digest"), META_DOCUMENTED)
def test_meta_hashes_match_metas_documented_examples(field: str, value: str, digest: str) -> None:
    assert META.transform([field])({field: value})[field] == digest


def test_meta_phone_example_read_in_the_rows_country() -> None:
    documented = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"  # 16505551212
    assert META.transform(["phone", "country"])({"phone": "(650)555-1212", "country": "US"})["phone"] == documented
    assert META.transform(["phone"], region="US")({"phone": "(650)555-1212"})["phone"] == documented
    assert META.transform(["phone"])({"phone": "+1 (650) 555-1212"})["phone"] == documented
    assert META.transform(["phone"])({"phone": "001 650 555 1212"})["phone"] == documented


def test_meta_birth_date_parts_and_unhashed_ids() -> None:
    """No hash published for the split date keys: the SHA-256 of Meta's documented formats."""
    out = META.transform(["doby", "dobm", "dobd", "extern_id", "madid"])(
        {"doby": 1997, "dobm": "2", "dobd": 16, "extern_id": " crm-42 ", "madid": "AECE52E7-03EE-455A-B3C4-E57283966239"}
    )
    assert out == {
        "doby": sha("1997"),
        "dobm": sha("02"),
        "dobd": sha("16"),
        "extern_id": "crm-42",
        "madid": "aece52e7-03ee-455a-b3c4-e57283966239",
    }


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("cloudy.sanfrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),  # Data Manager API guide
        ("user.name+NYC@Example.com", "user.name+nyc@example.com"),  # same guide: other domains keep dots and +
        ("  Jane.Doe@GoogleMail.com ", "janedoe@googlemail.com"),
        ("alex.2@example.com", "alex.2@example.com"),  # Google Ads API Customer Match example
    ],
)
def test_google_email_normalisation_and_hash(raw: str, normalised: str) -> None:
    assert google_email(raw) == normalised
    assert GOOGLE.transform(["email"])({"email": raw})["email"] == sha(normalised)


def test_google_phone_name_country_and_postal_code() -> None:
    assert e164("(800)555-0100", "US") == "+18005550100"  # Data Manager API guide
    row = {
        "email": "dana@example.com",
        "phone": "+1 800 5550101",
        "first_name": " Alex",
        "last_name": "Quinn ",
        "country_code": "us",
        "postal_code": " 94045 ",
    }
    out = GOOGLE.transform(list(row))(row)
    assert out == {
        "email": sha("dana@example.com"),
        "phone": sha("+18005550101"),
        "first_name": sha("alex"),
        "last_name": sha("quinn"),
        "country_code": "US",
        "postal_code": "94045",
    }  # country, zip unhashed
    assert GOOGLE.transform(["phone", "country_code"])({"phone": "(800)555-0100", "country_code": "US"})["phone"] == sha("+18005550100")


def test_meta_and_google_normalise_the_same_person_differently() -> None:
    meta = META.transform(["email", "phone"])({"email": "Jane.Doe@gmail.com", "phone": "+44 20 7946 0958"})
    google = GOOGLE.transform(["email", "phone"])({"email": "Jane.Doe@gmail.com", "phone": "+44 20 7946 0958"})
    assert meta == {"email": sha("jane.doe@gmail.com"), "phone": sha("442079460958")}
    assert google == {"email": sha("janedoe@gmail.com"), "phone": sha("+442079460958")}


def test_values_already_hashed_pass_through() -> None:
    digest = sha("someone@example.com")
    assert META.transform(["email", "fn"])({"email": digest.upper(), "fn": digest}) == {"email": digest, "fn": digest}


def test_invalid_values_reject_the_row_naming_the_field_but_never_the_value() -> None:
    apply = META.transform(["email", "phone"])
    with pytest.raises(InvalidIdentifier) as e:
        apply({"email": "a@b.co", "phone": "555-0199"})
    assert str(e.value).startswith("field 'phone': not a phone number with a country code") and "555" not in str(e.value)
    with pytest.raises(InvalidIdentifier, match="field 'email': not an email address"):
        apply({"email": "not-an-email", "phone": None})
    dropping = META.transform(["email", "phone"], invalid="drop")
    assert dropping({"email": "a@b.co", "phone": "555-0199"}) == {"email": sha("a@b.co"), "phone": ""}
    with pytest.raises(InvalidIdentifier, match="no usable identifier"):
        dropping({"email": "nope", "phone": "555"})


def test_unknown_fields_get_a_did_you_mean() -> None:
    assert META.problem("email") is None and GOOGLE.problem("postal_code") is None
    assert "did you mean 'fn' (first name)?" in str(META.problem("first_name"))
    assert "did you mean 'first_name'" in str(GOOGLE.problem("fn"))
    assert "write 'email' (lower-case)" in str(META.problem("EMAIL"))


# ---------------------------------------------------------------- phones: always libphonenumber
# Digests written out (computed with coreutils' sha256sum, not by this code) for the number the
# independent oracle caught: "+44 (0)20 7946 0958" once went out with its trunk "0".
UK_META = "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823"  # 442079460958
UK_GOOGLE = "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d"  # +442079460958


@pytest.mark.parametrize(
    "written",
    [
        "+44 (0)20 7946 0958",
        "+44(0)2079460958",
        "+4402079460958",
        "+44 20 7946 0958",
        "0044 20 7946 0958",
        "0044 (0)20 7946 0958",
        "tel:+44-20-7946-0958",
    ],
)
def test_an_international_number_loses_its_trunk_prefix_on_both_platforms(written: str) -> None:
    assert e164(written) == "+442079460958"
    assert META.transform(["phone"])({"phone": written})["phone"] == UK_META
    assert GOOGLE.transform(["phone"])({"phone": written})["phone"] == UK_GOOGLE


def test_a_national_number_is_read_in_the_rows_country_else_in_the_destinations_phone_region() -> None:
    for platform, country in ((META, "country"), (GOOGLE, "country_code")):
        want = UK_META if platform is META else UK_GOOGLE
        assert platform.transform(["phone", country])({"phone": "020 7946 0958", country: "GB"})["phone"] == want
        assert platform.transform(["phone", country])({"phone": "020 7946 0958", country: "uk"})["phone"] == want  # UK is GB
        assert platform.transform(["phone"], region="GB")({"phone": "(020) 7946-0958"})["phone"] == want
        # the row's country wins over the destination's default
        assert platform.transform(["phone", country], region="US")({"phone": "020 7946 0958", country: "GB"})["phone"] == want
    assert e164("(650) 555-1212", "US") == "+16505551212"
    assert e164("011 44 20 7946 0958", "US") == "+442079460958"  # the region's own international prefix


@pytest.mark.parametrize(
    ("written", "region", "reason"),
    [
        ("+44 20 7946 09581", None, "not a possible phone number (too long for its country)"),
        ("+1 650 555", None, "not a possible phone number (too short for its country)"),
        ("+1 (0)650 555 1212", None, "not a possible phone number (too long for its country)"),  # no trunk 0 in the US
        ("555 1212", "US", "not a possible phone number (a local number without its area code)"),
        ("+999 1234 5678", None, "not a phone number"),
    ],
)
def test_an_impossible_number_is_refused_naming_the_field_and_the_rule_never_the_value(
    written: str, region: str | None, reason: str
) -> None:
    for platform in (META, GOOGLE):
        with pytest.raises(InvalidIdentifier) as e:
            platform.transform(["email", "phone"], region=region)({"email": "a@b.co", "phone": written})
        assert str(e.value) == f"field 'phone': {reason}"
        assert not any(ch.isdigit() for ch in str(e.value))  # no digit of the number in the reason
        dropped = platform.transform(["email", "phone"], invalid="drop", region=region)({"email": "a@b.co", "phone": written})
        assert dropped["phone"] == "" and dropped["email"]


def test_a_possible_number_outside_the_allocated_ranges_is_still_sent() -> None:
    """Possible, not valid, is the rule (see `e164`): 07700 900xxx is a possible UK mobile that
    Ofcom keeps for drama, so libphonenumber calls it invalid; a newly allocated range would
    look the same to an old phonenumbers release."""
    import phonenumbers

    assert not phonenumbers.is_valid_number(phonenumbers.parse("+447700900123"))
    assert e164("+44 7700 900123") == "+447700900123"


# ---------------------------------------------------------------- postal codes, per platform and country


@pytest.mark.parametrize(
    ("written", "country", "normalised"),
    [
        ("94035", "US", "94035"),
        ("94035-1234", "US", "94035"),  # "Use only the first 5 digits for U.S. zip codes"
        ("94035 1234", "us", "94035"),
        ("00907-1234", "PR", "00907"),  # a US territory: USPS ZIP codes
        ("94035-1234", None, "94035"),  # no country: ZIP+4 is the only 9-digit postal code
        ("SW1A 1AA", "GB", "sw1a1aa"),  # lower-case, no space, the whole code (Meta's example m11ae)
        ("M1 1AE", "GB", "m11ae"),
        ("SW1A 1AA", None, "sw1a1aa"),
        ("75018", "FR", "75018"),
        ("1987", "AU", "1987"),
        ("100-0001", "JP", "1000001"),  # "no dash": removed, not cut at
        ("00-950", "PL", "00950"),
        ("01310-100", "BR", "01310100"),
        ("K1A 0B1", "CA", "k1a0b1"),
    ],
)
def test_meta_zip_per_country(written: str, country: str | None, normalised: str) -> None:
    assert meta_zip(written, country and country.upper()) == normalised
    row = {"zip": written, "country": country} if country else {"zip": written}
    assert META.transform(list(row))(row)["zip"] == sha(normalised)


def test_meta_zip_digests_written_out() -> None:
    """94035's digest is Meta's own (Customer Information Parameters page); the others are
    sha256sum's, for the normalised forms Meta's examples show."""
    apply = META.transform(["zip", "country"])
    assert apply({"zip": "94035-1234", "country": "US"})["zip"] == "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"
    assert apply({"zip": "SW1A 1AA", "country": "GB"})["zip"] == "830e1d4b9838bab1f5c2acdb23e0b502ff13a9832c4632e8d67a1d43d3b7f614"
    assert apply({"zip": "m1 1ae", "country": "GB"})["zip"] == "1dc694c2070e697769fb959b50671d76cafd430d8ca191fbdd0affcaea344ac5"
    assert apply({"zip": "100-0001", "country": "JP"})["zip"] == "443372db1ff98d9737596b4f83a8381ab6aab60e44e29854b48be88c74cdf1f0"


@pytest.mark.parametrize(
    ("written", "country", "sent"),
    [
        (" 94045 ", "US", "94045"),
        ("94045-1234", "US", "94045-1234"),  # "5 digits followed by a 4-digit extension ... may improve your match rate"
        ("940451234", "US", "94045-1234"),
        ("94045 1234", "US", "94045-1234"),
        (" SW1A 1AA ", "GB", "SW1A 1AA"),  # as written, space kept (Google's template: "WC2H 8LG")
        ("K1A 0B1", "CA", "K1A 0B1"),
        ("75018", "FR", "75018"),
    ],
)
def test_google_postal_code_is_sent_unhashed_as_written_a_us_zip_as_5_digits_or_zip_plus_4(written: str, country: str, sent: str) -> None:
    assert google_postal_code(written, country) == sent
    row = {"first_name": "Alex", "last_name": "Quinn", "country_code": country, "postal_code": written}
    assert GOOGLE.transform(list(row))(row)["postal_code"] == sent


@pytest.mark.parametrize("platform", [META, GOOGLE])
def test_a_us_zip_that_is_not_5_digits_or_zip_plus_4_is_refused(platform: Identifiers) -> None:
    """A ZIP that lost its leading zero in a numeric column (02134 → 2134) would match no one."""
    zip_field, country = ("zip", "country") if platform is META else ("postal_code", "country_code")
    for bad in ("2134", "SW1A 1AA", "94035-12"):
        with pytest.raises(InvalidIdentifier) as e:
            platform.transform([zip_field, country, "email"])({zip_field: bad, country: "US", "email": "a@b.co"})
        assert str(e.value) == f"field {zip_field!r}: not a US ZIP code (5 digits, or ZIP+4)"


# ---------------------------------------------------------------- country, birth dates


def test_country_codes_are_iso_and_uk_is_gb() -> None:
    gb = "0b407281768f0e833afef47ed464b6571d01ca4d53c12ce5c51d1462f4ad6677"  # sha256sum of "gb"
    assert META.transform(["country"])({"country": " uk "})["country"] == gb
    assert META.transform(["country"])({"country": "GB"})["country"] == gb
    assert GOOGLE.transform(["country_code"])({"country_code": "uk"})["country_code"] == "GB"
    with pytest.raises(InvalidIdentifier, match=r"^field 'country': not an ISO 3166-1 alpha-2 country code"):
        META.transform(["country", "email"])({"country": "ZZ", "email": "a@b.co"})  # Meta would hash it and match no one
    with pytest.raises(InvalidIdentifier, match=r"^field 'country_code': not a two-letter ISO 3166-1 country code"):
        GOOGLE.transform(["country_code", "email"])({"country_code": "United Kingdom", "email": "a@b.co"})


def test_birth_date_parts_must_be_whole_numbers() -> None:
    apply = META.transform(["dobd", "dobm", "doby", "email"])
    assert apply({"dobd": 16.0, "dobm": "2", "doby": "1997", "email": "a@b.co"})["dobd"] == sha("16")  # a float column
    with pytest.raises(InvalidIdentifier, match=r"^field 'dobd': not a day of the month \(a whole number\)$"):
        apply({"dobd": "16.5", "email": "a@b.co"})
    with pytest.raises(InvalidIdentifier, match=r"^field 'dobm': not a month \(1-12\)$"):
        apply({"dobm": "13", "email": "a@b.co"})
