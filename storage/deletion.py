"""Deleting recordings completely: keys first, then every object version, then personal data.

The order is the promise. Once the wrapped data keys are gone (one commit, with its
audit event) the audio is unrecoverable, whatever copies of the ciphertext remain; the
objects and their versions go next; then the personal metadata is stripped and a
tombstone kept. A crash anywhere leaves the row ``deleting``, and ``resume`` finishes
it. Every step is idempotent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.blobs import ObjectStore
from storage.database import Database
from storage.models import (
    AuditEvent,
    DataKey,
    Recording,
    RecordingReferral,
    RecordingState,
    StoredObject,
)


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    """Counts and times an operator needs to see that nothing outlives its deadline."""

    stored: int
    due: int
    overdue: int
    deleting: int
    deleted: int
    oldest_deadline: datetime | None
    last_sweep_at: datetime | None
    last_sweep: dict[str, object] | None


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
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._objects = objects
        self._audit = audit
        self._clock = clock

    async def due(self, before: datetime, *, limit: int) -> list[DueRecording]:
        """Stored recordings whose deadline falls before ``before``, oldest deadline first."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(Recording.id, Recording.retention_deadline)
                .where(
                    Recording.state == RecordingState.STORED,
                    Recording.retention_deadline < before,
                )
                .order_by(Recording.retention_deadline, Recording.id)
                .limit(limit)
            )
            return [DueRecording(row.id, row.retention_deadline) for row in rows]

    async def begin(
        self, before: datetime, *, limit: int, actor: str, reason: str
    ) -> list[uuid.UUID]:
        """Claim up to ``limit`` due recordings and destroy their data keys, in one commit.

        ``FOR UPDATE SKIP LOCKED`` lets several sweeping processes share the work on
        PostgreSQL without taking the same recording twice (SQLite writers are serial).
        """
        async with self._database.transaction() as session:
            claimed = (
                (
                    await session.execute(
                        select(Recording)
                        .where(
                            Recording.state == RecordingState.STORED,
                            Recording.retention_deadline < before,
                        )
                        .order_by(Recording.retention_deadline, Recording.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            ids = [row.id for row in claimed]
            await self._shred(session, claimed, actor=actor, reason=reason)
            return ids

    async def begin_one(self, recording_id: uuid.UUID, *, actor: str, reason: str) -> bool:
        """Start deleting one stored recording now (early erasure); False if not stored."""
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
            await self._shred(session, [row], actor=actor, reason=reason)
            return True

    async def finish(self, recording_id: uuid.UUID) -> None:
        """Remove the objects (every version), strip personal data, keep a tombstone."""
        async with self._database.read() as session:
            keys = (
                await session.execute(
                    select(StoredObject.object_key, StoredObject.plaintext_sha256).where(
                        StoredObject.recording_id == recording_id
                    )
                )
            ).all()
        for key, _ in keys:
            await self._objects.delete(key)
        async with self._database.transaction() as session:
            row = await session.get(Recording, recording_id, with_for_update=True)
            if row is None or row.state != RecordingState.DELETING:
                return
            row.from_number = None
            row.to_number = None
            row.agent = None
            row.extra = None
            row.state = RecordingState.DELETED
            row.deleted_at = self._clock()
            await session.execute(
                delete(RecordingReferral).where(RecordingReferral.recording_id == recording_id)
            )
            await self._audit.append(
                session,
                AuditRecord(
                    actor="retention",
                    action="recording.deleted",
                    recording_id=recording_id,
                    # The receipt: what was destroyed, identified by its hashes alone.
                    details={"objects": len(keys), "sha256": sorted(sha for _, sha in keys)},
                ),
            )

    async def record_sweep(self, *, cutoff: datetime, deleted: int, resumed: int) -> None:
        """Leave the sweep itself on the record, so its schedule can be proved."""
        async with self._database.transaction() as session:
            await self._audit.append(
                session,
                AuditRecord(
                    actor="retention",
                    action="retention.sweep",
                    details={"cutoff": cutoff.isoformat(), "deleted": deleted, "resumed": resumed},
                ),
            )

    async def facts(self, *, now: datetime, cutoff: datetime) -> RetentionFacts:
        """Counts by state, what the next sweep will take, what is already overdue."""
        async with self._database.read() as session:
            counts = dict(
                (
                    await session.execute(
                        select(Recording.state, func.count()).group_by(Recording.state)
                    )
                ).all()
            )
            stored = Recording.state == RecordingState.STORED
            due = (
                await session.execute(
                    select(func.count()).where(stored, Recording.retention_deadline < cutoff)
                )
            ).scalar_one()
            overdue = (
                await session.execute(
                    select(func.count()).where(stored, Recording.retention_deadline <= now)
                )
            ).scalar_one()
            oldest = (
                await session.execute(select(func.min(Recording.retention_deadline)).where(stored))
            ).scalar_one()
            last = (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.action == "retention.sweep")
                    .order_by(AuditEvent.seq.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return RetentionFacts(
            stored=int(counts.get(RecordingState.STORED, 0)),
            due=int(due),
            overdue=int(overdue),
            deleting=int(counts.get(RecordingState.DELETING, 0)),
            deleted=int(counts.get(RecordingState.DELETED, 0)),
            oldest_deadline=_aware(oldest),
            last_sweep_at=last.occurred_at if last is not None else None,
            last_sweep=dict(last.details or {}) if last is not None else None,
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

    async def _shred(
        self, session: AsyncSession, rows: Sequence[Recording], *, actor: str, reason: str
    ) -> None:
        if not rows:
            return
        ids = [row.id for row in rows]
        object_ids = select(StoredObject.id).where(StoredObject.recording_id.in_(ids))
        await session.execute(delete(DataKey).where(DataKey.object_id.in_(object_ids)))
        for row in rows:
            row.state = RecordingState.DELETING
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="recording.keys_destroyed",
                    recording_id=row.id,
                    details={"reason": reason, "deadline": row.retention_deadline.isoformat()},
                ),
            )


def _aware(moment: datetime | None) -> datetime | None:
    # Deadlines are stored in UTC; a backend that drops the zone on an aggregate means UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
