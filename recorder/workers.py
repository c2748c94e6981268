"""A bounded pool of worker processes for decoding and encoding audio.

Why processes, not threads: decoding and encoding an hour of audio is seconds of CPU,
much of it in Python-held code between FFmpeg calls. In a thread it would take the GIL
from the event loop in 5 ms slices and every request would wait behind it. A worker
process has its own interpreter, and a file that crashes FFmpeg takes down a worker,
not the service.

Workers come from a fork server that has already imported PyAV, so a new worker costs
milliseconds. A burst of captures queues for the workers; the capture slots in front
(``max_concurrent``) bound how many wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import uuid
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from recorder.errors import MediaWorkerLost
from recorder.media_jobs import MediaJob, MediaResult, run_media_job
from storage import EncryptedSpool

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["recorder.media_jobs"])


def _ready() -> bool:
    """A job that does nothing: proves a worker is up."""
    return True


class MediaWorkers:
    """Runs media jobs in worker processes; one instance per service."""

    def __init__(self, *, workers: int, max_channels: int) -> None:
        self._workers = workers
        self._max_channels = max_channels
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def process(self, spool: EncryptedSpool) -> MediaResult:
        """Decode the finished spool and write its rendition; UndecodableAudio if unusable.

        The rendition file belongs to the caller once this returns; if this fails or is
        cancelled, it is removed (when the worker is done with it).
        """
        job = MediaJob(
            spool_path=spool.path,
            object_id=spool.object_id,
            data_key=spool.data_key,
            ciphertext_size=spool.facts.ciphertext_size,
            # Beside its spool, in the capturing service's own spool directory, so the pool
            # holds no path of its own and can serve any service in the process.
            rendition_path=spool.path.with_name(f"{uuid.uuid4().hex}.rendition.spool"),
            max_channels=self._max_channels,
        )
        pool, future = self._submit(run_media_job, job)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._replace_broken(pool)
            job.rendition_path.unlink(missing_ok=True)
            log.error("a media worker died while processing a recording")
            raise MediaWorkerLost(
                "the audio could not be processed just now; retry shortly"
            ) from None
        except BaseException:
            # A job still running cannot be stopped; its file is removed when it ends.
            future.add_done_callback(lambda _: job.rendition_path.unlink(missing_ok=True))
            raise

    def start(self) -> None:
        """Start the fork server and one worker; blocking, so call it from a thread.

        Done at start-up, not at the first capture: connecting to a fork server that is
        still importing PyAV would hold the event loop for about a second.
        """
        self._submit(_ready)[1].result()

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for operators' tools and tests)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return [process.pid for process in processes.values() if process.pid is not None]

    def _submit(
        self, work: Callable[..., _T], *args: Any
    ) -> tuple[concurrent.futures.ProcessPoolExecutor, concurrent.futures.Future[_T]]:
        """Hand ``work`` to the pool, and say which pool took it.

        A worker that died between jobs (killed for memory, say) leaves the pool broken
        before anything is submitted: nothing was lost, so the pool is replaced and the job
        goes to the new one, rather than every capture from then on failing.
        """
        pool = self._ensure_pool()
        try:
            return pool, pool.submit(work, *args)
        except BrokenProcessPool:
            self._replace_broken(pool)
            log.warning("a media worker had died between jobs; its pool was replaced")
            pool = self._ensure_pool()
            return pool, pool.submit(work, *args)

    def _ensure_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._workers, mp_context=_CONTEXT
            )
        return self._pool

    def _replace_broken(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers now; new jobs would start a new pool.

        A job still running is abandoned, not waited for: whoever submitted it has been
        answered or cancelled already (a service stopping within its grace period cannot
        wait minutes for a long recording's rendition), and its file is removed.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
