"""Deleting recordings completely: keys first, then every object version, then personal data.

The order is the promise. Once the wrapped data keys are gone (one commit, with its
audit event) the audio is unrecoverable, whatever copies of the ciphertext remain; the
objects and their versions go next; then the personal metadata is stripped, a tombstone
kept and a signed receipt written. A crash anywhere leaves the row ``deleting``, and the
next sweep finishes it. Every step is idempotent. A recording with a hold in force is
never claimed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from storage.audit import AuditRecord, AuditTrail
from storage.blobs import ObjectStore, ObjectVersion
from storage.database import Database
from storage.errors import RecordingHeld
from storage.holds import held_at, hold_in_force
from storage.models import (
    AuditEvent,
    DataKey,
    Recording,
    RecordingHold,
    RecordingPeaks,
    RecordingReferral,
    RecordingState,
    StoredObject,
)
from storage.receipts import ReceiptSigner
from storage.vocabulary import RETENTION_ACTOR, rfc3339

RECEIPT_ACTION = "recording.deleted"
SWEEP_ACTION = "retention.sweep"
ATTESTATION_ACTION = "retention.attestation"
# Deletion works on recording rows alone; their objects and links are handled in bulk.
_ROW_ONLY = (raiseload(Recording.objects), raiseload(Recording.referrals))


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    """Counts and times an operator needs to see that nothing outlives its deadline."""

    stored: int
    due: int
    overdue: int
    deleting: int
    deleted: int
    held: int
    held_past_deadline: int
    holds_by_kind: dict[str, int]
    oldest_deadline: datetime | None
    oldest_unheld_started_at: datetime | None
    last_sweep_at: datetime | None
    last_sweep: dict[str, object] | None
    last_attestation_at: datetime | None


@dataclass(frozen=True, slots=True)
class DueRecording:
    """A recording a sweep would delete, as a dry run reports it."""

    id: uuid.UUID
    retention_deadline: datetime


class RecordingDeleter:
    """Finds recordings due for deletion and deletes them in the promised order."""

    def __init__(
        self,
        *,
        database: Database,
        objects: ObjectStore,
        audit: AuditTrail,
        receipts: ReceiptSigner,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._objects = objects
        self._audit = audit
        self._receipts = receipts
        self._clock = clock

    async def due(self, before: datetime, *, now: datetime, limit: int) -> list[DueRecording]:
        """Unheld stored recordings whose deadline falls before ``before``, oldest first."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(Recording.id, Recording.retention_deadline)
                .where(_due(before, now))
                .order_by(Recording.retention_deadline, Recording.id)
                .limit(limit)
            )
            return [DueRecording(row.id, row.retention_deadline) for row in rows]

    async def begin(
        self, before: datetime, *, now: datetime, limit: int, actor: str, reason: str
    ) -> list[uuid.UUID]:
        """Claim up to ``limit`` due, unheld recordings and destroy their data keys, in one commit.

        ``FOR UPDATE SKIP LOCKED`` lets several sweeping processes share the work on
        PostgreSQL without taking the same recording twice (SQLite writers are serial).
        """
        async with self._database.transaction() as session:
            claimed = (
                (
                    await session.execute(
                        select(Recording)
                        .where(_due(before, now))
                        .order_by(Recording.retention_deadline, Recording.id)
                        .limit(limit)
                        .options(*_ROW_ONLY)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            # A hold placed while this statement waited for its snapshot would be missed by
            # the query above; a fresh statement sees it, because placing a hold locks the
            # recording row until the hold commits.
            held = await _held_among(session, [row.id for row in claimed], now)
            claimed = [row for row in claimed if row.id not in held]
            await self._shred(session, claimed, actor=actor, reason=reason)
            return [row.id for row in claimed]

    async def begin_one(
        self, recording_id: uuid.UUID, *, actor: str, reason: str, note: str | None = None
    ) -> bool:
        """Start deleting one stored recording now (early erasure); False if not stored.

        Raises RecordingHeld when a hold is in force: it must be released first, on the
        record, rather than overridden silently.
        """
        async with self._database.transaction() as session:
            row = (
                await session.execute(
                    select(Recording)
                    .where(Recording.id == recording_id, Recording.state == RecordingState.STORED)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                return False
            kinds = (
                (
                    await session.execute(
                        select(RecordingHold.kind).where(
                            RecordingHold.recording_id == recording_id,
                            hold_in_force(self._clock()),
                        )
                    )
                )
                .scalars()
                .all()
            )
            if kinds:
                raise RecordingHeld(sorted(kinds))
            await self._shred(session, [row], actor=actor, reason=reason, note=note)
            return True

    async def finish(self, recording_id: uuid.UUID) -> None:
        """Finish one deletion; see ``finish_many``."""
        await self.finish_many([recording_id])

    async def finish_many(self, recording_ids: Sequence[uuid.UUID]) -> None:
        """Remove the objects (every version), strip personal data, keep a tombstone.

        One batched store request and one transaction for the whole batch: a sweep of
        thousands is bounded by the store's throughput, not by round trips.
        """
        if not recording_ids:
            return
        ids = list(recording_ids)
        async with self._database.read() as session:
            stored = (
                await session.execute(
                    select(
                        StoredObject.recording_id,
                        StoredObject.object_key,
                        StoredObject.version_id,
                        StoredObject.plaintext_sha256,
                    )
                    .join(Recording, Recording.id == StoredObject.recording_id)
                    # Only recordings whose keys are gone: a stored one is never touched here.
                    .where(
                        StoredObject.recording_id.in_(ids),
                        Recording.state == RecordingState.DELETING,
                    )
                )
            ).all()
        await self._objects.delete_many([ObjectVersion(row[1], row[2]) for row in stored])
        hashes: dict[uuid.UUID, list[str]] = {}
        for recording_id, _, _, sha256 in stored:
            hashes.setdefault(recording_id, []).append(sha256)
        async with self._database.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(Recording)
                        .where(Recording.id.in_(ids), Recording.state == RecordingState.DELETING)
                        .order_by(Recording.id)
                        .options(*_ROW_ONLY)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            if not rows:
                return
            finished = [row.id for row in rows]
            await session.execute(
                delete(RecordingReferral).where(RecordingReferral.recording_id.in_(finished))
            )
            await session.execute(
                delete(RecordingHold).where(RecordingHold.recording_id.in_(finished))
            )
            await session.execute(
                delete(RecordingPeaks).where(RecordingPeaks.recording_id.in_(finished))
            )
            now = self._clock()
            reasons = await _deletion_reasons(session, finished)
            receipts = []
            for row in rows:
                row.from_number = None
                row.to_number = None
                row.agent = None
                row.extra = None
                row.state = RecordingState.DELETED
                row.deleted_at = now
                receipts.append(
                    AuditRecord(
                        actor=RETENTION_ACTOR,
                        action=RECEIPT_ACTION,
                        recording_id=row.id,
                        details=self._receipts.sign(
                            {
                                "recording_id": str(row.id),
                                "source": row.source,
                                "started_at": rfc3339(row.started_at),
                                "retention_deadline": rfc3339(row.retention_deadline),
                                "deleted_at": rfc3339(now),
                                "reason": reasons.get(row.id, "unknown"),
                                # What was destroyed, identified by its hashes alone.
                                "objects": len(hashes.get(row.id, [])),
                                "sha256": sorted(hashes.get(row.id, [])),
                            }
                        ),
                    )
                )
            await self._audit.append_many(session, receipts)

    async def record_sweep(self, details: dict[str, Any]) -> None:
        """Write a sweep's audit event with the ``details`` retention gives it."""
        await self._record(AuditRecord(actor=RETENTION_ACTOR, action=SWEEP_ACTION, details=details))

    async def record_attestation(self, details: dict[str, Any], *, passed: bool) -> None:
        """Write an attestation's audit event: ``details`` as given, outcome fail unless passed."""
        await self._record(
            AuditRecord(
                actor=RETENTION_ACTOR,
                action=ATTESTATION_ACTION,
                outcome="allow" if passed else "fail",
                details=details,
            )
        )

    async def overdue_unheld(self, *, now: datetime) -> int:
        """How many stored recordings are past their deadline at ``now`` with no hold in force."""
        async with self._database.read() as session:
            count = (
                await session.execute(select(func.count()).where(_past(now), ~held_at(now)))
            ).scalar_one()
        return int(count)

    async def held_past_deadline(
        self, *, now: datetime, limit: int
    ) -> list[tuple[uuid.UUID, str, datetime]]:
        """Up to ``limit`` (recording id, hold kind, review by) of holds in force on overdue
        recordings, in recording and kind order."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(RecordingHold.recording_id, RecordingHold.kind, RecordingHold.review_by)
                .join(Recording, Recording.id == RecordingHold.recording_id)
                .where(_past(now), hold_in_force(now))
                .order_by(RecordingHold.recording_id, RecordingHold.kind)
                .limit(limit)
            )
            return [(rid, kind, review_by) for rid, kind, review_by in rows.all()]

    async def deleted_since(self, since: datetime) -> list[tuple[datetime, datetime]]:
        """(deleted at, deadline) of every recording deleted after ``since``."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(Recording.deleted_at, Recording.retention_deadline).where(
                    Recording.state == RecordingState.DELETED,
                    Recording.deleted_at > since,
                )
            )
            return [(deleted_at, deadline) for deleted_at, deadline in rows.all() if deleted_at]

    async def facts(self, *, now: datetime, cutoff: datetime) -> RetentionFacts:
        """Counts by state, what the next sweep will take, what is already overdue, holds."""
        async with self._database.read() as session:
            counts = dict(
                (
                    await session.execute(
                        select(Recording.state, func.count()).group_by(Recording.state)
                    )
                ).all()
            )
            stored = Recording.state == RecordingState.STORED
            unheld = ~held_at(now)

            async def scalar(statement: Any) -> Any:
                return (await session.execute(statement)).scalar_one()

            due = await scalar(select(func.count()).where(_due(cutoff, now)))
            overdue = await scalar(
                select(func.count()).where(stored, unheld, Recording.retention_deadline <= now)
            )
            held = await scalar(select(func.count()).where(stored, held_at(now)))
            held_past = await scalar(
                select(func.count()).where(
                    stored, held_at(now), Recording.retention_deadline <= now
                )
            )
            oldest = await scalar(select(func.min(Recording.retention_deadline)).where(stored))
            oldest_unheld = await scalar(
                select(func.min(Recording.started_at)).where(stored, unheld)
            )
            by_kind = dict(
                (
                    await session.execute(
                        select(RecordingHold.kind, func.count())
                        .where(hold_in_force(now))
                        .group_by(RecordingHold.kind)
                    )
                ).all()
            )
            last = await _last_event(session, SWEEP_ACTION)
            attestation = await _last_event(session, ATTESTATION_ACTION)
        return RetentionFacts(
            stored=int(counts.get(RecordingState.STORED, 0)),
            due=int(due),
            overdue=int(overdue),
            deleting=int(counts.get(RecordingState.DELETING, 0)),
            deleted=int(counts.get(RecordingState.DELETED, 0)),
            held=int(held),
            held_past_deadline=int(held_past),
            holds_by_kind={str(kind): int(count) for kind, count in by_kind.items()},
            oldest_deadline=_aware(oldest),
            oldest_unheld_started_at=_aware(oldest_unheld),
            last_sweep_at=last.occurred_at if last is not None else None,
            last_sweep=dict(last.details or {}) if last is not None else None,
            last_attestation_at=attestation.occurred_at if attestation is not None else None,
        )

    async def unfinished(self, *, limit: int) -> list[uuid.UUID]:
        """Recordings left ``deleting`` by a crash, for ``finish`` to complete."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(Recording.id)
                .where(Recording.state == RecordingState.DELETING)
                .order_by(Recording.id)
                .limit(limit)
            )
            return list(rows.scalars())

    async def _record(self, event: AuditRecord) -> None:
        async with self._database.transaction() as session:
            await self._audit.append(session, event)

    async def _shred(
        self,
        session: AsyncSession,
        rows: Sequence[Recording],
        *,
        actor: str,
        reason: str,
        note: str | None = None,
    ) -> None:
        if not rows:
            return
        ids = [row.id for row in rows]
        object_ids = select(StoredObject.id).where(StoredObject.recording_id.in_(ids))
        await session.execute(delete(DataKey).where(DataKey.object_id.in_(object_ids)))
        for row in rows:
            row.state = RecordingState.DELETING
        await self._audit.append_many(
            session,
            [
                AuditRecord(
                    actor=actor,
                    action="recording.keys_destroyed",
                    recording_id=row.id,
                    details={"reason": reason, "deadline": rfc3339(row.retention_deadline)}
                    | ({"note": note} if note else {}),
                )
                for row in rows
            ],
        )


def _past(now: datetime) -> ColumnElement[bool]:
    """Stored with its deadline at or before ``now``, held or not."""
    return and_(Recording.state == RecordingState.STORED, Recording.retention_deadline <= now)


def _due(before: datetime, now: datetime) -> ColumnElement[bool]:
    """What a sweep takes, in one place so the dry run, the sweep and the status agree:
    stored, deadline before ``before``, no hold in force at ``now``."""
    return and_(
        Recording.state == RecordingState.STORED,
        Recording.retention_deadline < before,
        ~held_at(now),
    )


async def _held_among(
    session: AsyncSession, recording_ids: list[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    if not recording_ids:
        return set()
    rows = await session.execute(
        select(RecordingHold.recording_id).where(
            RecordingHold.recording_id.in_(recording_ids), hold_in_force(now)
        )
    )
    return set(rows.scalars())


async def _deletion_reasons(
    session: AsyncSession, recording_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Why each deletion began, from its keys_destroyed event (retention or erasure)."""
    rows = await session.execute(
        select(AuditEvent.recording_id, AuditEvent.details)
        .where(
            AuditEvent.action == "recording.keys_destroyed",
            AuditEvent.recording_id.in_(recording_ids),
        )
        .order_by(AuditEvent.seq)
    )
    return {
        recording_id: str((details or {}).get("reason", "unknown"))
        for recording_id, details in rows
        if recording_id is not None
    }


async def _last_event(session: AsyncSession, action: str) -> AuditEvent | None:
    return (
        await session.execute(
            select(AuditEvent)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def _aware(moment: datetime | None) -> datetime | None:
    # Deadlines are stored in UTC; a backend that drops the zone on an aggregate means UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
