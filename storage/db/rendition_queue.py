"""The durable queue of playback renditions: a recording is acknowledged once its original
is stored, and its browser rendition is made afterwards, by any replica's workers.

A job is committed with its recording (``RecordingStore``), so an acknowledged recording
always gets its rendition in the end, across crashes and restarts. Workers claim jobs
with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's writers are serial),
renew it while they work, and a job whose worker died is claimed again once its lease
has run out. Each claim's attempt number fences it, as in the fetch queue: only the
latest claim may store the rendition, retry the job or bury it.

Each claim names the object it will write (``object_id``). The next claim, and the
recording's deletion, delete that key, so a worker that died after uploading, or that
was overtaken by the retention sweep, leaves no object behind.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.dead_letters import ERROR_LENGTH
from storage.db.job_models import RenditionJob, RenditionState
from storage.db.models import Recording, RecordingState

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
FIRST_DELAY = timedelta(seconds=30)
LONGEST_DELAY = timedelta(minutes=30)
ASSUMED_SPEED = 100.0
"""Audio seconds one worker renders per second when the queue has no figure of its own
(an hour of mono takes about 15 s, of two channels about 30 s): what a wait is estimated
from."""


@dataclass(frozen=True, slots=True)
class ClaimedRendition:
    """A job a worker holds until its lease runs out."""

    recording_id: uuid.UUID
    attempt: int
    object_id: uuid.UUID
    """The object this claim writes the rendition to."""
    abandoned_object_id: uuid.UUID | None
    """What the previous claim was writing, if it never finished: to be deleted."""
    audio_seconds: float
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class RenditionBacklog:
    """The queue as the metrics and operators see it."""

    counts: dict[str, int]
    waiting_audio_s: float
    """Audio seconds queued or being rendered."""
    oldest_wait_s: float
    """How long the oldest unfinished job has waited since its recording was stored."""


@dataclass(frozen=True, slots=True)
class RenditionStatus:
    """One recording's rendition, as its metadata tells it."""

    state: str
    ready_in_s: float | None
    """A rough estimate of when a queued or running rendition will be ready."""


