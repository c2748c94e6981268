"""Background workers that turn queued provider callbacks into stored recordings.

Each worker claims a job, streams the recording from the job's URL (through the safe
fetcher) into an encrypted spool, and stores it the way a push is stored. Then the job
is done and the provider's own copy is deleted (when the job names a delete URL),
audited. Nothing here is specific to a provider: each webhook queues the URLs it needs.

What may pass (network, 5xx, 429, a store or database outage, a worker lost) is retried
with back-off; what will not (refused URL, wrong credentials, not audio) is given up:
dead-lettered and audited.

A worker renews its job's lease several times per lease while it works, so a download
longer than the lease is still done once. A worker that finds its lease lost (it could
not renew in time and another worker claimed the job) stops at once, and only the worker
whose claim marks the job done deletes the provider's copy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from recorder.callbacks import iso_instant
from recorder.errors import MediaWorkerLost, UndecodableAudio
from recorder.fetcher import FetchFailed, FetchRefused, SafeFetcher
from recorder.queue_workers import QueueWorkers, holding_lease
from recorder.storing import CaptureSink, SpooledCapture
from storage import (
    PAST_RETENTION,
    AuditRecord,
    CaptureInProgress,
    ClaimedFetch,
    EncryptedSpool,
    NewRecording,
    Unavailable,
    past_retention,
    retention_deadline,
)

log = logging.getLogger(__name__)
IDLE_POLL_S = 1.0


class FetchJobsToWork(Protocol):
    """The queue as workers see it (storage's FetchQueue)."""

    async def claim(self) -> ClaimedFetch | None: ...

    async def renew(self, job: ClaimedFetch) -> datetime | None: ...

    async def succeed(self, job: ClaimedFetch, recording_id: uuid.UUID | None) -> bool: ...

    async def retry(
        self, job: ClaimedFetch, error: str, *, retry_after: timedelta | None = None
    ) -> bool: ...

    async def give_up(self, job: ClaimedFetch, error: str) -> None: ...

    async def release(self, job: ClaimedFetch) -> bool: ...


class WorkAudit(Protocol):
    """Where the deletion of a provider's copy is recorded."""

    async def record(self, record: AuditRecord) -> None: ...


DELETE_URL = "delete_url"
"""The key, in a job's details, of the URL that deletes the provider's copy (if any)."""


class FetchWorkers(QueueWorkers):
    """A few tasks working the fetch queue; ``wake`` starts one at once after a callback."""

    kind = "fetch"

    def __init__(
        self,
        *,
        queue: FetchJobsToWork,
        fetcher: SafeFetcher,
        storing: SpooledCapture,
        recordings: CaptureSink,
        audit: WorkAudit,
        spool_dir: Path,
        retention_period: timedelta,
        clock: Callable[[], datetime],
        workers: int,
    ) -> None:
        super().__init__(workers=workers, idle_poll_s=IDLE_POLL_S)
        self._queue = queue
        self._fetcher = fetcher
        self._storing = storing
        self._recordings = recordings
        self._audit = audit
        self._spool_dir = spool_dir
        self._period = retention_period
        self._clock = clock

    async def stop(self, *, finish_within: float = 0.0) -> None:
        """As ``QueueWorkers.stop``; each fetch cut short goes back to the queue, due at
        once, for another replica."""
        await super().stop(finish_within=finish_within)
        await self._fetcher.close()

    async def work_one(self) -> bool:
        """Claim and work one due job; False when none was due.

        Cancelled (the process is stopping), the job goes back to the queue at once rather
        than waiting out its lease; a capture cut short stores nothing.
        """
        job = await self._queue.claim()
        if job is None:
            return False
        try:
            await self._work(job)
        except asyncio.CancelledError:
            # Stopped by a drain: the job goes back to the queue, due at once.
            try:
                await asyncio.shield(self._queue.release(job))
            except Exception:
                log.warning("could not hand a fetch back; it waits for its lease", exc_info=True)
            raise
        return True

    async def _work(self, job: ClaimedFetch) -> None:
        fetched = await self._holding_lease(job, self._attempt(job))
        if fetched is None:
            return  # retried, given up, or the lease was lost
        if not await self._queue.succeed(job, fetched.recording_id):
            # Another worker claimed the job meanwhile: it finishes the job, and the
            # provider's copy is its to delete.
            log.warning("a fetch finished after its job was claimed again", extra=_job(job))
            return
        delete_url = job.details.get(DELETE_URL)
        if fetched.recording_id is not None and isinstance(delete_url, str):
            await self._delete_copy(job, delete_url, fetched.recording_id)

    async def _attempt(self, job: ClaimedFetch) -> _Fetched | None:
        """Fetch and store the job's recording; None once the job is retried or given up."""
        recording = self._recording_of(job)
        if past_retention(recording.started_at, self._period, self._clock()):
            await self._recordings.record_discard(
                actor=f"fetch:{job.provider}",
                source_recording_id=job.external_id,
                reason=PAST_RETENTION,
            )
            return _Fetched(None)
        spool = EncryptedSpool(self._spool_dir)
        try:
            await self._fetcher.fetch(job.provider, job.url, spool.write)
            outcome = await self._storing.store(spool, recording, actor=f"fetch:{job.provider}")
        except FetchFailed as exc:
            await self._queue.retry(job, str(exc), retry_after=exc.retry_after)
            return None
        except (FetchRefused, UndecodableAudio) as exc:
            await self._queue.give_up(job, str(exc))
            return None
        except (Unavailable, CaptureInProgress, MediaWorkerLost) as exc:
            await self._queue.retry(job, type(exc).__name__)
            return None
        finally:
            await spool.discard()
        return _Fetched(outcome.recording_id)

    async def _holding_lease(
        self, job: ClaimedFetch, work: Coroutine[Any, Any, _Fetched | None]
    ) -> _Fetched | None:
        """Run ``work`` while renewing the job's lease; None if the lease was lost."""
        finished, fetched = await holding_lease(
            work,
            lease_until=job.lease_until,
            renew=functools.partial(self._queue.renew, job),
            clock=self._clock,
        )
        if not finished:
            log.warning(
                "a fetch lost its lease and stopped; its new holder does it", extra=_job(job)
            )
        return fetched

    def _recording_of(self, job: ClaimedFetch) -> NewRecording:
        details = job.details
        # The intake always records a start (the provider's, or one estimated when the
        # callback arrived), so the deadline does not move from one attempt to the next.
        started = iso_instant(details.get("started_at")) or self._clock()
        duration = details.get("duration_s")
        ended = started + timedelta(seconds=duration) if isinstance(duration, int) else None
        referrals = details.get("referrals")
        return NewRecording(
            source=job.provider,
            source_recording_id=job.external_id,
            started_at=started,
            ended_at=ended,
            retention_deadline=retention_deadline(started, self._period),
            team=_text(details.get("team")),
            agent=_text(details.get("agent")),
            referrals=tuple(referrals) if isinstance(referrals, list) else (),
            extra={"call_sid": details["call_sid"]} if details.get("call_sid") else {},
        )

    async def _delete_copy(self, job: ClaimedFetch, url: str, recording_id: uuid.UUID) -> None:
        try:
            status = await self._fetcher.delete(job.provider, url)
        except (FetchFailed, FetchRefused) as exc:
            status, error = 0, str(exc)
        else:
            error = ""
        deleted = status in (200, 204, 404)  # 404: already gone
        if not deleted:
            log.warning("could not delete the provider's copy", extra={"status": status})
        await self._audit.record(
            AuditRecord(
                actor=f"fetch:{job.provider}",
                action="provider.copy_deleted" if deleted else "provider.copy_delete_failed",
                outcome="allow" if deleted else "error",
                recording_id=recording_id,
                details={"provider": job.provider, "id": job.external_id, "status": status}
                | ({"error": error} if error else {}),
            )
        )


@dataclass(frozen=True, slots=True)
class _Fetched:
    """An attempt that settled the job: the recording stored (None: nothing to store)."""

    recording_id: uuid.UUID | None


def _job(job: ClaimedFetch) -> dict[str, object]:
    """What a log line says about a job: ids, never the callback's details or URLs."""
    return {"job": str(job.id), "attempt": job.attempt}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
