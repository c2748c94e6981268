"""What retention tests share beyond their fixtures (tests/retention/conftest.py)."""

from __future__ import annotations

from config.services import Services
from tests.clock import FakeClock


def clock_of(services: Services) -> FakeClock:
    """The fake clock the ``services`` fixture was built with."""
    clock = services.clock
    assert isinstance(clock, FakeClock)
    return clock
