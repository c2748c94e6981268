"""Erasure requests on record: opened, listed, approved (with the keys destroyed in the
same commit) or rejected, each change audited in its own transaction.

Who may approve whose request is the retention package's rule; this module keeps the
requests and makes each change atomic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.erasure_models import ErasureRequest, ErasureState
from storage.db.models import Recording, RecordingState
from storage.deletion import RecordingDeleter, held_kinds
from storage.errors import (
    ErasureAlreadyRequested,
    ErasureRequestDecided,
    ErasureRequestMissing,
    NotStored,
    RecordingHeld,
)

REQUESTED_ACTION = "recording.erasure_requested"
APPROVED_ACTION = "recording.erasure_approved"
REJECTED_ACTION = "recording.erasure_rejected"


@dataclass(frozen=True, slots=True)
class ErasureRequestView:
    """An erasure request as DPOs see it."""

    id: uuid.UUID
    recording_id: uuid.UUID
    state: str
    reason: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None


class ErasureRequests:
    """Opens and decides erasure requests; approving one begins the recording's deletion."""

    def __init__(
        self,
        *,
        database: Database,
        audit: AuditTrail,
        deleter: RecordingDeleter,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._audit = audit
        self._deleter = deleter
        self._clock = clock

    async def open(self, recording_id: uuid.UUID, *, reason: str, actor: str) -> ErasureRequestView:
        """Record a request to erase a stored, unheld recording; nothing is destroyed.

        Raises NotStored, RecordingHeld, or ErasureAlreadyRequested when one is pending.
        """
        now = self._clock()
        async with self._database.transaction() as session:
            # Locking the recording serialises requests for it, so two cannot both be pending.
            recording = (
                await session.execute(
                    select(Recording.id)
                    .where(Recording.id == recording_id, Recording.state == RecordingState.STORED)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if recording is None:
                raise NotStored(str(recording_id))
            kinds = await held_kinds(session, recording_id, now)
            if kinds:
                raise RecordingHeld(kinds)
            if await _pending_for(session, recording_id) is not None:
                raise ErasureAlreadyRequested(str(recording_id))
            row = ErasureRequest(
                id=uuid.uuid4(),
                recording_id=recording_id,
                state=ErasureState.PENDING,
                reason=reason,
                requested_by=actor,
                requested_at=now,
            )
            session.add(row)
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=REQUESTED_ACTION,
                    recording_id=recording_id,
                    details={"request_id": str(row.id), "reason": reason},
                ),
            )
            return _view(row)

    async def get(self, request_id: uuid.UUID) -> ErasureRequestView:
        """One request; ErasureRequestMissing if there is none."""
        async with self._database.read() as session:
            row = await session.get(ErasureRequest, request_id)
            if row is None:
                raise ErasureRequestMissing(str(request_id))
            return _view(row)

    async def pending(self, *, recording_id: uuid.UUID | None = None) -> list[ErasureRequestView]:
        """The requests awaiting a decision, oldest first (of one recording, if named)."""
        query = select(ErasureRequest).where(ErasureRequest.state == ErasureState.PENDING)
        if recording_id is not None:
            query = query.where(ErasureRequest.recording_id == recording_id)
        async with self._database.read() as session:
            rows = await session.execute(
                query.order_by(ErasureRequest.requested_at, ErasureRequest.id)
            )
            return [_view(row) for row in rows.scalars()]

    async def approve(
        self, request_id: uuid.UUID, *, actor: str, authorisation: Mapping[str, Any]
    ) -> ErasureRequestView:
        """Approve a pending request and destroy the recording's keys, in one commit.

        The approval is audited first, then the keys' destruction (with
        ``authorisation``). Raises ErasureRequestMissing, ErasureRequestDecided,
        RecordingHeld (the request stays pending) or NotStored (the recording went
        meanwhile; the request stays pending until rejected).
        """
        now = self._clock()
        async with self._database.transaction() as session:
            row = await _pending_for_update(session, request_id)
            row.state = ErasureState.APPROVED
            row.decided_by = actor
            row.decided_at = now
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=APPROVED_ACTION,
                    recording_id=row.recording_id,
                    details={
                        "request_id": str(row.id),
                        "requested_by": row.requested_by,
                        "approved_by": actor,
                        "reason": row.reason,
                    },
                ),
            )
            begun = await self._deleter.begin_one_in(
                session,
                row.recording_id,
                actor=actor,
                reason="erasure",
                note=row.reason,
                authorisation=authorisation,
            )
            if not begun:
                raise NotStored(str(row.recording_id))
            return _view(row)

    async def reject(self, request_id: uuid.UUID, *, actor: str, reason: str) -> ErasureRequestView:
        """Reject a pending request with a reason; the recording stays as it is."""
        now = self._clock()
        async with self._database.transaction() as session:
            row = await _pending_for_update(session, request_id)
            row.state = ErasureState.REJECTED
            row.decided_by = actor
            row.decided_at = now
            row.decision_reason = reason
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=REJECTED_ACTION,
                    recording_id=row.recording_id,
                    details={
                        "request_id": str(row.id),
                        "requested_by": row.requested_by,
                        "reason": reason,
                    },
                ),
            )
            return _view(row)

    async def finish(self, recording_id: uuid.UUID) -> None:
        """Finish an approved erasure's deletion (objects, share, personal data)."""
        await self._deleter.finish(recording_id)


async def _pending_for(session: AsyncSession, recording_id: uuid.UUID) -> ErasureRequest | None:
    rows = await session.execute(
        select(ErasureRequest).where(
            ErasureRequest.recording_id == recording_id,
            ErasureRequest.state == ErasureState.PENDING,
        )
    )
    return rows.scalars().first()


async def _pending_for_update(session: AsyncSession, request_id: uuid.UUID) -> ErasureRequest:
    row = (
        await session.execute(
            select(ErasureRequest).where(ErasureRequest.id == request_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise ErasureRequestMissing(str(request_id))
    if row.state != ErasureState.PENDING:
        raise ErasureRequestDecided(row.state)
    return row


def _view(row: ErasureRequest) -> ErasureRequestView:
    return ErasureRequestView(
        id=row.id,
        recording_id=row.recording_id,
        state=row.state,
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
    )
