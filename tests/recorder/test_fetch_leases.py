"""Leases on provider fetches: a download slower than its lease is done once while workers
compete for it, and a worker that stops renewing loses the job to another after the lease,
stops when it learns so, and leaves the provider's copy to the new holder."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.providers import provider_origins
from recorder import FetchWorkers, SafeFetcher, SpooledCapture
from recorder.fetch_worker import DELETE_URL, FetchJobsToWork
from storage import ClaimedFetch, DatabaseUnavailable, FetchQueue
from storage.db.models import AuditEvent
from tests.audio_factory import BY_NAME, make_audio
from tests.provider_fakes import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serving
from tests.service_support import RunningService, running_service

AUDIO = make_audio(BY_NAME["mulaw-wav"], 2.0)
LEASE = timedelta(seconds=0.6)
"""Renewed every 0.2 s; idle workers look for expired leases every second."""


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    async with serving(fake.app()) as fake.url:
        yield fake


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> AsyncIterator[RunningService]:
    # No workers of its own: the tests start the competing workers themselves.
    async with running_service(
        tmp_path / "var",
        database_url,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_api_base=twilio.url,
        fetch_workers=0,
    ) as running:
        yield running


def short_leases(service: RunningService) -> FetchQueue:
    parts = service.services
    return FetchQueue(database=parts.database, audit=parts.audit, clock=parts.clock, lease=LEASE)


def workers(service: RunningService, queue: FetchJobsToWork, count: int = 2) -> FetchWorkers:
    """A replica's fetch workers: its own tasks and connections, the shared database."""
    parts = service.services
    return FetchWorkers(
        queue=queue,
        fetcher=SafeFetcher(provider_origins(parts.settings), max_bytes=1024 * 1024),
        storing=SpooledCapture(parts.recordings, parts.media),
        recordings=parts.recordings,
        audit=parts.audit_log,
        spool_dir=parts.spool.path,
        retention_period=parts.settings.retention_period,
        clock=parts.clock,
        workers=count,
    )


async def queue_recording(queue: FetchQueue, twilio: FakeTwilio, rid: str) -> None:
    """Queue the job a Twilio callback for ``rid`` queues."""
    twilio.recordings[rid] = AUDIO
    url = twilio.recording_url(rid)
    await queue.enqueue(
        provider="twilio",
        external_id=rid,
        url=f"{url}.wav",
        details={
            "call_sid": "CA" + "c" * 32,
            "started_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            "duration_s": 2,
            DELETE_URL: f"{url}.json",
        },
        actor="source:twilio",
    )


def requests(twilio: FakeTwilio, method: str) -> int:
    return sum(seen.method == method for seen in twilio.seen)


async def copies_deleted(service: RunningService) -> int:
    async with service.services.database.read() as session:
        return int(
            (
                await session.execute(
                    select(func.count()).where(AuditEvent.action == "provider.copy_deleted")
                )
            ).scalar_one()
        )


async def test_fetches_slower_than_their_lease_are_done_once_by_competing_workers(
    service: RunningService, twilio: FakeTwilio
) -> None:
    queue = short_leases(service)
    rids = ["RE-slow-1", "RE-slow-2"]
    for rid in rids:
        await queue_recording(queue, twilio, rid)
        twilio.scripts[rid] = ["slow:1.8"]  # three leases long
    # Two replicas of two workers: two download, two look for expired leases meanwhile.
    first, second = workers(service, queue), workers(service, queue)
    first.start()
    second.start()
    try:
        jobs = [await service.fetch_settled(rid) for rid in rids]

        async def both_copies_deleted() -> bool:
            # The provider's copy goes, audited, just after its job is marked done.
            return await copies_deleted(service) == len(rids)

        await eventually(both_copies_deleted)
    finally:
        await first.stop()
        await second.stop()

    assert [job.attempts for job in jobs] == [1, 1]
    assert (requests(twilio, "GET"), requests(twilio, "DELETE")) == (2, 2)
    assert sorted(twilio.deleted) == rids
    assert await copies_deleted(service) == len(rids)


