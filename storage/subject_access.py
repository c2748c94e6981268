"""Subject access cases on record: opened with the recordings found, listed nearest deadline
first, extended, given each recording's redaction, and closed; every change audited.

The statutory clock and which recordings a case may cover are the retention package's
rules (retention/subject_access.py); holds are placed and released there too, through
``RecordingHolds``. This module keeps the cases and makes each change atomic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import Recording, RecordingHold, RecordingState
from storage.db.sar_models import CaseState, SubjectAccessCase, SubjectAccessItem
from storage.errors import CaseClosed, CaseExists, CaseMissing, NotInCase
from storage.holds import hold_in_force
from storage.vocabulary import SUBJECT_ACCESS_HOLD

OPENED_ACTION = "subject_access.opened"
EXTENDED_ACTION = "subject_access.extended"
REDACTION_ACTION = "subject_access.redaction_chosen"
CLOSED_ACTION = "subject_access.closed"
EXPORTED_ACTION = "subject_access.exported"


@dataclass(frozen=True, slots=True)
class CaseRecording:
    """A recording a case covers, as the DPO sees it in the case."""

    recording_id: uuid.UUID
    state: str  # the recording's: stored, deleting, deleted
    started_at: datetime | None
    duration_s: float | None
    channels: int | None
    team: str | None
    held: bool  # a subject access hold is in force on it now
    redaction: Mapping[str, Any] | None
    redaction_by: str | None


@dataclass(frozen=True, slots=True)
class CaseView:
    """A subject access case; ``recordings`` is empty in listings."""

    id: uuid.UUID
    reference: str
    received: date
    deadline: date
    reason: str
    state: str
    criteria: Mapping[str, Any]
    opened_by: str
    opened_at: datetime
    extended_by: str | None
    extended_at: datetime | None
    extension_reason: str | None
    closed_by: str | None
    closed_at: datetime | None
    close_reason: str | None
    exports: int
    recording_count: int
    recordings: tuple[CaseRecording, ...] = ()


class SubjectAccessCases:
    """Keeps the cases; each change is one audited transaction."""

    def __init__(
        self, *, database: Database, audit: AuditTrail, clock: Callable[[], datetime]
    ) -> None:
        self._database = database
        self._audit = audit
        self._clock = clock

    async def open(
        self,
        *,
        reference: str,
        received: date,
        deadline: date,
        reason: str,
        criteria: Mapping[str, Any],
        recording_ids: Sequence[uuid.UUID],
        actor: str,
    ) -> CaseView:
        """Record a new case covering ``recording_ids``; CaseExists for a reference in use."""
        now = self._clock()
        row = SubjectAccessCase(
            id=uuid.uuid4(),
            reference=reference,
            received=received,
            deadline=deadline,
            reason=reason,
            state=CaseState.OPEN,
            criteria=dict(criteria),
            opened_by=actor,
            opened_at=now,
            exports=0,
        )
        try:
            async with self._database.transaction() as session:
                taken = await session.scalar(
                    select(SubjectAccessCase.id).where(SubjectAccessCase.reference == reference)
                )
                if taken is not None:
                    raise CaseExists(reference)
                session.add(row)
                await session.flush()
                for recording_id in dict.fromkeys(recording_ids):
                    session.add(
                        SubjectAccessItem(case_id=row.id, recording_id=recording_id, added_at=now)
                    )
                await self._audit.append(
                    session,
                    AuditRecord(
                        actor=actor,
                        action=OPENED_ACTION,
                        details={
                            "case_id": str(row.id),
                            "reference": reference,
                            "received": received.isoformat(),
                            "deadline": deadline.isoformat(),
                            "reason": reason,
                            # What found the recordings, never the numbers themselves.
                            "phone_numbers": len(criteria.get("phone_numbers", ())),
                            "referrals": list(criteria.get("referrals", ())),
                            "recordings": [str(item) for item in dict.fromkeys(recording_ids)],
                        },
                    ),
                )
        except IntegrityError:  # a concurrent open with the same reference won the race
            raise CaseExists(reference) from None
        return await self.get(row.id)

    async def get(self, case_id: uuid.UUID) -> CaseView:
        """The case with its recordings; CaseMissing if there is none."""
        now = self._clock()
        async with self._database.read() as session:
            row = await session.get(SubjectAccessCase, case_id)
            if row is None:
                raise CaseMissing(str(case_id))
            items = await _items(session, case_id, now)
            return _view(row, len(items), tuple(items))

    async def listed(self, *, state: str | None = CaseState.OPEN) -> list[CaseView]:
        """Cases (open ones by default), nearest deadline first, then oldest received."""
        async with self._database.read() as session:
            statement = select(SubjectAccessCase)
            if state is not None:
                statement = statement.where(SubjectAccessCase.state == state)
            rows = (
                (
                    await session.execute(
                        statement.order_by(
                            SubjectAccessCase.deadline,
                            SubjectAccessCase.received,
                            SubjectAccessCase.reference,
                        )
                    )
                )
                .scalars()
                .all()
            )
            counts = dict(
                (
                    await session.execute(
                        select(SubjectAccessItem.case_id, func.count())
                        .where(SubjectAccessItem.case_id.in_([row.id for row in rows]))
                        .group_by(SubjectAccessItem.case_id)
                    )
                ).all()
            )
            return [_view(row, counts.get(row.id, 0)) for row in rows]

    async def extend(
        self, case_id: uuid.UUID, *, deadline: date, reason: str, actor: str
    ) -> CaseView:
        """Move an open case's deadline to ``deadline`` with a recorded reason."""
        async with self._database.transaction() as session:
            row = await _open_for_update(session, case_id)
            previous = row.deadline
            row.deadline = deadline
            row.extended_by = actor
            row.extended_at = self._clock()
            row.extension_reason = reason
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=EXTENDED_ACTION,
                    details={
                        "case_id": str(case_id),
                        "reference": row.reference,
                        "from": previous.isoformat(),
                        "to": deadline.isoformat(),
                        "reason": reason,
                    },
                ),
            )
        return await self.get(case_id)

    async def choose_redaction(
        self,
        case_id: uuid.UUID,
        recording_id: uuid.UUID,
        *,
        redaction: Mapping[str, Any],
        actor: str,
    ) -> CaseView:
        """Record what the requester gets of one recording of an open case."""
        async with self._database.transaction() as session:
            row = await _open_for_update(session, case_id)
            item = await session.get(SubjectAccessItem, (case_id, recording_id))
            if item is None:
                raise NotInCase(str(recording_id))
            item.redaction = dict(redaction)
            item.redaction_by = actor
            item.redaction_at = self._clock()
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=REDACTION_ACTION,
                    recording_id=recording_id,
                    details={
                        "case_id": str(case_id),
                        "reference": row.reference,
                        "redaction": dict(redaction),
                    },
                ),
            )
        return await self.get(case_id)

    async def close(self, case_id: uuid.UUID, *, reason: str, actor: str) -> CaseView:
        """Close an open case: its numbers are forgotten; the caller releases its holds."""
        async with self._database.transaction() as session:
            row = await _open_for_update(session, case_id)
            row.state = CaseState.CLOSED
            row.closed_by = actor
            row.closed_at = self._clock()
            row.close_reason = reason
            criteria = dict(row.criteria)
            criteria["phone_numbers"] = len(criteria.get("phone_numbers", ()))
            row.criteria = criteria
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=CLOSED_ACTION,
                    details={"case_id": str(case_id), "reference": row.reference, "reason": reason},
                ),
            )
        return await self.get(case_id)

    async def record_export(
        self, case_id: uuid.UUID, *, actor: str, details: Mapping[str, Any]
    ) -> None:
        """Audit one export of an open case (who, what, the hashes)."""
        async with self._database.transaction() as session:
            row = await _open_for_update(session, case_id)
            row.exports += 1
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=EXPORTED_ACTION,
                    details={"case_id": str(case_id), "reference": row.reference, **details},
                ),
            )


