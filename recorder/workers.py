"""A bounded pool of worker processes for decoding and encoding audio.

Why processes, not threads: decoding and encoding an hour of audio is seconds of CPU,
much of it in Python-held code between FFmpeg calls. In a thread it would take the GIL
from the event loop in 5 ms slices and every request would wait behind it. A worker
process has its own interpreter, and a file that crashes FFmpeg takes down a worker,
not the service.

Why a pool of our own rather than ``concurrent.futures``: each job has a deadline, and a
job past it must be stopped. A process pool cannot stop one job; killing one of its
processes breaks the whole pool and every job on the other workers with it. Here each
worker is one process and one pipe, used by one job at a time, so the one that overran is
killed and replaced and the others carry on.

Workers come from a fork server that has already imported PyAV, so a new worker costs
milliseconds. A burst of captures queues for the workers; the capture slots in front
(``max_concurrent``) bound how many wait.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import multiprocessing.connection
import uuid
from multiprocessing.process import BaseProcess
from typing import Any

from recorder.errors import MediaWorkerLost, UndecodableAudio
from recorder.media import MediaReport
from recorder.media_jobs import (
    CheckJob,
    EncryptedInput,
    MediaJob,
    Redacted,
    RedactJob,
    Rendered,
    RenderJob,
    serve_jobs,
)
from recorder.redaction import Redaction
from storage import EncryptedSpool

log = logging.getLogger(__name__)
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["recorder.media_jobs"])
# A killed worker is gone within milliseconds; this only bounds the wait for its exit code.
_REAP_S = 5.0
DEFAULT_JOB_DEADLINE_S = 30 * 60.0
RENDITION_NICENESS = 10
"""How far the renditions' workers lower their CPU priority: at 10, Linux gives a process
about a tenth of the CPU time of a default one it competes with, so a capture's check
runs at nearly full speed beside a backlog of renditions, which use the cores left idle."""


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, niceness: int) -> None:
        ours, theirs = _CONTEXT.Pipe()
        self.process: BaseProcess = _CONTEXT.Process(
            target=serve_jobs, args=(theirs, niceness), daemon=True
        )
        self.process.start()
        theirs.close()
        self.pipe: multiprocessing.connection.Connection = ours

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """Kill the process (it may be deep in FFmpeg: no polite way out) and reap it."""
        self.process.kill()
        self.process.join(_REAP_S)
        self.pipe.close()


class MediaWorkers:
    """Runs media jobs in worker processes; one instance per service (or shared by tests).

    A service has two: one checks captures (a sender waits for each), the other makes the
    queued renditions at a lower CPU priority (``niceness``), so a burst of captures is
    never starved by the rendition backlog and never waits for a worker it holds.

    ``job_deadline_s`` bounds how long one capture may hold a worker. It is sized so that
    the longest call the service accepts (25 hours, two channels) finishes well within it
    on one core; a job past it is killed and its capture refused with 422, because with
    the duration and ratio limits checked while decoding, only a file built to be slow
    gets there, and a sender told 503 would resend it and hold a worker again.
    """

    def __init__(
        self,
        *,
        workers: int,
        max_channels: int,
        job_deadline_s: float = DEFAULT_JOB_DEADLINE_S,
        niceness: int = 0,
    ) -> None:
        self._workers = workers
        self._niceness = niceness
        self._max_channels = max_channels
        self._deadline_s = job_deadline_s
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._waiting: collections.deque[asyncio.Future[_Worker]] = collections.deque()

    async def check(self, spool: EncryptedSpool) -> MediaReport:
        """Decode the finished spool to decide it is usable, and draw its peaks;
        UndecodableAudio if it is not."""
        source = EncryptedInput(
            spool.path, spool.object_id, spool.data_key, spool.facts.ciphertext_size
        )
        report: MediaReport = await self._run(CheckJob(source, self._max_channels))
        return report

    async def render(self, source: EncryptedInput, object_id: uuid.UUID) -> Rendered:
        """Write the encrypted rendition of ``source`` as object ``object_id``, beside it.

        The rendition file belongs to the caller once this returns; if this fails, times
        out or is cancelled, the worker is stopped first and the file removed.
        """
        # Beside its input, in the service's own spool directory, so the pool holds no
        # path of its own and can serve any service in the process.
        job = RenderJob(
            source=source,
            rendition_path=source.path.with_name(f"{uuid.uuid4().hex}.rendition.spool"),
            rendition_object_id=object_id,
            max_channels=self._max_channels,
        )
        try:
            rendered: Rendered = await self._run(job)
        except BaseException:
            job.rendition_path.unlink(missing_ok=True)
            raise
        return rendered

    async def redact(self, source: EncryptedInput, redaction: Redaction) -> Redacted:
        """Write the encrypted, redacted WAV copy of ``source`` beside it.

        InvalidRedaction if the redaction does not fit what decodes (a channel kept of a
        one-channel recording). The copy's file belongs to the caller once this returns;
        if this fails, times out or is cancelled, the file is removed.
        """
        job = RedactJob(
            source=source,
            redaction=redaction,
            output_path=source.path.with_name(f"{uuid.uuid4().hex}.redacted.spool"),
            max_channels=self._max_channels,
        )
        try:
            redacted: Redacted = await self._run(job)
        except BaseException:
            job.output_path.unlink(missing_ok=True)
            raise
        return redacted

    async def _run(self, job: MediaJob) -> Any:
        worker = await self._acquire()
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[None] = loop.create_future()
        descriptor = worker.pipe.fileno()
        kept = False
        try:
            worker.pipe.send(job)
            loop.add_reader(descriptor, _settle, answered)
            try:
                await asyncio.wait_for(answered, self._deadline_s)
            finally:
                loop.remove_reader(descriptor)
            try:
                outcome, value = worker.pipe.recv()
            except (EOFError, OSError):
                log.error("a media worker died while processing a recording")
                raise MediaWorkerLost(
                    "the audio could not be processed just now; retry shortly"
                ) from None
            kept = True
        except TimeoutError:
            log.warning(
                "a media job overran its deadline; its worker was replaced",
                extra={"deadline_s": self._deadline_s, "bytes": job.source.ciphertext_size},
            )
            raise UndecodableAudio(
                f"the audio took more than {self._deadline_s:g} s to process, far longer "
                "than any call the service accepts needs; it was given up"
            ) from None
        finally:
            self._release(worker, keep=kept)
        if outcome == "error":
            raise value
        return value

    async def _acquire(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive():
                self._busy.add(worker)
                return worker
            log.warning("a media worker had died between jobs; it was replaced")
            worker.stop()
        if len(self._busy) < self._workers:
            worker = _Worker(self._niceness)
            self._busy.add(worker)
            return worker
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result(), keep=True)
            raise
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    def _release(self, worker: _Worker, *, keep: bool) -> None:
        """Give the worker to the next job waiting, or back to the idle ones.

        One not kept (it overran, died, or its job was abandoned mid-way) is killed, and a
        job waiting gets a new worker in its place.
        """
        self._busy.discard(worker)
        if not keep:
            worker.stop()
        while self._waiting:
            waiter = self._waiting.popleft()
            if waiter.done() or waiter.get_loop().is_closed():
                continue
            if not keep:
                worker = _Worker(self._niceness)
            self._busy.add(worker)
            waiter.set_result(worker)
            return
        if keep:
            self._idle.append(worker)

    def start(self) -> None:
        """Start the fork server and one worker; blocking, so call it from a thread.

        Done at start-up, not at the first capture: connecting to a fork server that is
        still importing PyAV would hold the event loop for about a second.
        """
        if self._idle:
            return
        worker = _Worker(self._niceness)
        worker.pipe.send(None)  # the worker answers None with None: it is up
        worker.pipe.recv()
        self._idle.append(worker)

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for operators' tools and tests)."""
        everyone = [*self._idle, *self._busy]
        return [w.process.pid for w in everyone if w.process.pid is not None and w.alive()]

    def close(self) -> None:
        """Stop the workers now; new jobs would start new ones.

        A job still running is abandoned, not waited for: whoever submitted it has been
        answered or cancelled already (a service stopping within its grace period cannot
        wait minutes for a long recording's rendition), and its file is removed.
        """
        everyone, self._idle = [*self._idle, *self._busy], []
        self._busy.clear()
        for worker in everyone:
            worker.stop()


def _settle(answered: asyncio.Future[None]) -> None:
    """The worker's pipe is readable: an answer arrived, or the worker is gone."""
    if not answered.done():
        answered.set_result(None)
