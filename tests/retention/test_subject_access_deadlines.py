"""The statutory clock of a subject access request, by the ICO's own examples."""

from __future__ import annotations

from datetime import date

import pytest

from retention import extended_deadline, statutory_deadline


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (date(2027, 1, 3), date(2027, 2, 3)),  # the same day of the next month
        (date(2027, 1, 31), date(2027, 2, 28)),  # no 31 February: the month's last day
        (date(2028, 1, 31), date(2028, 2, 29)),  # a leap year's last day of February
        (date(2027, 12, 15), date(2028, 1, 15)),  # across the year's end
    ],
)
def test_one_calendar_month_from_receipt(received: date, due: date) -> None:
    assert statutory_deadline(received) == due


def test_an_extension_gives_two_further_months() -> None:
    assert extended_deadline(date(2027, 1, 3)) == date(2027, 4, 3)
    assert extended_deadline(date(2027, 11, 30)) == date(2028, 2, 29)
