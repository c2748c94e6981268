"""Dead-lettered provider fetches and what an operator (or the provider) can do with them.

A dead letter is a recording a platform announced that the service gave up fetching. It
stays dead until someone acts: an operator retries it (all its attempts afresh) or
discards it with a reason, or the provider sends its callback again, which revives it
with what the new callback says. Every change is audited; a discarded job stays known, so
a late repeat of its callback queues nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.job_models import FetchJob, FetchState

log = logging.getLogger(__name__)
ERROR_LENGTH = 500
"""The longest error (or discard reason) a job keeps."""


class DeadLetters:
    """List, retry and discard the fetch jobs given up; log each one as it is buried."""

    def __init__(
        self, *, database: Database, audit: AuditTrail, clock: Callable[[], datetime]
    ) -> None:
        self._database = database
        self._audit = audit
        self._clock = clock

    def buried(self, job_id: uuid.UUID, provider: str, attempts: int, error: str) -> None:
        """Say in the log, at error level, that a job was given up: each is a recording
        the hub will not have unless someone acts. Ids and the error only: the callback's
        details (numbers, labels) and URLs never reach the log."""
        log.error(
            "a provider fetch was given up (dead-lettered); "
            "`callrec fetches retry` or `callrec fetches discard` settles it",
            extra={
                "job": str(job_id),
                "provider": provider,
                "attempts": attempts,
                "error": error[:ERROR_LENGTH],
            },
        )

    async def listed(self, limit: int = 100) -> list[dict[str, Any]]:
        """The jobs given up, newest first, for an operator to act on."""
        async with self._database.read() as session:
            rows = (
                (
                    await session.execute(
                        select(FetchJob)
                        .where(FetchJob.state == FetchState.DEAD)
                        .order_by(FetchJob.updated_at.desc(), FetchJob.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        return [
            {
                "job": str(row.id),
                "provider": row.provider,
                "id": row.external_id,
                "attempts": row.attempts,
                "error": row.last_error,
                "given_up_at": row.updated_at.isoformat(),
            }
            for row in rows
        ]

    async def summary(self, limit: int = 50) -> dict[str, Any]:
        """How many jobs are dead, and the newest ``limit`` of them: what an operator's
        page shows."""
        async with self._database.read() as session:
            count = await session.scalar(
                select(func.count()).select_from(FetchJob).where(FetchJob.state == FetchState.DEAD)
            )
        return {"count": int(count or 0), "jobs": await self.listed(limit)}

    async def retry(self, job_id: uuid.UUID, *, actor: str) -> bool:
        """Queue a dead job again with all its attempts; False if it is not dead."""
        async with self._database.transaction() as session:
            row = await session.get(FetchJob, job_id, with_for_update=True)
            if row is None or row.state != FetchState.DEAD:
                return False
            await self.revive(session, row, actor=actor, action="fetch.retried")
        return True

    async def retry_all(self, *, actor: str) -> int:
        """Queue every dead job again; how many."""
        async with self._database.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(FetchJob)
                        .where(FetchJob.state == FetchState.DEAD)
                        .order_by(FetchJob.id)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            for row in rows:
                await self.revive(session, row, actor=actor, action="fetch.retried")
        return len(rows)

    async def discard(self, job_id: uuid.UUID, *, actor: str, reason: str) -> bool:
        """Give a dead job up for good, with the reason; False if it is not dead.

        What its callback said goes at once (there will be no recording to carry it);
        the job itself stays, so a repeat of the callback finds it and fetches nothing.
        """
        async with self._database.transaction() as session:
            row = await session.get(FetchJob, job_id, with_for_update=True)
            if row is None or row.state != FetchState.DEAD:
                return False
            row.state = FetchState.DISCARDED
            row.details = None
            row.last_error = f"discarded: {reason}"[:ERROR_LENGTH]
            row.updated_at = self._clock()
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="fetch.discarded",
                    details=_facts(row) | {"reason": reason[:ERROR_LENGTH]},
                ),
            )
        return True

    async def revive(
        self,
        session: AsyncSession,
        row: FetchJob,
        *,
        actor: str,
        action: str,
        url: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Queue ``row`` (dead, locked in ``session``) for a first attempt now, audited.

        A repeated callback brings its URL and details, which replace the old ones. A job
        retried without them may have had its details cleared while it lay dead: it is
        then dated from when its callback arrived (the call had started by then), so a
        call already past its retention period is discarded, not stored with a new
        deadline.
        """
        now = self._clock()
        previous = row.attempts
        row.state = FetchState.QUEUED
        row.attempts = 0
        row.next_attempt_at = now
        row.lease_until = None
        row.updated_at = now
        if url is not None:
            row.url = url
        if details is not None:
            row.details = details
        elif not row.details:
            row.details = {"started_at": row.created_at.isoformat(), "started_at_estimated": True}
        await self._audit.append(
            session,
            AuditRecord(
                actor=actor, action=action, details=_facts(row) | {"attempts_before": previous}
            ),
        )


def _facts(row: FetchJob) -> dict[str, Any]:
    return {"job": str(row.id), "provider": row.provider, "id": row.external_id}
