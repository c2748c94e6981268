"""SQL over a session it is given: recordings, their objects, keys and referrals.

No commits here: the caller owns the unit of work, so a recording, its keys and its
audit event land in one transaction or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.models import (
    PERSONAL_ROWS,
    Recording,
    RecordingReferral,
    RecordingState,
    Referral,
    StoredObject,
    personal_columns,
)


class RecordingRepository:
    """Queries and writes for recordings, within the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, recording_id: uuid.UUID) -> Recording | None:
        """The recording with this id, in any state."""
        return await self._session.get(Recording, recording_id)

    async def get_for_update(self, recording_id: uuid.UUID) -> Recording | None:
        """The recording, locked until the transaction ends (PostgreSQL; SQLite's write
        transactions are exclusive anyway)."""
        result = await self._session.execute(
            select(Recording).where(Recording.id == recording_id).with_for_update()
        )
        return result.scalar_one_or_none()

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
        """Link the recording to each referral, creating unknown referrals on the way.

        References are handled in sorted order and created with "on conflict do
        nothing", so concurrent captures naming the same new referrals neither fail on
        the unique reference nor deadlock on each other's row locks.
        """
        wanted = sorted(set(references))
        if not wanted:
            return
        insert = dialect_insert(self._session)
        for reference in wanted:
            await self._session.execute(
                insert(Referral).values(reference=reference).on_conflict_do_nothing()
            )
        found = await self._session.execute(
            select(Referral.id).where(Referral.reference.in_(wanted)).order_by(Referral.id)
        )
        for referral_id in found.scalars():
            self._session.add(
                RecordingReferral(
                    recording_id=recording_id, referral_id=referral_id, linked_at=at, linked_by=by
                )
            )
        await self._session.flush()

    async def remove_pending(
        self, recording_id: uuid.UUID, *, received_before: datetime | None = None
    ) -> list[str]:
        """Delete a capture that never finished; return its object keys (empty if kept).

        Only a ``pending`` row (received before ``received_before``, if given) is
        deleted, so a capture that completed meanwhile is left alone with its objects.
        """
        conditions = [Recording.id == recording_id, Recording.state == RecordingState.PENDING]
        if received_before is not None:
            conditions.append(Recording.received_at < received_before)
        keys = (
            (
                await self._session.execute(
                    select(StoredObject.object_key)
                    .join(Recording, Recording.id == StoredObject.recording_id)
                    .where(*conditions)
                )
            )
            .scalars()
            .all()
        )
        result = await self._session.execute(delete(Recording).where(*conditions))
        return list(keys) if getattr(result, "rowcount", 0) else []

    async def abandoned_pending(
        self, received_before: datetime, *, due_before: datetime | None = None
    ) -> Sequence[uuid.UUID]:
        """Captures that will never finish: see ``abandoned``."""
        result = await self._session.execute(
            select(Recording.id)
            .where(abandoned(received_before, due_before))
            .order_by(Recording.received_at, Recording.id)
        )
        return result.scalars().all()

    async def lock_abandoned(
        self,
        recording_id: uuid.UUID,
        *,
        received_before: datetime,
        due_before: datetime | None = None,
    ) -> Recording | None:
        """The capture, locked, if it is still abandoned: one that committed meanwhile is not."""
        result = await self._session.execute(
            select(Recording)
            .where(Recording.id == recording_id, abandoned(received_before, due_before))
            .with_for_update()
        )
        return result.scalar_one_or_none()

    async def strip_personal_data(self, rows: Sequence[Recording]) -> None:
        """Empty the personal columns of ``rows`` and delete their personal linked rows.

        What a deletion strips (``PERSONAL_FIELDS`` and ``PERSONAL_ROWS``), and what an
        abandoned capture loses at once even when its objects cannot be removed yet.
        """
        ids = [row.id for row in rows]
        for personal in PERSONAL_ROWS:
            await self._session.execute(delete(personal).where(personal.recording_id.in_(ids)))
        fields = personal_columns()
        for row in rows:
            for name in fields:
                setattr(row, name, None)


def abandoned(received_before: datetime, due_before: datetime | None) -> ColumnElement[bool]:
    """A ``pending`` capture that will never finish: claimed before ``received_before`` (its
    process died, or its store failed), or, whatever its age, due for deletion before
    ``due_before``, so that no pending row outlives its recording's deadline."""
    too_old = Recording.received_at < received_before
    return and_(
        Recording.state == RecordingState.PENDING,
        too_old if due_before is None else or_(too_old, Recording.retention_deadline < due_before),
    )


def dialect_insert(session: AsyncSession) -> Any:
    # Both dialects spell "insert ... on conflict do nothing" the same way in SQLAlchemy,
    # but each needs its own construct.
    if session.get_bind().dialect.name == "postgresql":
        return postgresql_insert
    return sqlite_insert
