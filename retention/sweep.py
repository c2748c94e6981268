"""The retention sweep: delete every unheld recording whose deadline falls before the next sweep.

A plain async function over a small protocol, so the scheduler, the CLI and the tests
run the same job; the clock is passed in, so ninety days pass in a test in milliseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from storage import RETENTION_ACTOR, DueRecording, rfc3339

RETENTION_REASON = "retention_period"
DEFAULT_BATCH = 500


class Deletions(Protocol):
    """What a sweep needs from storage."""

    async def due(self, before: datetime, *, now: datetime, limit: int) -> list[DueRecording]: ...

    async def begin(
        self, before: datetime, *, now: datetime, limit: int, actor: str, reason: str
    ) -> list[uuid.UUID]: ...

    async def finish_many(self, recording_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]: ...

    async def unfinished(self, *, limit: int) -> list[uuid.UUID]: ...

    async def record_sweep(self, details: dict[str, Any]) -> None: ...


@dataclass
class SweepReport:
    """What one sweep did (or, in a dry run, would do)."""

    cutoff: datetime
    dry_run: bool
    deleted_count: int = 0
    resumed_count: int = 0
    # The ids themselves, unless the caller streams them (a sweep of 100,000 should not
    # hold 100,000 ids in memory).
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
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[str, Sequence[uuid.UUID]], None] | None = None,
) -> SweepReport:
    """Delete every unheld recording whose deadline is before ``now + horizon``.

    ``horizon`` is the time to the next sweep plus a margin, so no recording outlives its
    deadline between sweeps. A hold in force at ``now`` protects its recording; one that
    lapses before the next sweep is caught by that sweep (and reads refuse the recording
    from its deadline meanwhile). Deletions left half-done by a crash are finished first.
    Each batch of ``batch_size`` is claimed in one commit and deleted in one store request.
    With ``on_batch``, each batch's ids go to it (as "resumed" or "deleted") instead of
    into the report, so memory stays flat however many are due.
    """
    report = SweepReport(cutoff=now + horizon, dry_run=dry_run)
    if dry_run:
        report.due = await deletions.due(report.cutoff, now=now, limit=1_000_000)
        return report
    # Each count is of what this sweep finished, not of what it asked to finish: another
    # sweep may finish part of a batch first (a deletion it began, or one both resumed
    # after a restart), and a recording is counted once, by the sweep that finished it.
    while batch := await deletions.unfinished(limit=batch_size):
        finished = await deletions.finish_many(batch)
        report.resumed_count += len(finished)
        _hand_on(report.resumed, "resumed", finished, on_batch)
    while batch := await deletions.begin(
        report.cutoff, now=now, limit=batch_size, actor=RETENTION_ACTOR, reason=RETENTION_REASON
    ):
        finished = await deletions.finish_many(batch)
        report.deleted_count += len(finished)
        _hand_on(report.deleted, "deleted", finished, on_batch)
        if progress is not None:
            progress(len(batch))
    # The sweep itself goes on the record, so its schedule can be proved.
    await deletions.record_sweep(
        {
            "cutoff": rfc3339(report.cutoff),
            "deleted": report.deleted_count,
            "resumed": report.resumed_count,
        }
    )
    return report


def _hand_on(
    kept: list[uuid.UUID],
    kind: str,
    finished: list[uuid.UUID],
    on_batch: Callable[[str, Sequence[uuid.UUID]], None] | None,
) -> None:
    """Give the finished ids to ``on_batch``, or keep them in the report's list."""
    if on_batch is not None:
        on_batch(kind, finished)
    else:
        kept += finished
