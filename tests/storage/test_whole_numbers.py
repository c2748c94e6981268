"""The one rule for numbers that arrive as text: ASCII digits only, and not too many."""

from __future__ import annotations

import pytest

from storage import whole_number


@pytest.mark.parametrize(
    ("text", "number"), [("0", 0), ("7", 7), ("0042", 42), ("9" * 18, 10**18 - 1)]
)
def test_ascii_digits_are_a_whole_number(text: str, number: int) -> None:
    assert whole_number(text) == number


@pytest.mark.parametrize(
    "text",
    [None, "", "\u00b2", "\u0663", "\uff17", "-1", "+1", " 1", "1.0", "1e3", "9" * 19, "9" * 5000],
    ids=[
        "none",
        "empty",
        "superscript",
        "arabic-indic",
        "fullwidth",
        "negative",
        "plus",
        "space",
        "decimal",
        "exponent",
        "too-long",
        "far-too-long",
    ],
)
def test_anything_else_is_not(text: str | None) -> None:
    assert whole_number(text) is None