class RenditionQueue:
    """Queue, claim, renew, retry and dead-letter renditions; see the module docstring."""

    def __init__(
        self,
        *,
        database: Database,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        lease: timedelta = LEASE,
        max_attempts: int = MAX_ATTEMPTS,
        first_delay: timedelta = FIRST_DELAY,
        longest_delay: timedelta = LONGEST_DELAY,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._database = database
        self._audit = audit
        self._clock = clock
        self._lease = lease
        self._max_attempts = max_attempts
        self._first_delay = first_delay
        self._longest_delay = longest_delay
        self._jitter = jitter

    @staticmethod
    def queue(
        session: AsyncSession, recording_id: uuid.UUID, audio_seconds: float, now: datetime
    ) -> None:
        """Add the job in the caller's transaction: the one that stores the recording."""
        session.add(
            RenditionJob(
                recording_id=recording_id,
                state=RenditionState.QUEUED,
                attempts=0,
                audio_seconds=audio_seconds,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )

    async def claim(self) -> ClaimedRendition | None:
        """The next due job of a stored recording, leased to the caller; None if none."""
        now = self._clock()
        async with self._database.transaction() as session:
            job = (
                await session.execute(
                    select(RenditionJob)
                    .join(Recording, Recording.id == RenditionJob.recording_id)
                    .where(
                        Recording.state == RecordingState.STORED,
                        (
                            (RenditionJob.state == RenditionState.QUEUED)
                            & (RenditionJob.next_attempt_at <= now)
                        )
                        # A worker that died mid-rendition: its lease has run out.
                        | (
                            (RenditionJob.state == RenditionState.RUNNING)
                            & (RenditionJob.lease_until < now)
                        ),
                    )
                    .order_by(RenditionJob.next_attempt_at, RenditionJob.recording_id)
                    .limit(1)
                    .with_for_update(of=RenditionJob, skip_locked=True)
                )
            ).scalar_one_or_none()
            if job is None:
                return None
            abandoned = job.object_id
            job.state = RenditionState.RUNNING
            job.attempts += 1
            job.object_id = uuid.uuid4()
            job.lease_until = now + self._lease
            job.updated_at = now
            return ClaimedRendition(
                recording_id=job.recording_id,
                attempt=job.attempts,
                object_id=job.object_id,
                abandoned_object_id=abandoned,
                audio_seconds=job.audio_seconds,
                lease_until=job.lease_until,
            )

    @asynccontextmanager
    async def holding(self, job: ClaimedRendition) -> AsyncIterator[RenditionJob | None]:
        """The job's row, locked in a transaction that commits after the block, if this
        claim is still its latest and it is still running; else None. The rendition is
        stored inside this block (``RenditionStore``), so a lost claim never stores one."""
        async with self._database.transaction() as session:
            yield await self.held_in(session, job)

    @staticmethod
    async def held_in(session: AsyncSession, job: ClaimedRendition) -> RenditionJob | None:
        """The job's row, locked in ``session``, if this claim is still its latest and it
        is still running; else None."""
        row = await session.get(RenditionJob, job.recording_id, with_for_update=True)
        if row is None or row.state != RenditionState.RUNNING or row.attempts != job.attempt:
            return None
        return row

    async def renew(self, job: ClaimedRendition) -> datetime | None:
        """Extend the lease of a job still being worked; its new end, or None if lost."""
        now = self._clock()
        async with self.holding(job) as row:
            if row is None:
                return None
            row.lease_until = now + self._lease
            row.updated_at = now
            return row.lease_until

    async def retry(self, job: ClaimedRendition, error: str) -> bool:
        """Schedule another attempt, with back-off; dead-letter after the last. True if retried."""
        if job.attempt >= self._max_attempts:
            await self.give_up(job, f"{error} (after {job.attempt} attempts)")
            return False
        doubled = self._first_delay * (2 ** (job.attempt - 1))
        delay = min(doubled, self._longest_delay) * (0.5 + self._jitter() / 2)
        return await self._requeue(job, self._clock() + delay, error)

    async def release(self, job: ClaimedRendition) -> bool:
        """Hand a job back unfinished (its worker is stopping): due again at once."""
        return await self._requeue(job, self._clock(), None)

    async def _requeue(self, job: ClaimedRendition, due: datetime, error: str | None) -> bool:
        async with self.holding(job) as row:
            if row is None:
                return False
            row.state = RenditionState.QUEUED
            row.next_attempt_at = due
            row.lease_until = None
            if error is not None:
                row.last_error = error[:ERROR_LENGTH]
            row.updated_at = self._clock()
        return True

    async def give_up(self, job: ClaimedRendition, error: str) -> None:
        """Dead-letter the job: logged at error level, audited, counted in the metrics.

        The recording stays stored and playable: its original is served until an operator
        retries the job (``callrec renditions retry``).
        """
        async with self.holding(job) as row:
            if row is None:
                return
            row.state = RenditionState.DEAD
            row.lease_until = None
            row.last_error = error[:ERROR_LENGTH]
            row.updated_at = self._clock()
            session = _session_of(row)
            await self._audit.append(
                session,
                AuditRecord(
                    actor="renditions",
                    action="rendition.dead_lettered",
                    outcome="error",
                    recording_id=job.recording_id,
                    details={"attempts": job.attempt, "error": error[:ERROR_LENGTH]},
                ),
            )
        log.error(
            "a playback rendition was given up; the recording plays its original until "
            "`callrec renditions retry`",
            extra={
                "recording": str(job.recording_id),
                "attempts": job.attempt,
                "error": error[:ERROR_LENGTH],
            },
        )

    async def retry_dead(self, *, actor: str) -> int:
        """Queue every dead-lettered rendition again, each with all its attempts afresh."""
        now = self._clock()
        async with self._database.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(RenditionJob)
                        .where(RenditionJob.state == RenditionState.DEAD)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            for row in rows:
                row.state = RenditionState.QUEUED
                row.attempts = 0
                row.next_attempt_at = now
                row.updated_at = now
            if rows:
                await self._audit.append_many(
                    session,
                    [
                        AuditRecord(
                            actor=actor, action="rendition.retried", recording_id=row.recording_id
                        )
                        for row in rows
                    ],
                )
        return len(rows)

    async def backlog(self) -> RenditionBacklog:
        """Jobs per state, the audio waiting, and the oldest wait."""
        now = self._clock()
        unfinished = RenditionJob.state.in_((RenditionState.QUEUED, RenditionState.RUNNING))
        async with self._database.read() as session:
            rows = (
                await session.execute(
                    select(RenditionJob.state, func.count()).group_by(RenditionJob.state)
                )
            ).all()
            waiting, oldest = (
                await session.execute(
                    select(
                        func.coalesce(func.sum(RenditionJob.audio_seconds), 0.0),
                        func.min(RenditionJob.created_at),
                    ).where(unfinished)
                )
            ).one()
        counts = {state: 0 for state in RENDITION_STATES}
        counts.update({str(state): int(count) for state, count in rows})
        return RenditionBacklog(
            counts=counts,
            waiting_audio_s=float(waiting),
            oldest_wait_s=0.0 if oldest is None else (now - _utc(oldest)).total_seconds(),
        )


async def rendition_status(
    session: AsyncSession, recording_id: uuid.UUID, now: datetime
) -> RenditionStatus | None:
    """One recording's rendition job, with a rough wait while it is unfinished; None if it
    has none (stored before renditions were queued, or deleted)."""
    row = await session.get(RenditionJob, recording_id)
    if row is None:
        return None
    if row.state not in (RenditionState.QUEUED, RenditionState.RUNNING):
        return RenditionStatus(row.state, None)
    # The audio to render before this one is ready: everything due no later, this one
    # included (the queue is taken in ``next_attempt_at`` order), at one worker's pace.
    ahead = await session.scalar(
        select(func.coalesce(func.sum(RenditionJob.audio_seconds), 0.0)).where(
            RenditionJob.state.in_((RenditionState.QUEUED, RenditionState.RUNNING)),
            RenditionJob.next_attempt_at <= row.next_attempt_at,
        )
    )
    delay = max(0.0, (row.next_attempt_at - now).total_seconds())
    return RenditionStatus(row.state, round(delay + float(ahead or 0.0) / ASSUMED_SPEED, 1))


RENDITION_STATES = (
    RenditionState.QUEUED,
    RenditionState.RUNNING,
    RenditionState.DONE,
    RenditionState.DEAD,
)


def _utc(value: datetime) -> datetime:
    """An aggregate's datetime: SQLite gives it back naive (it holds UTC), not as a column."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _session_of(row: RenditionJob) -> AsyncSession:
    """The transaction a row held by ``holding`` was locked in."""
    session = async_object_session(row)
    assert session is not None  # only rows still attached are handed out
    return session
