"""SQL over a session it is given: recordings, their objects, keys and referrals.

No commits here: the caller owns the unit of work, so a recording, its keys and its
audit event land in one transaction or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Recording, RecordingReferral, RecordingState, Referral


class RecordingRepository:
    """Queries and writes for recordings, within the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, recording_id: uuid.UUID) -> Recording | None:
        """The recording with this id, in any state."""
        return await self._session.get(Recording, recording_id)

    async def find_by_source_id(self, source: str, source_recording_id: str) -> Recording | None:
        """The recording a source already delivered under its own id, in any state."""
        result = await self._session.execute(
            select(Recording).where(
                Recording.source == source,
                Recording.source_recording_id == source_recording_id,
            )
        )
        return result.scalar_one_or_none()

    async def add(self, recording: Recording) -> None:
        """Insert a recording with its objects; IntegrityError if the source id is taken."""
        self._session.add(recording)
        await self._session.flush()

    async def link_referrals(
        self, recording_id: uuid.UUID, references: Sequence[str], *, by: str, at: datetime
    ) -> None:
        """Link the recording to each referral, creating unknown referrals on the way."""
        for reference in dict.fromkeys(references):
            referral = await self._referral(reference)
            self._session.add(
                RecordingReferral(
                    recording_id=recording_id, referral_id=referral.id, linked_at=at, linked_by=by
                )
            )
        await self._session.flush()

    async def _referral(self, reference: str) -> Referral:
        found = await self._session.execute(select(Referral).where(Referral.reference == reference))
        referral = found.scalar_one_or_none()
        if referral is not None:
            return referral
        try:
            # A savepoint, so losing a race with a concurrent capture of the same referral
            # does not abort the whole capture.
            async with self._session.begin_nested():
                referral = Referral(reference=reference)
                self._session.add(referral)
        except IntegrityError:
            found = await self._session.execute(
                select(Referral).where(Referral.reference == reference)
            )
            referral = found.scalar_one()
        return referral

    async def remove(self, recording_id: uuid.UUID) -> None:
        """Delete a recording row with its objects, keys and links."""
        await self._session.execute(delete(Recording).where(Recording.id == recording_id))

    async def abandoned_pending(self, received_before: datetime) -> Sequence[Recording]:
        """Captures that claimed their id but never finished (the process died mid-way)."""
        result = await self._session.execute(
            select(Recording).where(
                Recording.state == RecordingState.PENDING,
                Recording.received_at < received_before,
            )
        )
        return result.scalars().all()
