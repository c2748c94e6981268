"""What every worker of a durable queue does the same way: poll or be woken, work one job
at a time, hold the job's lease while working it, and stop promptly at shutdown.

The queues themselves (fetches, renditions) live in storage; each worker kind says only
how to claim and work one of its jobs (``work_one``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from storage import Unavailable

log = logging.getLogger(__name__)
RENEWALS_PER_LEASE = 3
"""How often a lease is renewed: three times per lease, so one slow or failed renewal
still leaves time for the next before the lease runs out."""
SHORTEST_RENEWAL_S = 0.05
T = TypeVar("T")


class QueueWorkers(ABC):
    """A few tasks working one queue; ``wake`` sets one looking at once after a job is queued."""

    kind = "queue"
    """What the log calls these workers."""

    def __init__(self, *, workers: int, idle_poll_s: float) -> None:
        self._count = workers
        self._idle_poll_s = idle_poll_s
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the worker tasks (none when configured with zero); again after a stop."""
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._run(), name=f"{self.kind}-worker-{n}")
            for n in range(self._count)
        ]

    async def stop(self, *, finish_within: float = 0.0) -> None:
        """Claim nothing more; give jobs in flight ``finish_within`` seconds to finish, then
        cancel them (each worker kind hands its job back to the queue). Calling it again
        does nothing more."""
        self._stopping = True
        self._wake.set()  # idle workers stop waiting for the next poll
        tasks, self._tasks = self._tasks, []
        if tasks and finish_within > 0:
            await asyncio.wait(tasks, timeout=finish_within)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @abstractmethod
    async def work_one(self) -> bool:
        """Claim and work one due job; False when none was due."""

    async def _run(self) -> None:
        while not self._stopping:
            try:
                worked = await self.work_one()
            except Unavailable:
                log.warning("the %s queue is unavailable; trying again shortly", self.kind)
                worked = False
            except Exception:
                # A worker that died would stop working until a restart; its job is left
                # to its lease and claimed again.
                log.exception("a %s worker failed; it carries on", self.kind)
                worked = False
            if not worked and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)


async def holding_lease(
    work: Coroutine[Any, Any, T],
    *,
    lease_until: datetime,
    renew: Callable[[], Awaitable[datetime | None]],
    clock: Callable[[], datetime],
) -> tuple[bool, T | None]:
    """Run ``work`` while renewing a lease that ends at ``lease_until``.

    Returns (True, its result) if the work finished, or (False, None) if the lease was
    lost first, in which case the work was cancelled. Whatever ends first, nothing of the
    other is left running; the work's own failure is raised to the caller.
    """
    working = asyncio.create_task(work)
    renewing = asyncio.create_task(_renew_until_lost(lease_until, renew, clock))
    try:
        await asyncio.wait((working, renewing), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, renewing):
            task.cancel()
        await asyncio.gather(working, renewing, return_exceptions=True)
    if not working.cancelled():
        return True, working.result()
    if not renewing.cancelled() and renewing.exception() is not None:
        log.error("could not renew a job's lease", exc_info=renewing.exception())
    return False, None


async def _renew_until_lost(
    held_until: datetime,
    renew: Callable[[], Awaitable[datetime | None]],
    clock: Callable[[], datetime],
) -> None:
    """Renew the lease every part of it; return once it is lost or can no longer be shown
    to be held (the database out of reach until the lease ran out)."""
    every = max((held_until - clock()).total_seconds() / RENEWALS_PER_LEASE, SHORTEST_RENEWAL_S)
    while True:
        await asyncio.sleep(every)
        try:
            renewed = await renew()
        except Unavailable:
            if clock() < held_until:
                continue  # still ours for a while: try again at the next renewal
            return
        if renewed is None:
            return
        held_until = renewed
