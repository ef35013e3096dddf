"""Field mappings that are Jinja expressions keep the type of what they compute, and text
stays text whatever it looks like (a string column holding '1234' is not sent as a number)."""

from __future__ import annotations

from typing import Any

import pytest

from activation.project.templating import compile_field


@pytest.mark.parametrize(
    ("expression", "row", "value"),
    [
        ("{{ row.zip }}", {"zip": "1234"}, "1234"),
        ("{{ row.code }}", {"code": "None"}, "None"),
        ("{{ row.tags }}", {"tags": "[1, 2]"}, "[1, 2]"),
        ("{{ row.code | upper }}", {"code": "0x1f"}, "0X1F"),
        ("{{ row.first ~ ' ' ~ row.last }}", {"first": "1", "last": "2"}, "1 2"),
        ("{{ row.a }}{{ row.b }}", {"a": 1, "b": 2}, "12"),
        ("{% if row.pro %}1{% else %}0{% endif %}", {"pro": True}, "1"),
        ("{{ row.seats * 2 }}", {"seats": 3}, 6),
        ("{{ row.ltv }}", {"ltv": None}, None),
        ("{{ row.flag }}", {"flag": False}, False),
        ("{{ 1 if row.pro else 0 }}", {"pro": True}, 1),
    ],
)
def test_a_field_template_keeps_its_expressions_type_and_text_stays_text(expression: str, row: dict[str, Any], value: Any) -> None:
    got = compile_field(expression)(row)
    assert got == value and type(got) is type(value)
