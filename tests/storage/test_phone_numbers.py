"""Numbers in one form: E.164 for whatever a number was written as, the text kept for
what is not a number (withheld callers, extensions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import as_stored, e164, known_region


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("+442079460000", "+442079460000"),
        ("+44 20 7946 0000", "+442079460000"),
        ("020 7946 0000", "+442079460000"),  # national, read as dialled in the UK
        ("(020) 7946-0000", "+442079460000"),
        ("07700 900123", "+447700900123"),  # a drama number: possible, not allocated
        ("tel:+44-20-7946-0000", "+442079460000"),
        ("sip:+442079460000@sbc.example.gov.uk;user=phone", "+442079460000"),
        ("+1 202 555 0143", "+12025550143"),
    ],
)
def test_numbers_are_written_in_e164(text: str, number: str) -> None:
    assert e164(text) == number
    assert as_stored(text) == number


@pytest.mark.parametrize(
    "text", ["anonymous", "2001", "", "+", "unknown@pbx", "+4420794600001234567", "x" * 65]
)
def test_what_is_not_a_persons_number_is_no_number_and_is_kept_as_sent(text: str) -> None:
    assert e164(text) is None
    assert as_stored(text) == text
    assert as_stored(None) is None


def test_national_numbers_follow_the_region() -> None:
    assert e164("(202) 555-0143", "US") == "+12025550143"
    assert e164("(202) 555-0143", "GB") != "+12025550143"
    assert known_region("GB")
    assert not known_region("XX")


@given(st.text(max_size=80))
def test_whatever_is_sent_comes_back_as_e164_or_none(text: str) -> None:
    number = e164(text)
    assert number is None or (number.startswith("+") and number[1:].isdigit())
    if number is not None:
        assert e164(number) == number  # normalising twice changes nothing
