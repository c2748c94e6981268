"""Background work on a schedule: each job of ``config.jobs`` once at start-up if it asks
(the retention sweep catches up after downtime), then every interval. The only module
that imports APScheduler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)
APSCHEDULER_LOGGER = "apscheduler"
"""APScheduler's own logger: each schedule has its own scheduler, so its "Scheduler
started" and "Running job" lines repeat without saying which schedule; this module logs
that instead, by name, and leaves APScheduler only its warnings."""


class SweepSchedule:
    """Runs the sweep now and every interval, one at a time; ``stop`` waits for a running one."""

    def __init__(
        self,
        sweep: Callable[[], Awaitable[object]],
        interval: timedelta,
        *,
        name: str = "retention sweep",
        run_at_start: bool = True,
    ) -> None:
        self._sweep = sweep
        self._name = name
        self._interval = interval
        self._run_at_start = run_at_start
        self._running = asyncio.Lock()
        self._stopped = False
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self._guarded,
            IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
            next_run_time=datetime.now(UTC) if run_at_start else datetime.now(UTC) + interval,
            max_instances=1,
            coalesce=True,
            id=name.replace(" ", "-"),
        )

    @property
    def name(self) -> str:
        """What the job is called in logs and in the scheduler."""
        return self._name

    def start(self) -> None:
        """Begin; the first sweep runs at once."""
        logging.getLogger(APSCHEDULER_LOGGER).setLevel(logging.WARNING)
        self._scheduler.start()
        log.info(
            "%s scheduled",
            self._name,
            extra={
                "job": self._name,
                "every_s": self._interval.total_seconds(),
                "run_at_start": self._run_at_start,
            },
        )

    async def stop(self) -> None:
        """No new sweeps; wait for one in progress, so it never outlives the database."""
        self._stopped = True
        # Shutting APScheduler down cancels a job in flight, so wait for it first: a sweep
        # cancelled mid-commit would be finished by the next one, but could leave a database
        # connection unreturned. A job still queued for the lock is cancelled harmlessly.
        async with self._running:
            self._scheduler.shutdown(wait=False)

    async def _guarded(self) -> None:
        async with self._running:
            if self._stopped:
                # Handed to the loop just before stop(): the database may be closed already.
                return
            try:
                await self._sweep()
            except Exception:
                # The next run tries again; a failed sweep must not end the schedule.
                log.exception("%s failed", self._name)
