"""Sweeps on several replicas at once count each deletion once, by the replica that finished
it: in the sweep's report, its audit event and the deletion metric, on one PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from config.jobs import JobMetrics, retention_job
from config.metrics import IntegrityMetrics, RetentionMetrics
from config.services import Services, build_services
from config.settings import Settings
from retention import RETENTION_REASON
from storage import RETENTION_ACTOR, RecordingDeleter
from storage.db.models import AuditEvent, Recording
from tests.clock import FakeClock
from tests.key_support import PERIOD, store_recording

pytestmark = pytest.mark.postgres
DUE = 9
REPLICAS = 3
START = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def replicas(tmp_path: Path, postgres_url: str) -> AsyncIterator[list[Services]]:
    """Three services on one database, each with its own clock reading the same time."""
    settings = Settings(data_dir=tmp_path / "var", database_url=postgres_url, single_node=True)
    built = [build_services(settings, clock=FakeClock(START)) for _ in range(REPLICAS)]
    try:
        for n in range(DUE):
            await store_recording(built[0], f"due-{n}", START, b"call audio" * 50)
        for replica in built:
            clock = replica.clock
            assert isinstance(clock, FakeClock)
            clock.advance(PERIOD + timedelta(hours=1))
        yield built
    finally:
        for replica in built:
            await replica.close()


class Deleter(RecordingDeleter):
    """A replica's deleter with hooks that hold it at one point while another moves on."""

    def __init__(self, replica: Services) -> None:
        super().__init__(
            database=replica.database,
            objects=replica.objects,
            audit=replica.audit,
            receipts=replica.receipt_signer,
            clock=replica.clock,
        )
        self.after_unfinished: asyncio.Barrier | None = None
        self.batch: int | None = None
        self.holding = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def unfinished(self, *, limit: int) -> list[uuid.UUID]:
        found = await super().unfinished(limit=limit)
        if self.after_unfinished is not None:
            barrier, self.after_unfinished = self.after_unfinished, None
            await barrier.wait()
        return found

    async def begin(
        self, before: datetime, *, now: datetime, limit: int, actor: str, reason: str
    ) -> list[uuid.UUID]:
        limit = min(limit, self.batch or limit)
        return await super().begin(before, now=now, limit=limit, actor=actor, reason=reason)

    async def finish_many(self, recording_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        if self.release is not None:
            release, self.release = self.release, None
            self.holding.set()
            await release.wait()
        return await super().finish_many(recording_ids)


def deleter_of(replica: Services) -> Deleter:
    deleter = Deleter(replica)
    replica.provide(deleter=deleter)  # the replica's jobs use this one
    return deleter


def fresh_metrics() -> JobMetrics:
    registry = CollectorRegistry()
    return JobMetrics(retention=RetentionMetrics(registry), integrity=IntegrityMetrics(registry))


def deleted_metric(metrics: JobMetrics) -> float:
    """The deletion counter as a scrape reads it."""
    (family,) = [m for m in metrics.retention.deleted.collect()]
    return sum(s.value for s in family.samples if s.name == "callrec_retention_deleted_total")


async def counted_by_sweep_events(replica: Services) -> int:
    async with replica.database.read() as session:
        details = (
            await session.execute(
                select(AuditEvent.details).where(AuditEvent.action == "retention.sweep")
            )
        ).scalars()
        return sum(int(d["deleted"]) + int(d["resumed"]) for d in details)


async def receipts_and_deleted(replica: Services) -> tuple[int, int]:
    async with replica.database.read() as session:
        receipts = (
            await session.execute(
                select(func.count()).where(AuditEvent.action == "recording.deleted")
            )
        ).scalar_one()
        deleted = (
            await session.execute(select(func.count()).where(Recording.state == "deleted"))
        ).scalar_one()
    return int(receipts), int(deleted)


async def test_replicas_restarted_together_count_each_resumed_deletion_once(
    replicas: list[Services],
) -> None:
    deleters = [deleter_of(replica) for replica in replicas]
    # A sweep destroyed the keys of every due recording, then every replica went down.
    first = replicas[0]
    begun = await deleters[0].begin(
        first.clock() + timedelta(minutes=1),
        now=first.clock(),
        limit=DUE,
        actor=RETENTION_ACTOR,
        reason=RETENTION_REASON,
    )
    assert len(begun) == DUE
    # Restarted together: every replica has read the same unfinished list before any
    # of them finishes one.
    together = asyncio.Barrier(REPLICAS)
    for deleter in deleters:
        deleter.after_unfinished = together
    metrics = [fresh_metrics() for _ in replicas]

    await asyncio.gather(*(retention_job(r, m) for r, m in zip(replicas, metrics, strict=True)))

    assert sum(deleted_metric(m) for m in metrics) == DUE
    assert await counted_by_sweep_events(first) == DUE
    assert await receipts_and_deleted(first) == (DUE, DUE)


async def test_a_deletion_begun_by_one_sweep_and_finished_by_another_counts_once(
    replicas: list[Services],
) -> None:
    slow = deleter_of(replicas[0])
    slow.batch = 3
    release = slow.release = asyncio.Event()  # it stops between destroying keys and finishing
    metrics = [fresh_metrics(), fresh_metrics()]
    held = asyncio.create_task(retention_job(replicas[0], metrics[0]))
    await asyncio.wait_for(slow.holding.wait(), 10)

    # The other replica's sweep finds the three half-done and finishes them with the rest.
    await retention_job(replicas[1], metrics[1])
    release.set()
    await held

    assert [deleted_metric(m) for m in metrics] == [0, DUE]
    assert await counted_by_sweep_events(replicas[0]) == DUE
    assert await receipts_and_deleted(replicas[0]) == (DUE, DUE)
