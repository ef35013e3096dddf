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

from activation.destinations.identifiers import GOOGLE, META, InvalidIdentifier, e164, google_email

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
        {"doby": 1997, "dobm": "2", "dobd": 16, "extern_id": " crm-42 ", "madid": "AECE52E7-03EE-455A-B3C4-E57283966239"})
    assert out == {"doby": sha("1997"), "dobm": sha("02"), "dobd": sha("16"), "extern_id": "crm-42",
                   "madid": "aece52e7-03ee-455a-b3c4-e57283966239"}


@pytest.mark.parametrize(("raw", "normalised"), [
    ("cloudy.sanfrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),  # Data Manager API guide
    ("user.name+NYC@Example.com", "user.name+nyc@example.com"),  # same guide: other domains keep dots and +
    ("  Jane.Doe@GoogleMail.com ", "janedoe@googlemail.com"),
    ("alex.2@example.com", "alex.2@example.com"),  # Google Ads API Customer Match example
])
def test_google_email_normalisation_and_hash(raw: str, normalised: str) -> None:
    assert google_email(raw) == normalised
    assert GOOGLE.transform(["email"])({"email": raw})["email"] == sha(normalised)


def test_google_phone_name_country_and_postal_code() -> None:
    assert e164("(800)555-0100", "US") == "+18005550100"  # Data Manager API guide
    row = {"email": "dana@example.com", "phone": "+1 800 5550101", "first_name": " Alex", "last_name": "Quinn ",
           "country_code": "us", "postal_code": " 94045 "}
    out = GOOGLE.transform(list(row))(row)
    assert out == {"email": sha("dana@example.com"), "phone": sha("+18005550101"), "first_name": sha("alex"),
                   "last_name": sha("quinn"), "country_code": "US", "postal_code": "94045"}  # country, zip unhashed
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
