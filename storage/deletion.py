"""Deleting recordings completely: keys first, then every object version, then personal data.

The order is the promise. Once the wrapped data keys are gone (one commit, with its
audit event) the audio is unrecoverable from this database, whatever copies of the
ciphertext remain; the objects and their versions go next, with the recording's key
share, after which no earlier copy of the database can open the keys either; then the
personal metadata is stripped, a tombstone kept and a signed receipt written. A crash
anywhere leaves the row ``deleting``, and the next sweep finishes it. Every step is
idempotent. A recording with a hold in force is never claimed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from storage.anchors.ledger import DeletionLedger
from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.job_models import RenditionJob
from storage.db.models import (
    AuditEvent,
    DataKey,
    Recording,
    RecordingHold,
    RecordingState,
    StoredObject,
)
from storage.db.repository import RecordingRepository
from storage.deletion_finish import (
    deletion_receipt,
    renditions_in_flight,
    shares_of,
    stored_objects_of,
)
from storage.errors import RecordingHeld
from storage.holds import hold_in_force
from storage.keys.receipts import RECEIPT_ACTION, ReceiptSigner
from storage.objects.store import ObjectStore
from storage.retention_queries import (
    KEYS_DESTROYED_ACTION,
    RetentionFacts,
    RetentionQueries,
    due_unheld,
)
from storage.vocabulary import RETENTION_ACTOR, rfc3339

# RetentionFacts is named here too: the package has always exported it from this module.
__all__ = [
    "KEYS_DESTROYED_ACTION",
    "REAPPLIED_ACTION",
    "RECEIPT_ACTION",
    "DueRecording",
    "RecordingDeleter",
    "RetentionFacts",
]

REAPPLIED_ACTION = "recording.deletion_reapplied"
"""The same step taken again because the deletion ledger records a deletion a restored
database lacks (docs/operations.md, "Restoring a backup")."""

# Deletion works on recording rows alone; their objects and links are handled in bulk.
_ROW_ONLY = (raiseload(Recording.objects), raiseload(Recording.referrals))


@dataclass(frozen=True, slots=True)
class DueRecording:
    """A recording a sweep would delete, as a dry run reports it."""

    id: uuid.UUID
    retention_deadline: datetime


class RecordingDeleter(RetentionQueries):
    """Finds recordings due for deletion and deletes them in the promised order."""

    def __init__(
        self,
        *,
        database: Database,
        objects: ObjectStore,
        audit: AuditTrail,
        receipts: Callable[[], Awaitable[ReceiptSigner]],
        clock: Callable[[], datetime],
        after_batch: Callable[[], Awaitable[None]] | None = None,
        ledger: DeletionLedger | None = None,
    ) -> None:
        """``receipts`` gives the signer when a receipt is due: it is read from the
        database, so a deleter that only counts or lists never needs it. ``after_batch``
        runs once each batch of deletions is committed (the audit checkpoint)."""
        super().__init__(database=database, audit=audit)
        self._objects = objects
        self._receipts = receipts
        self._clock = clock
        self._after_batch = after_batch
        self._ledger = ledger

    async def due(self, before: datetime, *, now: datetime, limit: int) -> list[DueRecording]:
        """Unheld stored recordings whose deadline falls before ``before``, oldest first."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(Recording.id, Recording.retention_deadline)
                .where(due_unheld(before, now))
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
                        .where(due_unheld(before, now))
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
        self,
        recording_id: uuid.UUID,
        *,
        actor: str,
        reason: str,
        note: str | None = None,
        authorisation: Mapping[str, Any] | None = None,
    ) -> bool:
        """Start deleting one stored recording now (early erasure); False if not stored.

        Raises RecordingHeld when a hold is in force: it must be released first, on the
        record, rather than overridden silently. ``authorisation`` (who allowed the
        erasure, under which rule) goes into the audit event.
        """
        async with self._database.transaction() as session:
            return await self.begin_one_in(
                session,
                recording_id,
                actor=actor,
                reason=reason,
                note=note,
                authorisation=authorisation,
            )

    async def begin_one_in(
        self,
        session: AsyncSession,
        recording_id: uuid.UUID,
        *,
        actor: str,
        reason: str,
        note: str | None = None,
        authorisation: Mapping[str, Any] | None = None,
    ) -> bool:
        """``begin_one`` inside the caller's transaction, so that what allowed the erasure
        (an approval) commits with the destroyed keys or not at all."""
        row = (
            await session.execute(
                select(Recording)
                .where(Recording.id == recording_id, Recording.state == RecordingState.STORED)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if row is None:
            return False
        kinds = await held_kinds(session, recording_id, self._clock())
        if kinds:
            raise RecordingHeld(kinds)
        extra = {"authorisation": dict(authorisation)} if authorisation else {}
        await self._shred(session, [row], actor=actor, reason=reason, note=note, extra=extra)
        return True

    async def finish(self, recording_id: uuid.UUID) -> None:
        """Finish one deletion; see ``finish_many``."""
        await self.finish_many([recording_id])

    async def finish_many(self, recording_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Remove the objects (every version), strip personal data, keep a tombstone.

        One batched store request and one transaction for the whole batch: a sweep of
        thousands is bounded by the store's throughput, not by round trips.

        Returns the recordings this call took from ``deleting`` to ``deleted``, and only
        those: when several sweeps finish the same deletions at once, the row lock lets
        one of them finish each recording, so each deletion is counted once, by the
        sweep that finished it, whoever began it.
        """
        if not recording_ids:
            return []
        ids = list(recording_ids)
        stored = await stored_objects_of(self._database, ids)
        if self._ledger is not None:
            # Outside the database before anything goes from the store, so a backup
            # restored later cannot bring this recording back (see docs/operations.md).
            async with self._database.read() as session:
                deleting = list(
                    (
                        await session.execute(
                            select(Recording.id).where(
                                Recording.id.in_(ids), Recording.state == RecordingState.DELETING
                            )
                        )
                    ).scalars()
                )
                reasons = await _deletion_reasons(session, deleting)
            await self._ledger.record(
                {rid: reasons.get(rid, "unknown") for rid in deleting}, self._clock()
            )
        shares = await shares_of(self._database, ids)
        unfinished = await renditions_in_flight(self._database, ids)
        await self._objects.delete_many([item.version for item in stored] + shares + unfinished)
        hashes: dict[uuid.UUID, list[str]] = {}
        for stored_object in stored:
            hashes.setdefault(stored_object.recording_id, []).append(stored_object.sha256)
        signer = await self._receipts()
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
                return []
            finished = [row.id for row in rows]
            await RecordingRepository(session).strip_personal_data(rows)
            await session.execute(
                delete(RecordingHold).where(RecordingHold.recording_id.in_(finished))
            )
            # A rendition never made is not made later: its job goes with the recording.
            await session.execute(
                delete(RenditionJob).where(RenditionJob.recording_id.in_(finished))
            )
            now = self._clock()
            reasons = await _deletion_reasons(session, finished)
            receipts = []
            for row in rows:
                row.state = RecordingState.DELETED
                row.deleted_at = now
                receipts.append(
                    deletion_receipt(
                        signer,
                        row,
                        deleted_at=now,
                        reason=reasons.get(row.id, "unknown"),
                        sha256=hashes.get(row.id, []),
                    )
                )
            await self._audit.append_many(session, receipts)
        if self._after_batch is not None:
            await self._after_batch()
        return finished

    async def reapply(self, reasons: Mapping[uuid.UUID, str]) -> list[uuid.UUID]:
        """Begin again, in one commit, deletions the deletion ledger records but a restored
        database lacks: their data keys destroyed and each marked ``deleting``, audited as
        ``recording.deletion_reapplied`` with the ledger's reason; ``finish_many`` does the rest.

        Holds are not consulted: the deletion happened, and its objects are gone. Returns
        the recordings this call began again: rows already ``deleting`` or ``deleted``
        are left alone, and the row lock lets one of several replicas starting at once
        take each recording, so a deletion is re-applied and audited once.
        """
        if not reasons:
            return []
        async with self._database.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(Recording)
                        .where(
                            Recording.id.in_(list(reasons)),
                            Recording.state.not_in(
                                [RecordingState.DELETING, RecordingState.DELETED]
                            ),
                        )
                        .order_by(Recording.id)
                        .options(*_ROW_ONLY)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            await self._shred(
                session,
                rows,
                actor=RETENTION_ACTOR,
                action=REAPPLIED_ACTION,
                reasons={row.id: reasons[row.id] for row in rows},
            )
            return [row.id for row in rows]

    async def not_deleted(self) -> set[uuid.UUID]:
        """Every recording the database does not show as deleted (at 90 days' volume, tens
        of thousands of ids): what a restored database is checked against the ledger with."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(Recording.id).where(Recording.state != RecordingState.DELETED)
            )
            return set(rows.scalars())

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
        self,
        session: AsyncSession,
        rows: Sequence[Recording],
        *,
        actor: str,
        reason: str = "",
        note: str | None = None,
        action: str = KEYS_DESTROYED_ACTION,
        reasons: Mapping[uuid.UUID, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Destroy the rows' data keys and mark them ``deleting``, audited as ``action``
        with ``reason`` (or each row's own, from ``reasons``)."""
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
                    action=action,
                    recording_id=row.id,
                    details={
                        "reason": reasons[row.id] if reasons is not None else reason,
                        "deadline": rfc3339(row.retention_deadline),
                    }
                    | ({"note": note} if note else {})
                    | dict(extra or {}),
                )
                for row in rows
            ],
        )


async def held_kinds(session: AsyncSession, recording_id: uuid.UUID, now: datetime) -> list[str]:
    """The kinds of hold in force on one recording at ``now``, sorted."""
    rows = await session.execute(
        select(RecordingHold.kind).where(
            RecordingHold.recording_id == recording_id, hold_in_force(now)
        )
    )
    return sorted(rows.scalars())


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
    """Why each deletion began, from the event that began it (retention or erasure; or
    the ledger's word, for a deletion re-applied to a restored database)."""
    rows = await session.execute(
        select(AuditEvent.recording_id, AuditEvent.details)
        .where(
            AuditEvent.action.in_([KEYS_DESTROYED_ACTION, REAPPLIED_ACTION]),
            AuditEvent.recording_id.in_(recording_ids),
        )
        .order_by(AuditEvent.seq)
    )
    return {
        recording_id: str((details or {}).get("reason", "unknown"))
        for recording_id, details in rows
        if recording_id is not None
    }
