"""HubSpot value conversion by property definition (pure functions; the end-to-end path is in
test_hubspot_destination.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activation.destinations.hubspot.values import ConversionError, PropertyInfo, converter, plain_number


def conv(type_: str, field_type: str = "", options: tuple[str, ...] = ()) -> object:
    return converter(PropertyInfo("f", type_, field_type, frozenset(options)), "f")


def test_each_type_gets_hubspots_format() -> None:
    number, boolean, date, when = conv("number"), conv("bool"), conv("date"), conv("datetime")
    assert [number(v) for v in (12, 12.5, 42.0, 1e20, 1.5e-7, " 7.25 ", "1e3", None)] == [
        "12",
        "12.5",
        "42",
        "100000000000000000000",
        "0.00000015",
        "7.25",
        "1000",
        "",
    ]
    assert [boolean(v) for v in (True, False, 1, 0, "Yes", " no ", "t", None)] == [
        "true",
        "false",
        "true",
        "false",
        "true",
        "false",
        "true",
        "",
    ]
    assert [date(v) for v in ("2024-05-01", "2024-05-01T23:30:00-02:00", 1714521600000, "1714521600000")] == [
        "2024-05-01",
        "2024-05-02",
        "2024-05-01",
        "2024-05-01",
    ]
    assert [
        when(v) for v in ("2024-05-01T09:30:00", "2024-05-01T09:30:00.1234+02:00", "2024-05-01T09:30:00+0200", "2024-05-01", 1714555800000)
    ] == [
        "2024-05-01T09:30:00.000Z",
        "2024-05-01T07:30:00.123Z",
        "2024-05-01T07:30:00.000Z",
        "2024-05-01T00:00:00.000Z",
        "2024-05-01T09:30:00.000Z",
    ]
    assert conv("string")(["a", 2, True]) == "a;2;true" and conv("phone_number")(4930123) == "4930123"


def test_enumerations_take_their_options_and_multi_select_lists() -> None:
    single = conv("enumeration", "select", ("free", "pro"))
    multi = conv("enumeration", "checkbox", ("a", "b", "c"))
    assert single(" pro ") == "pro" and single(["free"]) == "free" and single(None) == ""
    assert multi(["a", "c"]) == "a;c" and multi("b;a") == "b;a" and multi([]) == ""
    assert conv("enumeration", "booleancheckbox", ("true", "false"))(True) == "true"
    assert conv("enumeration", "select")("anything") == "anything"  # external options: HubSpot checks them
    with pytest.raises(ConversionError, match=r"not one of the property's options \(free, pro\)"):
        single("gold")
    with pytest.raises(ConversionError, match="a list of 2 values for a single-choice property"):
        single(["free", "pro"])
    with pytest.raises(ConversionError, match="not one of the property's options"):
        multi(["a", "z"])


@pytest.mark.parametrize(
    "type_,value,why",
    [
        ("number", "12 apples", "a str value to a HubSpot number"),
        ("number", True, "a bool value to a HubSpot number"),
        ("number", "NaN", "not finite"),
        ("bool", "maybe", "a str value to a HubSpot bool"),
        ("bool", 2, "an int value to a HubSpot bool"),
        ("date", "01/05/2024", "a str value to a HubSpot date"),
        ("datetime", "yesterday at noon", "a str value to a HubSpot datetime"),
        ("datetime", {"at": 1}, "a dict value to a HubSpot datetime"),
    ],
)
def test_a_value_that_cannot_be_converted_names_the_field_and_type_but_not_the_value(type_: str, value: object, why: str) -> None:
    with pytest.raises(ConversionError) as caught:
        conv(type_)(value)
    message = str(caught.value)
    assert message.startswith("field 'f': ") and why in message
    if isinstance(value, str):
        assert value not in message  # values may be personal data: the row key identifies the row


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_are_plain_decimals_of_the_same_value(x: float) -> None:
    text = plain_number(x)
    assert "e" not in text.lower() and Decimal(text) == Decimal(repr(x))


@given(
    st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=-7)), dt.timezone(dt.timedelta(hours=5, minutes=30))]),
    )
)
def test_datetimes_keep_their_instant_to_the_millisecond(t: dt.datetime) -> None:
    sent = conv("datetime")(t.isoformat())
    back = dt.datetime.fromisoformat(sent.replace("Z", "+00:00"))
    assert sent.endswith("Z") and back == t.replace(microsecond=t.microsecond // 1000 * 1000)
    assert conv("date")(t.isoformat()) == t.astimezone(dt.timezone.utc).date().isoformat()
