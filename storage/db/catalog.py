"""Read-only views of recordings for people: one recording, or a page of a search.

Only ``stored`` and ``deleted`` recordings are visible here; captures in progress never
are. Who may see which recording is decided by the caller (retrieval's policy), which
passes the teams to restrict to.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.database import Database
from storage.db.job_models import RenditionJob, RenditionState
from storage.db.models import Recording, RecordingReferral, RecordingState, Referral
from storage.db.rendition_queue import rendition_status
from storage.holds import HoldView, held_at, unreleased_holds
from storage.recordings import PLAYBACK


class CopyState:
    """Where a recording's browser rendition stands, as people are told it."""

    READY = "ready"  # stored: playback serves it
    PREPARING = "preparing"  # queued or being made; the original serves meanwhile if it can
    FAILED = "failed"  # given up (an operator retries it); the original serves
    NONE = "none"  # stored before renditions were made: the original serves


@dataclass(frozen=True, slots=True)
class PlaybackCopy:
    """A recording's browser rendition: its state and, while preparing, a rough wait."""

    state: str = CopyState.NONE
    ready_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class RecordingView:
    """What a person may be shown about a recording (never keys or object locations)."""

    id: uuid.UUID
    source: str
    source_recording_id: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    direction: str | None
    from_number: str | None
    to_number: str | None
    agent: str | None
    team: str | None
    referrals: tuple[str, ...]
    container: str | None
    codec: str | None
    sample_rate: int | None
    channels: int | None
    duration_s: float | None
    declared_duration_s: float | None
    audio_problems: tuple[tuple[str, str], ...]
    retention_deadline: datetime
    deleted_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)
    # Unreleased holds; those whose review date has passed no longer protect anything.
    holds: tuple[HoldView, ...] = ()
    playback: PlaybackCopy = PlaybackCopy()


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters of a search; ``teams`` None means every team, empty means none."""

    teams: frozenset[str] | None
    referral: str | None = None
    team: str | None = None
    agent: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    # Keyset position: the (started_at, id) of the last recording of the previous page.
    after: tuple[datetime, uuid.UUID] | None = None
    limit: int = 50
    # Leave out recordings past their deadline at this moment unless a hold is in force.
    readable_at: datetime | None = None
    # A data subject's calls: E.164 numbers matched exactly against the caller's or the
    # called number, and referrals, any of which matches (with the filters above).
    numbers: tuple[str, ...] = ()
    referrals: tuple[str, ...] = ()


class RecordingCatalog:
    """Lookups of recordings for the API; newest first, keyset-paged."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, recording_id: uuid.UUID) -> RecordingView | None:
        """The recording, stored or deleted; None if it does not exist or is not settled."""
        async with self._database.read() as session:
            row = await session.get(Recording, recording_id)
            if row is None or row.state == RecordingState.PENDING:
                return None
            holds = await unreleased_holds(session, [row.id])
            # A stored rendition settles it; only one not made yet asks about its job (the
            # playback path re-reads this view every few seconds while a player is on).
            copy = _copy_of(row, "")
            if copy.state != CopyState.READY:
                jobs = await _job_states(session, [row.id])
                copy = _copy_of(row, jobs.get(row.id, ""))
            if copy.state == CopyState.PREPARING:
                status = await rendition_status(session, row.id, datetime.now(UTC))
                copy = PlaybackCopy(copy.state, status.ready_in_s if status else None)
            return _view(row, holds.get(row.id, []), copy)

    async def search(self, query: SearchQuery) -> list[RecordingView]:
        """Stored recordings matching ``query``, newest first, at most ``query.limit``.

        Paging by (started_at, id) rather than by offset keeps pages stable while new
        recordings arrive: nothing already seen moves to a later page.
        """
        if query.teams is not None and not query.teams:
            return []
        statement = _search_statement(query)
        async with self._database.read() as session:
            rows = (await session.execute(statement)).scalars().all()
            ids = [row.id for row in rows]
            holds = await unreleased_holds(session, ids)
            jobs = await _job_states(session, ids)
            return [
                _view(row, holds.get(row.id, []), _copy_of(row, jobs.get(row.id, "")))
                for row in rows
            ]


