"""One retention cycle through its public interface: sweep, attest, forget, shred, report."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from config.services import Services
from retention import CycleReport, run_retention_cycle
from storage import KeyringError, RecordingDeleter, ShredReport
from storage.db.job_models import FetchJob
from storage.db.models import AuditEvent, Recording
from tests.key_support import store_recording
from tests.retention.parts import clock_of

HORIZON = timedelta(minutes=20)
PERIOD = timedelta(days=90)


async def state(services: Services, recording_id: uuid.UUID) -> str:
    async with services.database.read() as session:
        row = await session.get(Recording, recording_id)
        assert row is not None
        return str(row.state)


async def queue_fetch(services: Services, external_id: str) -> uuid.UUID:
    queued = await services.fetch_queue.enqueue(
        provider="twilio",
        external_id=external_id,
        url=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/{external_id}",
        details={"referral": "MASH-2026-000001"},
        actor="source:twilio",
    )
    return queued.id


async def fetch_details(services: Services, job_id: uuid.UUID) -> object:
    async with services.database.read() as session:
        row = await session.get(FetchJob, job_id)
        assert row is not None
        return row.details


async def cycle(services: Services, *, dry_run: bool = False) -> CycleReport:
    return await run_retention_cycle(
        services.deleter,
        services.recordings,
        services.fetch_queue,
        services.keys,
        clock=services.clock,
        horizon=HORIZON,
        period=PERIOD,
        dry_run=dry_run,
    )


async def test_a_cycle_sweeps_attests_forgets_old_fetch_details_and_shreds_spent_weeks(
    services: Services,
) -> None:
    clock = clock_of(services)
    started = clock.now - timedelta(hours=1)
    old = await store_recording(services, "old", started, b"old call" * 64)
    fresh = await store_recording(services, "fresh", started + timedelta(days=30), b"x" * 512)
    job = await queue_fetch(services, "RE-old")

    clock.now = started + PERIOD + timedelta(hours=2)
    report = await cycle(services)

    assert report.sweep.deleted_count == 1
    assert (await state(services, old), await state(services, fresh)) == ("deleted", "stored")
    assert report.attestation is not None
    assert report.overdue_unheld == 0
    # The job was last touched over ninety days ago: past the period, so forgotten.
    assert report.details_forgotten == 1
    assert await fetch_details(services, job) is None
    assert report.shred is not None
    assert report.shred_error is None
    async with services.database.read() as session:
        actions = set((await session.execute(select(AuditEvent.action))).scalars())
    assert {"retention.sweep", "retention.attestation", "recording.deleted"} <= actions

    # A day has not passed: the next cycle sweeps but does not attest again.
    clock.advance(timedelta(hours=1))
    again = await cycle(services)
    assert again.attestation is None
    assert again.sweep.deleted_count == 0


async def test_fetch_details_younger_than_the_period_are_kept(services: Services) -> None:
    clock = clock_of(services)
    job = await queue_fetch(services, "RE-young")
    clock.advance(PERIOD - timedelta(days=1))
    report = await cycle(services)
    assert report.details_forgotten == 0
    assert await fetch_details(services, job) == {"referral": "MASH-2026-000001"}


async def test_a_dry_run_lists_what_is_due_and_changes_nothing(services: Services) -> None:
    clock = clock_of(services)
    started = clock.now - timedelta(hours=1)
    recording = await store_recording(services, "due", started, b"due call" * 64)
    job = await queue_fetch(services, "RE-kept")
    clock.now = started + PERIOD

    report = await cycle(services, dry_run=True)

    assert [due.id for due in report.sweep.due] == [recording]
    assert report.attestation is None
    assert report.shred is None
    assert await state(services, recording) == "stored"
    assert await fetch_details(services, job) is not None


class Unreachable:
    """Epoch keys whose key service is out of reach."""

    async def shred_spent_epochs(self) -> ShredReport:
        raise KeyringError("the key service did not answer")


class NoFetches:
    async def forget_details(self, *, before: datetime) -> int:
        return 0


async def test_a_failed_shred_is_reported_and_the_deletions_stand(services: Services) -> None:
    clock = clock_of(services)
    started = clock.now - timedelta(hours=1)
    recording = await store_recording(services, "gone", started, b"gone" * 128)
    clock.now = started + PERIOD
    deleter: RecordingDeleter = services.deleter

    report = await run_retention_cycle(
        deleter,
        services.recordings,
        NoFetches(),
        Unreachable(),
        clock=clock,
        horizon=HORIZON,
        period=PERIOD,
    )

    assert isinstance(report.shred_error, KeyringError)
    assert report.shred is None
    assert report.sweep.deleted_count == 1
    assert report.attestation is not None
    assert await state(services, recording) == "deleted"
