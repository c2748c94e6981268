"""One retention cycle: reap abandoned captures, sweep, attest if due, forget old fetch
details, shred spent weeks.

The scheduled job and ``callrec retention run`` both call ``run_retention_cycle``, so the
service and an operator's manual run do the same work in the same order. It takes small
protocols and a clock, never settings, and reports rather than observes: the cycle
returns a ``CycleReport`` and its caller turns that into metrics, log lines or console
output. That keeps the retention rules free of how each caller tells people about them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from retention.attestation import AttestationRecords, attest_if_due
from retention.subject_access import HoldUpkeep
from retention.sweep import DEFAULT_BATCH, Deletions, SweepReport, sweep_expired_recordings
from storage import RETENTION_ACTOR, ShredReport, StorageError


class RetentionRecords(Deletions, AttestationRecords, Protocol):
    """What a cycle needs from storage's deleter: the sweep's and the attestation's parts."""


class AbandonedCaptures(Protocol):
    """Captures that will never finish (storage's RecordingStore)."""

    async def reap_abandoned_captures(
        self, *, older_than: timedelta | None = None, due_before: datetime | None = None
    ) -> int: ...


class FetchDetails(Protocol):
    """The fetch queue's labels of each callback, kept for an operator for a while."""

    async def forget_details(self, *, before: datetime) -> int: ...


class SpentEpochs(Protocol):
    """The epoch keys, whose weeks with every recording gone lose their key."""

    async def shred_spent_epochs(self) -> ShredReport: ...


class CaseHolds(Protocol):
    """The subject access office, which keeps open cases' recordings held."""

    async def keep_holds(self, *, actor: str) -> HoldUpkeep: ...


@dataclass
class CycleReport:
    """What one cycle did; in a dry run, only ``sweep`` says anything."""

    sweep: SweepReport
    captures_reaped: int = 0
    attestation: dict[str, Any] | None = None
    details_forgotten: int = 0
    shred: ShredReport | None = None
    # Shredding fails on its own (a KMS out of reach): the deletions stand and the next
    # cycle tries the keys again, so the failure is reported, not raised.
    shred_error: StorageError | None = None
    case_holds: HoldUpkeep | None = None

    @property
    def overdue_unheld(self) -> int:
        """Unheld recordings past their deadline per this cycle's attestation (0 if none)."""
        return 0 if self.attestation is None else int(self.attestation["overdue_unheld"])


def _counts_only(_kind: str, _ids: Sequence[uuid.UUID]) -> None:
    """Ids are dropped as each batch is done, so a large sweep keeps memory flat."""


async def run_retention_cycle(
    deletions: RetentionRecords,
    captures: AbandonedCaptures,
    fetch_details: FetchDetails,
    epochs: SpentEpochs,
    *,
    clock: Callable[[], datetime],
    horizon: timedelta,
    period: timedelta,
    erasure_approvals: int = 2,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    on_batch: Callable[[str, Sequence[uuid.UUID]], None] = _counts_only,
    cases: CaseHolds | None = None,
) -> CycleReport:
    """Delete what is due before ``now + horizon``, then leave the record straight.

    First, captures that will never finish are reaped: those abandoned longer than their
    grace and, whatever their age, those due before the same cutoff, so no pending row
    with a call's phone numbers outlives its deadline (first, so a sweep that fails in a
    store outage does not keep them). After the sweep: the daily attestation when one
    is due; the fetch queue forgets callback details older than ``period`` (a dead
    letter keeps its labels for an operator, but not past the retention period); a week
    whose recordings are all gone loses its key, in every backup too (the attestation
    states the early-erasure rule, ``erasure_approvals``). A dry run lists
    what is due and changes nothing.

    Before the sweep, every recording an open subject access case covers is held (and its
    hold renewed near its review date): a failure there stops the cycle, since sweeping
    without it could delete what a requester is owed.
    """
    upkeep = None
    if cases is not None and not dry_run:
        upkeep = await cases.keep_holds(actor=RETENTION_ACTOR)
    now = clock()
    reaped = 0 if dry_run else await captures.reap_abandoned_captures(due_before=now + horizon)
    sweep = await sweep_expired_recordings(
        deletions,
        now=now,
        horizon=horizon,
        dry_run=dry_run,
        progress=progress,
        batch_size=batch_size,
        on_batch=on_batch,
    )
    report = CycleReport(sweep, captures_reaped=reaped, case_holds=upkeep)
    if dry_run:
        return report
    report.attestation = await attest_if_due(
        deletions, now=clock(), erasure_approvals=erasure_approvals
    )
    report.details_forgotten = await fetch_details.forget_details(before=clock() - period)
    try:
        report.shred = await epochs.shred_spent_epochs()
    except StorageError as exc:
        report.shred_error = exc
    return report