def _search_statement(query: SearchQuery) -> Select[Recording]:
    statement = select(Recording).where(Recording.state == RecordingState.STORED)
    if query.readable_at is not None:
        statement = statement.where(
            or_(Recording.retention_deadline > query.readable_at, held_at(query.readable_at))
        )
    if query.teams is not None:
        statement = statement.where(Recording.team.in_(sorted(query.teams)))
    if query.team is not None:
        statement = statement.where(Recording.team == query.team)
    if query.agent is not None:
        statement = statement.where(Recording.agent == query.agent)
    if query.started_after is not None:
        statement = statement.where(Recording.started_at >= query.started_after)
    if query.started_before is not None:
        statement = statement.where(Recording.started_at < query.started_before)
    if query.referral is not None:
        statement = statement.where(
            Recording.id.in_(
                select(RecordingReferral.recording_id)
                .join(Referral, Referral.id == RecordingReferral.referral_id)
                .where(Referral.reference == query.referral)
            )
        )
    if query.numbers or query.referrals:
        statement = statement.where(or_(*_subject_matches(query)))
    if query.after is not None:
        started, last_id = query.after
        statement = statement.where(
            or_(
                Recording.started_at < started,
                and_(Recording.started_at == started, Recording.id < last_id),
            )
        )
    return statement.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(query.limit)


def _subject_matches(query: SearchQuery) -> list[ColumnElement[bool]]:
    matches: list[ColumnElement[bool]] = []
    if query.numbers:
        numbers = sorted(set(query.numbers))
        matches += [Recording.from_number.in_(numbers), Recording.to_number.in_(numbers)]
    if query.referrals:
        matches.append(
            Recording.id.in_(
                select(RecordingReferral.recording_id)
                .join(Referral, Referral.id == RecordingReferral.referral_id)
                .where(Referral.reference.in_(sorted(set(query.referrals))))
            )
        )
    return matches


async def _job_states(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(RenditionJob.recording_id, RenditionJob.state).where(
            RenditionJob.recording_id.in_(ids)
        )
    )
    return {recording_id: state for recording_id, state in rows}


def _copy_of(row: Recording, job_state: str) -> PlaybackCopy:
    """The rendition's state from the recording's objects and its job's state ("": none)."""
    if any(stored.kind == PLAYBACK for stored in row.objects):
        return PlaybackCopy(CopyState.READY)
    if job_state in (RenditionState.QUEUED, RenditionState.RUNNING):
        return PlaybackCopy(CopyState.PREPARING)
    if job_state == RenditionState.DEAD:
        return PlaybackCopy(CopyState.FAILED)
    return PlaybackCopy(CopyState.NONE)


def _view(row: Recording, holds: Sequence[HoldView], copy: PlaybackCopy) -> RecordingView:
    references: Sequence[str] = [referral.reference for referral in row.referrals]
    return RecordingView(
        id=row.id,
        source=row.source,
        source_recording_id=row.source_recording_id,
        state=row.state,
        started_at=row.started_at,
        ended_at=row.ended_at,
        direction=row.direction,
        from_number=row.from_number,
        to_number=row.to_number,
        agent=row.agent,
        team=row.team,
        referrals=tuple(references),
        container=row.container,
        codec=row.codec,
        sample_rate=row.sample_rate,
        channels=row.channels,
        duration_s=row.duration_s,
        declared_duration_s=row.declared_duration_s,
        audio_problems=tuple(
            (str(problem.get("code")), str(problem.get("detail")))
            for problem in row.audio_problems or ()
        ),
        retention_deadline=row.retention_deadline,
        deleted_at=row.deleted_at,
        extra=dict(row.extra or {}),
        holds=tuple(holds),
        playback=copy,
    )