async def _open_for_update(session: AsyncSession, case_id: uuid.UUID) -> SubjectAccessCase:
    row = (
        await session.execute(
            select(SubjectAccessCase).where(SubjectAccessCase.id == case_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise CaseMissing(str(case_id))
    if row.state != CaseState.OPEN:
        raise CaseClosed(str(case_id))
    return row


async def _items(session: AsyncSession, case_id: uuid.UUID, now: datetime) -> list[CaseRecording]:
    held = select(RecordingHold.recording_id).where(
        RecordingHold.kind == SUBJECT_ACCESS_HOLD, hold_in_force(now)
    )
    rows = await session.execute(
        select(SubjectAccessItem, Recording, SubjectAccessItem.recording_id.in_(held))
        .outerjoin(Recording, Recording.id == SubjectAccessItem.recording_id)
        .where(SubjectAccessItem.case_id == case_id)
        .order_by(Recording.started_at, SubjectAccessItem.recording_id)
    )
    found = []
    for item, recording, is_held in rows.all():
        found.append(
            CaseRecording(
                recording_id=item.recording_id,
                state=recording.state if recording is not None else RecordingState.DELETED,
                started_at=recording.started_at if recording is not None else None,
                duration_s=recording.duration_s if recording is not None else None,
                channels=recording.channels if recording is not None else None,
                team=recording.team if recording is not None else None,
                held=bool(is_held),
                redaction=item.redaction,
                redaction_by=item.redaction_by,
            )
        )
    return found


def _view(
    row: SubjectAccessCase, count: int, recordings: tuple[CaseRecording, ...] = ()
) -> CaseView:
    return CaseView(
        id=row.id,
        reference=row.reference,
        received=row.received,
        deadline=row.deadline,
        reason=row.reason,
        state=row.state,
        criteria=dict(row.criteria),
        opened_by=row.opened_by,
        opened_at=row.opened_at,
        extended_by=row.extended_by,
        extended_at=row.extended_at,
        extension_reason=row.extension_reason,
        closed_by=row.closed_by,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
        exports=row.exports,
        recording_count=count,
        recordings=recordings,
    )
