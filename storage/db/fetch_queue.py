"""The durable queue of provider fetches: a callback is acknowledged only once its job is
committed here, and a job survives restarts until its recording is stored or it is given up.

Any number of workers, in any number of processes, claim jobs: on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, on SQLite through the process's single writer. A claim is a
lease, which its holder renews while it works: a worker that dies stops renewing and
leaves its job to be claimed again once the lease runs out, so a job is attempted at
least once and its capture, idempotent per provider recording id, stores it at most once.
Each claim's attempt number fences it: renewing, finishing, rescheduling or burying a
job succeeds only for its latest claim, so a worker that lost its lease cannot act on it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.dead_letters import ERROR_LENGTH, DeadLetters
from storage.db.job_models import FetchJob, FetchState

LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 8
FIRST_DELAY = timedelta(seconds=5)
LONGEST_DELAY = timedelta(minutes=15)
# A provider's Retry-After is honoured up to this; longer is treated as this.
LONGEST_RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ClaimedFetch:
    """A job a worker holds until its lease runs out."""

    id: uuid.UUID
    provider: str
    external_id: str
    url: str
    details: dict[str, Any]
    attempt: int
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class QueuedFetch:
    """The answer to a callback: the job, and whether this callback created it."""

    id: uuid.UUID
    created: bool
    state: str


class FetchQueue:
    """Enqueue, claim, finish, retry and dead-letter provider fetches; every change audited."""

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
        self.dead = DeadLetters(database=database, audit=audit, clock=clock)
        """The jobs given up, and what an operator does with them."""

    async def enqueue(
        self, *, provider: str, external_id: str, url: str, details: dict[str, Any], actor: str
    ) -> QueuedFetch:
        """Commit a job for this provider recording, or find the one already there.

        A job found dead is revived by the repeated callback (with its URL and details):
        the provider resends when it still has the recording, so it is worth fetching.
        """
        existing = await self._find(provider, external_id)
        if existing is not None:
            if existing.state == FetchState.DEAD:
                return await self._revive(existing, url=url, details=details, actor=actor)
            return existing
        now = self._clock()
        job = FetchJob(
            id=uuid.uuid4(),
            provider=provider,
            external_id=external_id,
            url=url,
            details=details,
            state=FetchState.QUEUED,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._database.transaction() as session:
                session.add(job)
                await session.flush()
                await self._audit.append(
                    session,
                    AuditRecord(
                        actor=actor,
                        action="fetch.queued",
                        details={"job": str(job.id), "provider": provider, "id": external_id},
                    ),
                )
        except IntegrityError:
            # The same callback, delivered twice at once: the other one queued it.
            found = await self._find(provider, external_id)
            if found is None:
                raise
            return found
        return QueuedFetch(job.id, created=True, state=FetchState.QUEUED)

    async def _revive(
        self, found: QueuedFetch, *, url: str, details: dict[str, Any], actor: str
    ) -> QueuedFetch:
        async with self._database.transaction() as session:
            row = await session.get(FetchJob, found.id, with_for_update=True)
            if row is None or row.state != FetchState.DEAD:
                # Revived (or settled) by someone else meanwhile: report it as it is now.
                state = found.state if row is None else row.state
                return QueuedFetch(found.id, created=False, state=state)
            await self.dead.revive(
                session, row, actor=actor, action="fetch.revived", url=url, details=details
            )
        return QueuedFetch(found.id, created=False, state=FetchState.QUEUED)

    async def _find(self, provider: str, external_id: str) -> QueuedFetch | None:
        async with self._database.read() as session:
            row = (
                await session.execute(
                    select(FetchJob.id, FetchJob.state).where(
                        FetchJob.provider == provider, FetchJob.external_id == external_id
                    )
                )
            ).one_or_none()
        return None if row is None else QueuedFetch(row[0], created=False, state=row[1])

    async def claim(self) -> ClaimedFetch | None:
        """The next due job, leased to the caller; None when nothing is due."""
        now = self._clock()
        async with self._database.transaction() as session:
            job = (
                await session.execute(
                    select(FetchJob)
                    .where(
                        or_(
                            (FetchJob.state == FetchState.QUEUED)
                            & (FetchJob.next_attempt_at <= now),
                            # A worker that died mid-fetch: its lease has run out.
                            (FetchJob.state == FetchState.RUNNING) & (FetchJob.lease_until < now),
                        )
                    )
                    .order_by(FetchJob.next_attempt_at, FetchJob.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).scalar_one_or_none()
            if job is None:
                return None
            job.state = FetchState.RUNNING
            job.attempts += 1
            job.lease_until = now + self._lease
            job.updated_at = now
            return ClaimedFetch(
                id=job.id,
                provider=job.provider,
                external_id=job.external_id,
                url=job.url,
                details=dict(job.details or {}),
                attempt=job.attempts,
                lease_until=job.lease_until,
            )

    @asynccontextmanager
    async def _still_holding(self, job: ClaimedFetch) -> AsyncIterator[FetchJob | None]:
        """The job's row, locked in a transaction that commits after the block, if this
        claim is still the job's latest; None once another worker has claimed it again or
        it is no longer running (renew, succeed, retry, release and give up all ask)."""
        async with self._database.transaction() as session:
            row = await session.get(FetchJob, job.id, with_for_update=True)
            yield row if _still_held(row, job) else None

    async def renew(self, job: ClaimedFetch) -> datetime | None:
        """Extend the lease of a job still being worked; its new end, or None if lost.

        Lost means the job was claimed again (its lease ran out and another worker took
        it) or is no longer running: the caller must stop, and leave the provider's copy
        alone. A lease that ran out but that nobody has claimed yet is still the caller's.
        """
        now = self._clock()
        async with self._still_holding(job) as row:
            if row is None:
                return None
            row.lease_until = now + self._lease
            row.updated_at = now
            return row.lease_until

    async def succeed(self, job: ClaimedFetch, recording_id: uuid.UUID | None) -> bool:
        """The recording is stored (or there was nothing to fetch): the job is done.

        False when the claim was no longer the job's latest: whoever holds it now finishes
        it, and only the worker this returns True for may delete the provider's copy.
        """
        now = self._clock()
        async with self._still_holding(job) as row:
            if row is None:
                return False
            row.state = FetchState.DONE
            row.recording_id = recording_id
            row.details = None  # what the callback said now lives with the recording
            row.lease_until = None
            row.last_error = None
            row.updated_at = now
        return True

    async def retry(
        self, job: ClaimedFetch, error: str, *, retry_after: timedelta | None = None
    ) -> bool:
        """Schedule another attempt, with back-off; dead-letter after the last. True if retried."""
        if job.attempt >= self._max_attempts:
            await self.give_up(job, f"{error} (after {job.attempt} attempts)")
            return False
        if retry_after is not None:
            delay = min(max(retry_after, timedelta(0)), LONGEST_RETRY_AFTER)
        else:
            doubled = self._first_delay * (2 ** (job.attempt - 1))
            # Full jitter on the upper half: spread retries of a burst, never shorten
            # a delay below half of its step.
            delay = min(doubled, self._longest_delay) * (0.5 + self._jitter() / 2)
        now = self._clock()
        async with self._still_holding(job) as row:
            if row is None:
                return False
            row.state = FetchState.QUEUED
            row.next_attempt_at = now + delay
            row.lease_until = None
            row.last_error = error[:ERROR_LENGTH]
            row.updated_at = now
        return True

    async def release(self, job: ClaimedFetch) -> bool:
        """Hand a job back unfinished (its worker is stopping): due again at once, for any
        worker, rather than after its lease. The attempt still counts, so a job that never
        finishes before a shutdown is still given up in the end. True if it was released."""
        now = self._clock()
        async with self._still_holding(job) as row:
            if row is None:
                return False
            row.state = FetchState.QUEUED
            row.next_attempt_at = now
            row.lease_until = None
            row.updated_at = now
        return True

    async def give_up(self, job: ClaimedFetch, error: str) -> None:
        """Dead-letter the job: no more attempts; logged, visible to operators, audited."""
        now = self._clock()
        async with self._still_holding(job) as row:
            if row is None:
                return
            row.state = FetchState.DEAD
            row.lease_until = None
            row.last_error = error[:ERROR_LENGTH]
            row.updated_at = now
            await self._audit.append(
                _session_of(row),
                AuditRecord(
                    actor=f"fetch:{job.provider}",
                    action="fetch.dead_lettered",
                    outcome="error",
                    details={
                        "job": str(job.id),
                        "provider": job.provider,
                        "id": job.external_id,
                        "attempts": job.attempt,
                        "error": error[:ERROR_LENGTH],
                    },
                ),
            )
        self.dead.buried(job.id, job.provider, job.attempt, error)

    async def forget_details(self, *, before: datetime) -> int:
        """Clear what callbacks said (referrals, team, agent, call ids) from jobs last
        touched before ``before``: a dead letter must not keep it past the retention
        period. The job itself stays, so a late repeat of the callback is still known."""
        async with self._database.transaction() as session:
            result = await session.execute(
                update(FetchJob).where(FetchJob.updated_at < before).values(details=null())
            )
        return int(getattr(result, "rowcount", 0) or 0)  # jobs touched, cleared or not

    async def job(self, job_id: uuid.UUID) -> dict[str, Any] | None:
        """One job's state, attempts, last error and recording, for operators and tests."""
        async with self._database.read() as session:
            row = await session.get(FetchJob, job_id)
        if row is None:
            return None
        return {
            "state": row.state,
            "attempts": row.attempts,
            "error": row.last_error,
            "recording_id": row.recording_id,
            "next_attempt_at": row.next_attempt_at,
        }

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        async with self._database.read() as session:
            rows = (
                await session.execute(select(FetchJob.state, func.count()).group_by(FetchJob.state))
            ).all()
        found = {state: 0 for state in (FetchState.QUEUED, FetchState.RUNNING, FetchState.DONE)}
        found[FetchState.DEAD] = 0
        found[FetchState.DISCARDED] = 0
        found.update({str(state): int(count) for state, count in rows})
        return found

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The jobs given up, newest first, for an operator to act on."""
        return await self.dead.listed(limit)


def _session_of(row: FetchJob) -> AsyncSession:
    """The transaction a row held by ``_still_holding`` was locked in."""
    session = async_object_session(row)
    assert session is not None  # only rows still attached are handed out
    return session


def _still_held(row: FetchJob | None, job: ClaimedFetch) -> bool:
    """Whether this claim is still the job's latest: a worker whose lease ran out and whose
    job was claimed again must not reschedule or bury it."""
    return row is not None and row.state == FetchState.RUNNING and row.attempts == job.attempt
