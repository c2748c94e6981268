"""The one fake clock of the suite: a test moves time, and ninety days pass in a line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A service clock (aware UTC ``datetime``) that moves only when the test says so.

    ``step`` makes every reading move time on by that much, for code that needs distinct
    times (audit events). ``monotonic`` reads the same time as seconds, for parts that
    measure intervals rather than dates.
    """

    def __init__(self, now: datetime | None = None, *, step: timedelta | None = None) -> None:
        self.now = now or datetime.now(UTC)
        self._step = step
        self._origin = self.now

    def __call__(self) -> datetime:
        if self._step is not None:
            self.now += self._step
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta``; the new time."""
        self.now += delta
        return self.now

    def monotonic(self) -> float:
        """Seconds since the clock was made: the interval clock of the same fake time."""
        return (self.now - self._origin).total_seconds()
