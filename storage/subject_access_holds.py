"""Which recordings the open subject access cases cover, and how their holds stand.

The retention cycle asks these before every sweep (retention/subject_access.py keeps the
holds in step with them); kept apart from the cases' own changes in subject_access.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime

from sqlalchemy import func, select

from storage.db.database import Database
from storage.db.models import Recording, RecordingHold, RecordingState
from storage.db.sar_models import CaseState, SubjectAccessCase, SubjectAccessItem
from storage.holds import hold_in_force
from storage.vocabulary import SUBJECT_ACCESS_HOLD


class CaseCoverage:
    """Reads what open cases cover against the subject access holds in force."""

    def __init__(self, *, database: Database, clock: Callable[[], datetime]) -> None:
        self._database = database
        self._clock = clock

    async def unheld(self) -> list[tuple[uuid.UUID, date]]:
        """(recording, latest open deadline) of stored recordings in open cases with no
        subject access hold in force: what the holds must cover and do not (yet)."""
        now = self._clock()
        async with self._database.read() as session:
            covered = select(RecordingHold.recording_id).where(
                RecordingHold.kind == SUBJECT_ACCESS_HOLD, hold_in_force(now)
            )
            rows = await session.execute(
                select(SubjectAccessItem.recording_id, func.max(SubjectAccessCase.deadline))
                .join(SubjectAccessCase, SubjectAccessCase.id == SubjectAccessItem.case_id)
                .join(Recording, Recording.id == SubjectAccessItem.recording_id)
                .where(
                    SubjectAccessCase.state == CaseState.OPEN,
                    Recording.state == RecordingState.STORED,
                    SubjectAccessItem.recording_id.not_in(covered),
                )
                .group_by(SubjectAccessItem.recording_id)
            )
            return [(recording_id, deadline) for recording_id, deadline in rows.all()]

    async def holding(self) -> list[tuple[uuid.UUID, date, datetime]]:
        """(recording, latest open deadline, hold's review date) for every subject access
        hold in force on a recording of an open case: the holds to keep ahead."""
        now = self._clock()
        async with self._database.read() as session:
            rows = await session.execute(
                select(
                    RecordingHold.recording_id,
                    func.max(SubjectAccessCase.deadline),
                    func.min(RecordingHold.review_by),
                )
                .join(
                    SubjectAccessItem, SubjectAccessItem.recording_id == RecordingHold.recording_id
                )
                .join(SubjectAccessCase, SubjectAccessCase.id == SubjectAccessItem.case_id)
                .where(
                    RecordingHold.kind == SUBJECT_ACCESS_HOLD,
                    hold_in_force(now),
                    SubjectAccessCase.state == CaseState.OPEN,
                )
                .group_by(RecordingHold.recording_id)
            )
            return [(recording_id, deadline, review) for recording_id, deadline, review in rows]

    async def still_needed(self, recording_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``recording_ids`` that another open case still covers."""
        if not recording_ids:
            return set()
        async with self._database.read() as session:
            rows = await session.execute(
                select(SubjectAccessItem.recording_id)
                .join(SubjectAccessCase, SubjectAccessCase.id == SubjectAccessItem.case_id)
                .where(
                    SubjectAccessCase.state == CaseState.OPEN,
                    SubjectAccessItem.recording_id.in_(list(recording_ids)),
                )
            )
            return set(rows.scalars())
