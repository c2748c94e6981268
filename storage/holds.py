"""Holds: the only way a recording outlives its retention deadline, each typed and justified.

A hold is in force from its placing until it is released or its review date passes,
whichever comes first; a lapsed hold protects nothing, so forgetting to review one
cannot keep a recording forever. Placing a hold re-tags the recording's objects first,
so the store's lifecycle backstop passes them by before the hold is even on record.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import Recording, RecordingHold, RecordingState, StoredObject
from storage.errors import NotStored, Unavailable
from storage.keys.key_shares import share_key_for
from storage.objects.store import HELD_TAGS, UNHELD_TAGS, ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HoldView:
    """A hold as people see it."""

    kind: str
    reason: str
    review_by: datetime
    placed_by: str
    placed_at: datetime


def hold_in_force(now: datetime) -> ColumnElement[bool]:
    """SQL: this hold row is in force at ``now``: not released, review date not passed."""
    return and_(RecordingHold.released_at.is_(None), RecordingHold.review_by > now)


def held_at(now: datetime) -> ColumnElement[bool]:
    """SQL: the recording has a hold in force at ``now`` (for use in a WHERE on Recording)."""
    return exists().where(RecordingHold.recording_id == Recording.id, hold_in_force(now))


def in_force(holds: Iterable[HoldView], now: datetime) -> list[HoldView]:
    """The holds still in force at ``now``."""
    return [hold for hold in holds if hold.review_by > now]


class RecordingHolds:
    """Places, renews and releases holds; every change is audited in its own transaction."""

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

    async def place(
        self, recording_id: uuid.UUID, *, kind: str, reason: str, review_by: datetime, actor: str
    ) -> tuple[HoldView, bool]:
        """Place a hold of ``kind``, or renew the one in force; True when newly placed.

        Raises NotStored for a recording that is not stored (a deletion has begun).
        """
        await self._tag(recording_id, HELD_TAGS)
        now = self._clock()
        async with self._database.transaction() as session:
            recording = await self._stored_for_update(session, recording_id)
            if recording is None:
                raise NotStored(str(recording_id))
            current = await self._unreleased(session, recording_id, kind)
            renewed = current is not None and current.review_by > now
            if current is not None and not renewed:
                # A lapsed hold stays on record as lapsed; the new one is a fresh placing.
                current.released_at = current.review_by
                current.released_by = "review date passed"
                current = None
            if current is None:
                current = RecordingHold(
                    id=uuid.uuid4(), recording_id=recording_id, kind=kind, placed_at=now
                )
                session.add(current)
            current.reason = reason
            current.review_by = review_by
            current.placed_by = actor
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="hold.renewed" if renewed else "hold.placed",
                    recording_id=recording_id,
                    details={
                        "kind": kind,
                        "reason": reason,
                        "review_by": review_by.isoformat(),
                        "deadline": recording.retention_deadline.isoformat(),
                    },
                ),
            )
            view = _view(current)
        return view, not renewed

    async def release(
        self, recording_id: uuid.UUID, *, kind: str | None, reason: str, actor: str
    ) -> list[str]:
        """Release the holds in force (of ``kind``, or all); the kinds released, maybe none."""
        now = self._clock()
        async with self._database.transaction() as session:
            statement = select(RecordingHold).where(
                RecordingHold.recording_id == recording_id, hold_in_force(now)
            )
            if kind is not None:
                statement = statement.where(RecordingHold.kind == kind)
            holds = (await session.execute(statement.with_for_update())).scalars().all()
            for hold in holds:
                hold.released_at = now
                hold.released_by = actor
                await self._audit.append(
                    session,
                    AuditRecord(
                        actor=actor,
                        action="hold.released",
                        recording_id=recording_id,
                        details={"kind": hold.kind, "reason": reason},
                    ),
                )
            remaining = (
                await session.execute(
                    select(func.count()).where(
                        RecordingHold.recording_id == recording_id, hold_in_force(now)
                    )
                )
            ).scalar_one()
        if holds and not remaining:
            # Best effort: a stale "held" tag only means the backstop waits for the sweep.
            try:
                await self._tag(recording_id, UNHELD_TAGS)
            except Unavailable:
                log.warning("could not re-tag a released recording's objects", exc_info=True)
        return sorted(hold.kind for hold in holds)

    async def _tag(self, recording_id: uuid.UUID, tags: dict[str, str]) -> None:
        async with self._database.read() as session:
            keys = (
                await session.execute(
                    select(StoredObject.object_key).where(StoredObject.recording_id == recording_id)
                )
            ).scalars()
            names = list(keys)
            # The key share is tagged as its audio is, so a store's lifecycle rule never
            # takes the share of a held recording (which would leave it unplayable).
            digest = await session.scalar(
                select(Recording.key_share_digest).where(Recording.id == recording_id)
            )
            if digest is not None:
                names.append(share_key_for(recording_id))
        for key in names:
            await self._objects.set_tags(key, tags)

    @staticmethod
    async def _stored_for_update(
        session: AsyncSession, recording_id: uuid.UUID
    ) -> Recording | None:
        return (
            await session.execute(
                select(Recording)
                .where(Recording.id == recording_id, Recording.state == RecordingState.STORED)
                .with_for_update()
            )
        ).scalar_one_or_none()

    @staticmethod
    async def _unreleased(
        session: AsyncSession, recording_id: uuid.UUID, kind: str
    ) -> RecordingHold | None:
        return (
            await session.execute(
                select(RecordingHold)
                .where(
                    and_(
                        RecordingHold.recording_id == recording_id,
                        RecordingHold.kind == kind,
                        RecordingHold.released_at.is_(None),
                    )
                )
                .with_for_update()
            )
        ).scalar_one_or_none()


async def unreleased_holds(
    session: AsyncSession, recording_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[HoldView]]:
    """Unreleased holds of each recording; callers keep those in force at their ``now``."""
    if not recording_ids:
        return {}
    rows = (
        await session.execute(
            select(RecordingHold)
            .where(
                RecordingHold.recording_id.in_(recording_ids),
                RecordingHold.released_at.is_(None),
            )
            .order_by(RecordingHold.placed_at)
        )
    ).scalars()
    found: dict[uuid.UUID, list[HoldView]] = {}
    for row in rows:
        found.setdefault(row.recording_id, []).append(_view(row))
    return found


def _view(row: RecordingHold) -> HoldView:
    return HoldView(
        kind=row.kind,
        reason=row.reason,
        review_by=row.review_by,
        placed_by=row.placed_by,
        placed_at=row.placed_at,
    )