async def _true(value: bool) -> bool:
    return value


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


class FrozenRenewals:
    """A worker's view of the queue in which renewals hang until thawed, as in a worker
    paused or cut off from the database while its download carries on."""

    def __init__(self, queue: FetchQueue) -> None:
        self._queue = queue
        self.thawed = asyncio.Event()

    async def claim(self) -> ClaimedFetch | None:
        return await self._queue.claim()

    async def renew(self, job: ClaimedFetch) -> datetime | None:
        await self.thawed.wait()
        return await self._queue.renew(job)

    async def succeed(self, job: ClaimedFetch, recording_id: uuid.UUID | None) -> bool:
        return await self._queue.succeed(job, recording_id)

    async def release(self, job: ClaimedFetch) -> bool:
        return await self._queue.release(job)

    async def retry(
        self, job: ClaimedFetch, error: str, *, retry_after: timedelta | None = None
    ) -> bool:
        return await self._queue.retry(job, error, retry_after=retry_after)

    async def give_up(self, job: ClaimedFetch, error: str) -> None:
        await self._queue.give_up(job, error)


async def test_a_worker_that_stops_renewing_loses_the_job_and_stops_without_deleting(
    service: RunningService, twilio: FakeTwilio
) -> None:
    queue = short_leases(service)
    await queue_recording(queue, twilio, "RE-taken")
    twilio.scripts["RE-taken"] = ["slow:4", "serve"]  # the first download is very slow
    frozen = FrozenRenewals(queue)
    stalled, taker = workers(service, frozen, count=1), workers(service, queue, count=1)
    loop = asyncio.get_running_loop()
    claimed_at = loop.time()
    stalled_work = asyncio.create_task(stalled.work_one())
    try:
        await eventually(lambda: _true(requests(twilio, "GET") > 0))  # it is downloading
        assert not await taker.work_one()  # held: nobody else may take it
        await eventually(taker.work_one)
        assert loop.time() - claimed_at >= LEASE.total_seconds()  # only once it ran out

        # The stalled worker's next renewal finds the job claimed again: it stops at
        # once rather than finishing its download, and deletes nothing.
        frozen.thawed.set()
        assert await asyncio.wait_for(stalled_work, 1.5) is True
    finally:
        stalled_work.cancel()
        await stalled.stop()
        await taker.stop()

    job = await service.fetch_job("RE-taken")
    assert job is not None
    assert (job.state, job.attempts) == ("done", 2)
    assert twilio.served == ["RE-taken"]  # the taker's download; the first never finished
    assert (requests(twilio, "GET"), requests(twilio, "DELETE")) == (2, 1)
    assert await copies_deleted(service) == 1


class UnreachableRenewals(FrozenRenewals):
    """A worker cut off from the database for its renewals: each one fails at once."""

    async def renew(self, job: ClaimedFetch) -> datetime | None:
        raise DatabaseUnavailable("the database is out of reach")


async def test_a_worker_that_cannot_renew_stops_once_its_lease_has_run_out(
    service: RunningService, twilio: FakeTwilio
) -> None:
    queue = short_leases(service)
    await queue_recording(queue, twilio, "RE-cut-off")
    twilio.scripts["RE-cut-off"] = ["slow:4"]
    cut_off = workers(service, UnreachableRenewals(queue), count=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        # It cannot show the job is still its own: it stops soon after the lease ends,
        # rather than finishing the download and deleting what another may be fetching.
        assert await asyncio.wait_for(cut_off.work_one(), 2.0) is True
    finally:
        await cut_off.stop()
    assert LEASE.total_seconds() <= loop.time() - started
    assert twilio.served == []
    assert twilio.deleted == []
    job = await service.fetch_job("RE-cut-off")
    assert job is not None
    assert (job.state, job.attempts) == ("running", 1)  # left to its lease, for another
