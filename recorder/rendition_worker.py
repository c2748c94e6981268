"""Background workers that make the queued playback renditions.

Each worker claims a job (any replica's, once its recording is stored), copies the
original's ciphertext from the store to the spool directory, has a rendition worker
process decode it and write the encrypted Opus rendition, and stores that beside the
original. Nobody waits for this: the sender was answered when the original was stored,
and playback serves the original until the rendition is there.

What may pass (a worker process lost, the store or database down) is retried with
back-off; what will not (the original does not decode to a rendition, or fails its
integrity checks) is dead-lettered: logged, audited, counted, and retried by an operator.
A worker that loses its lease stops at once, and what it wrote is deleted by whoever
takes the job over, or by the recording's deletion.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from recorder.errors import MediaWorkerLost, UndecodableAudio
from recorder.media_jobs import EncryptedInput, Rendered
from recorder.queue_workers import QueueWorkers, holding_lease
from storage import (
    ClaimedRendition,
    IntegrityFailure,
    OriginalCopy,
    SealedFile,
    StorageError,
)

log = logging.getLogger(__name__)
IDLE_POLL_S = 2.0


class RenditionJobs(Protocol):
    """The queue as workers see it (storage's RenditionQueue)."""

    async def claim(self) -> ClaimedRendition | None: ...

    async def renew(self, job: ClaimedRendition) -> datetime | None: ...

    async def retry(self, job: ClaimedRendition, error: str) -> bool: ...

    async def release(self, job: ClaimedRendition) -> bool: ...

    async def give_up(self, job: ClaimedRendition, error: str) -> None: ...


class RenditionStorage(Protocol):
    """Where originals come from and renditions go (storage's RenditionStore)."""

    async def copy_original(
        self, recording_id: uuid.UUID, directory: Path
    ) -> OriginalCopy | None: ...

    async def store(
        self, job: ClaimedRendition, sealed: SealedFile, copy: OriginalCopy
    ) -> bool: ...

    async def forget_object(self, object_id: uuid.UUID | None) -> None: ...


class Renderer(Protocol):
    """Makes a rendition in a worker process (workers.MediaWorkers)."""

    async def render(self, source: EncryptedInput, object_id: uuid.UUID) -> Rendered: ...


@dataclass(slots=True)
class RenditionTally:
    """What this process's workers have rendered since it started: the metrics' counters."""

    renditions: int = 0
    audio_s: float = 0.0
    """Audio seconds of the renditions stored."""
    busy_s: float = 0.0
    """Wall seconds spent on them, copy and store included."""
    cpu_s: float = 0.0
    """CPU seconds the worker processes spent decoding and encoding them."""


class RenditionWorkers(QueueWorkers):
    """A few tasks working the rendition queue; ``wake`` sets one looking after a capture."""

    kind = "rendition"

    def __init__(
        self,
        *,
        queue: RenditionJobs,
        store: RenditionStorage,
        media: Renderer,
        scratch_dir: Path,
        clock: Callable[[], datetime],
        workers: int,
    ) -> None:
        super().__init__(workers=workers, idle_poll_s=IDLE_POLL_S)
        self._queue = queue
        self._store = store
        self._media = media
        self._scratch = scratch_dir
        self._clock = clock
        self.tally = RenditionTally()

    async def work_one(self) -> bool:
        """Claim and work one due job; False when none was due.

        Cancelled (the process is stopping), the job goes back to the queue at once.
        """
        job = await self._queue.claim()
        if job is None:
            return False
        try:
            await self._work(job)
        except asyncio.CancelledError:
            try:
                await asyncio.shield(self._queue.release(job))
            except Exception:
                log.warning(
                    "could not hand a rendition back; it waits for its lease", exc_info=True
                )
            raise
        return True

    async def _work(self, job: ClaimedRendition) -> None:
        started = time.perf_counter()
        # What an earlier claim may have put before it died: never left in the store.
        await self._store.forget_object(job.abandoned_object_id)
        finished, cpu_s = await holding_lease(
            self._attempt(job),
            lease_until=job.lease_until,
            renew=functools.partial(self._queue.renew, job),
            clock=self._clock,
        )
        if not finished:
            log.warning(
                "a rendition lost its lease and stopped; its new holder makes it",
                extra=_job(job),
            )
            await self._store.forget_object(job.object_id)
        elif cpu_s is not None:
            self.tally.renditions += 1
            self.tally.audio_s += job.audio_seconds
            self.tally.busy_s += time.perf_counter() - started
            self.tally.cpu_s += cpu_s

    async def _attempt(self, job: ClaimedRendition) -> float | None:
        """Make and store the rendition: the worker's CPU seconds for it once stored; None
        once the job is retried, given up, or its recording is no longer stored (its
        deletion takes the job away)."""
        try:
            copy = await self._store.copy_original(job.recording_id, self._scratch)
            if copy is None:
                return None
            try:
                source = EncryptedInput(
                    copy.path, copy.object_id, copy.data_key, copy.ciphertext_size
                )
                rendered = await self._media.render(source, job.object_id)
            finally:
                copy.path.unlink(missing_ok=True)
            try:
                stored = await self._store.store(job, rendered.sealed, copy)
            finally:
                rendered.sealed.path.unlink(missing_ok=True)
            return rendered.cpu_s if stored else None
        except (UndecodableAudio, IntegrityFailure) as exc:
            await self._queue.give_up(job, str(exc))
        except (StorageError, MediaWorkerLost, OSError) as exc:
            await self._queue.retry(job, type(exc).__name__)
        return None


def _job(job: ClaimedRendition) -> dict[str, object]:
    return {"recording": str(job.recording_id), "attempt": job.attempt}
