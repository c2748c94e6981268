"""Dead letters: each one logged at error level, revived by a repeated callback, retried or
discarded (with a reason) by an operator, every change audited."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storage import AuditTrail, Database, FetchQueue, create_engine, verify_audit_chain
from storage.db.job_models import FetchJob
from storage.db.models import AuditEvent
from tests.clock import FakeClock

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CALLER = "+441384000001"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(create_engine(database_url))
    yield db
    await db.dispose()


def queue_on(database: Database) -> FetchQueue:
    clock = FakeClock(START)
    return FetchQueue(database=database, audit=AuditTrail(clock), clock=clock, max_attempts=1)


async def bury(queue: FetchQueue, external_id: str = "RE1") -> uuid.UUID:
    """Queue a job and let its only attempt fail: a dead letter."""
    await queue.enqueue(
        provider="twilio",
        external_id=external_id,
        url=f"https://api.twilio.com/Recordings/{external_id}",
        details={"from": CALLER},
        actor="source:twilio",
    )
    job = await queue.claim()
    assert job is not None
    assert not await queue.retry(job, "the provider answered 500")
    return job.id


async def audited(database: Database) -> list[tuple[str, str, dict[str, object]]]:
    async with database.read() as session:
        assert await verify_audit_chain(session) > 0
        rows = await session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.details).order_by(AuditEvent.seq)
        )
        return [(actor, action, details or {}) for actor, action, details in rows]


async def test_each_dead_letter_is_logged_as_an_error_without_the_callbacks_details(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    queue = queue_on(database)
    with caplog.at_level(logging.INFO, logger="storage"):
        job_id = await bury(queue)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR
    assert "dead-lettered" in record.getMessage()
    assert (record.job, record.provider, record.attempts) == (str(job_id), "twilio", 1)  # type: ignore[attr-defined]
    assert "500" in record.error  # type: ignore[attr-defined]
    assert CALLER not in str(record.__dict__)
    assert "api.twilio.com" not in str(record.__dict__)


async def test_a_repeated_callback_revives_a_dead_job_with_what_it_says(
    database: Database,
) -> None:
    queue = queue_on(database)
    job_id = await bury(queue)
    again = await queue.enqueue(
        provider="twilio",
        external_id="RE1",
        url="https://api.twilio.com/Recordings/RE1.mp3",
        details={"team": "mash-children"},
        actor="source:twilio",
    )
    assert (again.id, again.created, again.state) == (job_id, False, "queued")
    job = await queue.claim()
    assert job is not None
    assert (job.id, job.attempt, job.url) == (
        job_id,
        1,
        "https://api.twilio.com/Recordings/RE1.mp3",
    )
    assert job.details == {"team": "mash-children"}
    assert [action for _, action, _ in await audited(database)][-1] == "fetch.revived"


async def test_an_operator_retries_one_dead_job_or_all_of_them(database: Database) -> None:
    queue = queue_on(database)
    first = await bury(queue, "RE1")
    await bury(queue, "RE2")
    assert await queue.dead.retry(first, actor="cli")
    assert not await queue.dead.retry(first, actor="cli")  # no longer dead
    assert not await queue.dead.retry(uuid.uuid4(), actor="cli")
    assert (await queue.counts())["dead"] == 1
    assert await queue.dead.retry_all(actor="cli") == 1
    counts = await queue.counts()
    assert (counts["dead"], counts["queued"]) == (0, 2)
    retried = [
        (actor, details["id"])
        for actor, action, details in await audited(database)
        if action == "fetch.retried"
    ]
    assert retried == [("cli", "RE1"), ("cli", "RE2")]


async def test_a_discarded_job_keeps_its_reason_forgets_its_details_and_stays_given_up(
    database: Database,
) -> None:
    queue = queue_on(database)
    job_id = await bury(queue)
    reason = "provider confirmed the recording was never made"
    assert await queue.dead.discard(job_id, actor="cli", reason=reason)
    assert not await queue.dead.discard(job_id, actor="cli", reason=reason)
    counts = await queue.counts()
    assert (counts["dead"], counts["discarded"]) == (0, 1)
    assert await queue.dead_letters() == []
    async with database.read() as session:
        row = await session.get(FetchJob, job_id)
        assert row is not None
        assert row.details is None
    (discard,) = [
        details for _, action, details in await audited(database) if action == "fetch.discarded"
    ]
    assert (discard["job"], discard["reason"]) == (str(job_id), reason)
    # A late repeat of the callback neither revives nor requeues it.
    late = await queue.enqueue(
        provider="twilio",
        external_id="RE1",
        url="https://api.twilio.com/Recordings/RE1",
        details={},
        actor="source:twilio",
    )
    assert (late.id, late.state) == (job_id, "discarded")
    assert await queue.claim() is None


async def test_a_job_retried_after_its_details_were_forgotten_keeps_its_calls_age(
    database: Database,
) -> None:
    clock = FakeClock(START)
    queue = FetchQueue(database=database, audit=AuditTrail(clock), clock=clock, max_attempts=1)
    job_id = await bury(queue)
    clock.now = START + timedelta(days=91)
    await queue.forget_details(before=clock.now - timedelta(days=90))
    assert await queue.dead.retry(job_id, actor="cli")
    job = await queue.claim()
    assert job is not None
    # Dated from the callback's arrival, not from the retry: past the retention period.
    assert job.details == {"started_at": START.isoformat(), "started_at_estimated": True}
