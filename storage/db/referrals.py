"""Linking recordings to safeguarding referrals, each change audited in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import RecordingReferral, Referral
from storage.db.repository import RecordingRepository


class ReferralLinks:
    """Adds and removes referral links; a change and its audit event commit together."""

    def __init__(self, database: Database, audit: AuditTrail, clock: Callable[[], datetime]):
        self._database = database
        self._audit = audit
        self._clock = clock

    async def link(self, recording_id: uuid.UUID, reference: str, *, actor: str) -> bool:
        """Link the referral; False if it was already linked (nothing changes then)."""
        async with self._database.transaction() as session:
            if await self._linked(session, recording_id, reference):
                return False
            await RecordingRepository(session).link_referrals(
                recording_id, [reference], by=actor, at=self._clock()
            )
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="referral.link",
                    recording_id=recording_id,
                    details={"referral": reference},
                ),
            )
        return True

    async def unlink(self, recording_id: uuid.UUID, reference: str, *, actor: str) -> bool:
        """Remove the link; False if there was none."""
        async with self._database.transaction() as session:
            referral_id = await self._linked(session, recording_id, reference)
            if referral_id is None:
                return False
            await session.execute(
                delete(RecordingReferral).where(
                    RecordingReferral.recording_id == recording_id,
                    RecordingReferral.referral_id == referral_id,
                )
            )
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="referral.unlink",
                    recording_id=recording_id,
                    details={"referral": reference},
                ),
            )
        return True

    @staticmethod
    async def _linked(session: AsyncSession, recording_id: uuid.UUID, reference: str) -> int | None:
        found = await session.execute(
            select(Referral.id)
            .join(RecordingReferral, RecordingReferral.referral_id == Referral.id)
            .where(RecordingReferral.recording_id == recording_id, Referral.reference == reference)
        )
        return found.scalar_one_or_none()
