"""Progress off a terminal: a few lines however many items, and counts that read right."""

from __future__ import annotations

import pytest

from config.plurals import counted
from config.progress import Progress


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_hundred_thousand_items_print_a_line_every_few_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ticks = Ticks()
    with Progress("object", every_s=5.0, monotonic=ticks) as progress:
        for _ in range(100_000):
            progress.advance(1)
            ticks.now += 0.0005  # 50 s in all
    lines = capsys.readouterr().err.splitlines()
    assert 9 <= len(lines) <= 11
    assert lines[0].endswith("objects done so far")
    assert lines[-1] == "100000 objects in 50 s"


def test_a_known_total_is_reported_by_tenths_and_a_short_run_leaves_the_summary_to_its_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Progress("data key", total=300, monotonic=Ticks()) as progress:
        for _ in range(30):
            progress.advance(10)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "30 data keys of 300 done so far"
    assert len(lines) == 10
    assert lines[-1] == "300 data keys of 300 done so far"


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 recordings"), (1, "1 recording"), (2, "2 recordings"), (-1, "-1 recordings")],
)
def test_a_count_of_one_is_singular_and_every_other_plural(count: int, expected: str) -> None:
    assert counted(count, "recording") == expected


def test_a_noun_with_its_own_plural() -> None:
    assert counted(3, "copy", "copies") == "3 copies"
