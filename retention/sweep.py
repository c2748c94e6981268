"""The retention sweep: delete every recording whose deadline falls before the next sweep.

A plain async function over a small protocol, so the scheduler, the CLI and the tests
run the same job; the clock is passed in, so ninety days pass in a test in milliseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from storage import DueRecording, RetentionFacts

SWEEP_ACTOR = "retention"
_BATCH = 500


class Deletions(Protocol):
    """What a sweep needs from storage."""

    async def due(self, before: datetime, *, limit: int) -> list[DueRecording]: ...

    async def begin(
        self, before: datetime, *, limit: int, actor: str, reason: str
    ) -> list[uuid.UUID]: ...

    async def finish(self, recording_id: uuid.UUID) -> None: ...

    async def unfinished(self, *, limit: int) -> list[uuid.UUID]: ...

    async def record_sweep(self, *, cutoff: datetime, deleted: int, resumed: int) -> None: ...

    async def facts(self, *, now: datetime, cutoff: datetime) -> RetentionFacts: ...


@dataclass
class SweepReport:
    """What one sweep did (or, in a dry run, would do)."""

    cutoff: datetime
    dry_run: bool
    deleted: list[uuid.UUID] = field(default_factory=list)
    resumed: list[uuid.UUID] = field(default_factory=list)
    due: list[DueRecording] = field(default_factory=list)


async def sweep_expired_recordings(
    deletions: Deletions,
    *,
    now: datetime,
    horizon: timedelta,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SweepReport:
    """Delete every recording whose deadline is before ``now + horizon``.

    ``horizon`` is the time to the next sweep plus a margin, so no recording outlives its
    deadline between sweeps. Deletions left half-done by a crash are finished first.
    """
    report = SweepReport(cutoff=now + horizon, dry_run=dry_run)
    if dry_run:
        report.due = await deletions.due(report.cutoff, limit=1_000_000)
        return report
    while batch := await deletions.unfinished(limit=_BATCH):
        for recording_id in batch:
            await deletions.finish(recording_id)
        report.resumed += batch
    while batch := await deletions.begin(
        report.cutoff, limit=_BATCH, actor=SWEEP_ACTOR, reason="retention_period"
    ):
        for recording_id in batch:
            await deletions.finish(recording_id)
        report.deleted += batch
        if progress is not None:
            progress(len(batch))
    await deletions.record_sweep(
        cutoff=report.cutoff, deleted=len(report.deleted), resumed=len(report.resumed)
    )
    return report


async def retention_status(
    deletions: Deletions,
    *,
    now: datetime,
    interval: timedelta,
    margin: timedelta,
    period: timedelta,
) -> dict[str, Any]:
    """Last and next sweep, what is due and overdue, holds: the operator's view, as JSON."""
    facts = await deletions.facts(now=now, cutoff=now + interval + margin)
    last = facts.last_sweep_at
    return {
        "retention_period_days": period / timedelta(days=1),
        "sweep_interval_s": interval.total_seconds(),
        "last_sweep": None if last is None else {"at": _iso(last), **(facts.last_sweep or {})},
        "next_sweep": _iso(max(now, last + interval)) if last is not None else None,
        "due_before_next_sweep": facts.due,
        # Stored past their deadline: must be 0 while the service runs.
        "overdue": facts.overdue,
        "oldest_deadline": _iso(facts.oldest_deadline),
        "recordings": {
            "stored": facts.stored,
            "deleting": facts.deleting,
            "deleted": facts.deleted,
        },
        "holds": 0,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
