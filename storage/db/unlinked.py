"""Recordings linked to no referral: listing and counting those awaiting triage, and
recording a supervisor's decision that one needs none.

Who may triage which team is retrieval's rule; after how long a recording is listed
(``CALLREC_UNLINKED_REVIEW_AFTER``) is a setting the callers pass. A recording awaits
triage at ``now`` while it is stored and readable (before its deadline, or held), started
at least ``review_after`` before ``now``, and has no referral link and no "no referral"
decision. Its age
counts from the call's start, as its retention deadline does, so the time left to triage
it is the same for every call listed, however late the platform delivered it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import Recording, RecordingNoReferral, RecordingReferral, RecordingState
from storage.errors import NotStored, TriageSettled
from storage.holds import held_at

NO_REFERRAL_ACTION = "recording.no_referral"
"""The audit action of a decision that a recording needs no referral."""


@dataclass(frozen=True, slots=True)
class UnlinkedQuery:
    """One page of recordings awaiting triage, oldest first.

    ``teams`` None means every team, empty means none; ``after`` is the (started_at, id)
    of the previous page's last recording.
    """

    teams: frozenset[str] | None
    now: datetime
    review_after: timedelta
    team: str | None = None
    after: tuple[datetime, uuid.UUID] | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class UnlinkedRecording:
    """What a supervisor needs to recognise a call to triage: never its numbers."""

    id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None
    team: str | None
    agent: str | None
    duration_s: float | None
    retention_deadline: datetime


@dataclass(frozen=True, slots=True)
class UnlinkedCount:
    """How many recordings await triage: in all, and per named team (a recording of no
    team is counted in ``total`` only: no supervisor sees it)."""

    total: int = 0
    by_team: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoReferralDecision:
    """Who decided that a recording needs no referral, when, and why."""

    recording_id: uuid.UUID
    reason: str
    decided_by: str
    decided_at: datetime


def awaiting_triage(now: datetime, review_after: timedelta) -> ColumnElement[bool]:
    """SQL: the recording awaits triage at ``now`` (see the module's docstring)."""
    return and_(
        Recording.state == RecordingState.STORED,
        Recording.started_at <= now - review_after,
        or_(Recording.retention_deadline > now, held_at(now)),
        ~exists().where(RecordingReferral.recording_id == Recording.id),
        ~exists().where(RecordingNoReferral.recording_id == Recording.id),
    )


class UnlinkedRecordings:
    """Reads the recordings awaiting triage and records "no referral" decisions, audited."""

    def __init__(
        self, database: Database, audit: AuditTrail, clock: Callable[[], datetime]
    ) -> None:
        self._database = database
        self._audit = audit
        self._clock = clock

    async def awaiting(self, query: UnlinkedQuery) -> list[UnlinkedRecording]:
        """The page ``query`` asks for, oldest first (the closest to its deadline on top).

        Keyset paging by (started_at, id): a recording triaged meanwhile leaves the list
        without moving anything already seen onto a later page.
        """
        if query.teams is not None and not query.teams:
            return []
        statement = select(
            Recording.id,
            Recording.started_at,
            Recording.ended_at,
            Recording.team,
            Recording.agent,
            Recording.duration_s,
            Recording.retention_deadline,
        ).where(awaiting_triage(query.now, query.review_after))
        if query.teams is not None:
            statement = statement.where(Recording.team.in_(sorted(query.teams)))
        if query.team is not None:
            statement = statement.where(Recording.team == query.team)
        if query.after is not None:
            started, last_id = query.after
            statement = statement.where(
                or_(
                    Recording.started_at > started,
                    and_(Recording.started_at == started, Recording.id > last_id),
                )
            )
        statement = statement.order_by(Recording.started_at, Recording.id).limit(query.limit)
        async with self._database.read() as session:
            rows = (await session.execute(statement)).all()
        return [UnlinkedRecording(*row) for row in rows]

    async def count(self, *, now: datetime, review_after: timedelta) -> UnlinkedCount:
        """How many await triage at ``now``, in all and per team."""
        statement = (
            select(Recording.team, func.count())
            .where(awaiting_triage(now, review_after))
            .group_by(Recording.team)
        )
        async with self._database.read() as session:
            rows = (await session.execute(statement)).all()
        by_team = {team: count for team, count in rows if team is not None}
        return UnlinkedCount(sum(count for _, count in rows), dict(sorted(by_team.items())))

    async def mark_no_referral(
        self, recording_id: uuid.UUID, *, reason: str, actor: str
    ) -> NoReferralDecision:
        """Record that the recording needs no referral, with its audit event, in one commit.

        Raises NotStored for a recording that is not stored, and TriageSettled when it is
        linked to a referral or already decided: a decision is made once, and the first
        one stands (the row lock makes a second supervisor at the same moment wait, then
        find it).
        """
        now = self._clock()
        async with self._database.transaction() as session:
            state = (
                await session.execute(
                    select(Recording.state).where(Recording.id == recording_id).with_for_update()
                )
            ).scalar_one_or_none()
            if state != RecordingState.STORED:
                raise NotStored(str(recording_id))
            linked = await session.scalar(
                select(func.count())
                .select_from(RecordingReferral)
                .where(RecordingReferral.recording_id == recording_id)
            )
            if linked:
                raise TriageSettled("linked")
            if await session.get(RecordingNoReferral, recording_id) is not None:
                raise TriageSettled("decided")
            session.add(
                RecordingNoReferral(
                    recording_id=recording_id, reason=reason, decided_by=actor, decided_at=now
                )
            )
            await session.flush()
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=NO_REFERRAL_ACTION,
                    recording_id=recording_id,
                    details={"reason": reason},
                ),
            )
        return NoReferralDecision(recording_id, reason, actor, now)
