"""Which retention epoch (ISO week) a call belongs to, and when that week is spent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH_KEY_PREFIX: Final = "ep-"
HOLD_EPOCH: Final = "hold"
# A week is spent this long after its last possible deadline, so no capture still in
# flight (a capture's deadline must be in the future when it is accepted) can want it.
SPENT_GRACE: Final = timedelta(days=1)


def epoch_of(moment: datetime) -> str:
    """The ISO week (UTC) ``moment`` falls in, as ``2026-W48``."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def epoch_end(epoch: str) -> datetime | None:
    """When ``epoch``'s week ends (UTC); None for the hold epoch, which never ends."""
    if epoch == HOLD_EPOCH:
        return None
    year, week = epoch.split("-W")
    start = datetime.fromisocalendar(int(year), int(week), 1).replace(tzinfo=UTC)
    return start + timedelta(days=7)


def is_spent(epoch: str, now: datetime, retention_period: timedelta) -> bool:
    """Whether every recording of ``epoch`` is past its deadline (and the grace) at ``now``."""
    end = epoch_end(epoch)
    return end is not None and end + retention_period + SPENT_GRACE <= now
