"""Bringing a restored database level with the anchors before anything is served.

A backup restored over the database holds recordings deleted or erased since it was
taken, with their data keys, and a chain that ends before the latest checkpoint (or
forks from it). Run at every start-up, before the service takes a request:

1. The chain against the latest checkpoint. Behind it, or differing from it, the
   database was restored, rolled back, or had its tail cut by someone with the owner's
   rights: start-up cannot tell which, so it anchors nothing. It logs an error, checkpoints
   stop until an operator who knows of a restore says so (``callrec audit accept-restore``,
   audited), and ``callrec audit verify`` fails naming the gap until then. Re-anchoring
   here would let a restart bless a cut tail.
2. The deletion ledger against the database, always, not only when step 1 found a
   restore: a backup taken after the latest checkpoint but before an erasure has a
   chain that matches the checkpoint and still holds the erased recording. Every
   recording the ledger names that the database does not show as deleted has its entry
   verified, then its deletion re-applied (``RecordingDeleter.reapply``) and finished
   (``finish_many``: objects, personal fields, receipt), in batches.

Every step is idempotent and safe for several replicas starting at once: a checkpoint
of the same head is one object; ``reapply`` takes each row under its lock and skips rows
already ``deleting``; ``finish_many`` finishes each once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from storage.anchors.checkpoints import AuditAnchors, Checkpoint, compare_with_checkpoint
from storage.anchors.ledger import DeletionLedger, ledger_key
from storage.db.database import Database
from storage.deletion import RecordingDeleter
from storage.errors import AnchorInvalid, AnchorMismatch, ObjectMissing

log = logging.getLogger("callrec.anchors")
REAPPLY_BATCH = 500
"""Recordings re-applied per commit and per store request, as a sweep's batch."""


@dataclass(slots=True)
class Reconciliation:
    """What the start-up reconciliation found and did."""

    behind: Checkpoint | None = None
    """The checkpoint the database was found behind (or differing from), if it was."""
    recorded: int = 0
    """Deletions the ledger records."""
    reapplied: list[uuid.UUID] = field(default_factory=list)
    """Recordings whose deletion this process re-applied."""
    finished: list[uuid.UUID] = field(default_factory=list)
    """Recordings this process took to ``deleted`` (re-applied here or elsewhere)."""
    not_genuine: list[str] = field(default_factory=list)
    """Ledger keys whose record did not verify: logged, never acted on."""


async def reconcile_with_anchors(
    *,
    database: Database,
    anchors: AuditAnchors,
    ledger: DeletionLedger,
    deleter: RecordingDeleter,
) -> Reconciliation:
    """Re-apply every deletion the database lacks and anchor a restored chain; see above.

    Raises AnchorInvalid when the latest checkpoint is not genuine, and StorageError when
    the anchors cannot be read: a service that cannot tell which recordings were deleted
    must not start serving them.
    """
    report = Reconciliation()
    public_keys = await anchors.trusted_keys()
    latest = await anchors.latest(public_keys)
    if latest is not None:
        try:
            async with database.read() as session:
                await compare_with_checkpoint(session, latest)
        except AnchorMismatch as exc:
            log.error(
                "the database does not hold the latest audit checkpoint: if it was restored "
                "from a backup, run `callrec audit accept-restore`; if not, treat it as an "
                "incident",
                extra={"reason": str(exc), "checkpoint": latest.key},
            )
            report.behind = latest
    recorded = await ledger.refresh()
    report.recorded = len(recorded)
    lacking = sorted(recorded & await deleter.not_deleted())
    reasons = await _verified_reasons(ledger, lacking, public_keys, report)
    ids = list(reasons)
    for start in range(0, len(ids), REAPPLY_BATCH):
        batch = ids[start : start + REAPPLY_BATCH]
        report.reapplied += await deleter.reapply({rid: reasons[rid] for rid in batch})
        # Also those another replica began: finishing is idempotent, counted once.
        report.finished += await deleter.finish_many(batch)
    return report


async def _verified_reasons(
    ledger: DeletionLedger,
    recording_ids: list[uuid.UUID],
    public_keys: Mapping[str, bytes],
    report: Reconciliation,
) -> dict[uuid.UUID, str]:
    """Each recording's ledger reason, for the entries that verify; the rest are logged
    and left alone, so a record the service did not sign deletes nothing."""
    reasons = {}
    for recording_id in recording_ids:
        try:
            entry = await ledger.entry(recording_id, public_keys)
        except ObjectMissing:
            continue
        except AnchorInvalid as exc:
            log.error("a deletion ledger entry is not genuine", extra={"reason": str(exc)})
            report.not_genuine.append(ledger_key(recording_id))
            continue
        reasons[recording_id] = entry.reason
    return reasons
