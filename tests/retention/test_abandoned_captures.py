"""Captures that never finished are reaped by every retention cycle, not only at start-up:
a pending row (with the call's phone numbers) goes with its objects once its grace is
over, or at once when its recording falls due, audited; until then the attestation, the
status and the overdue metric count it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from config.metrics import RetentionMetrics
from config.services import Services
from retention import CycleReport, attest, retention_status, run_retention_cycle
from storage import (
    RECORDINGS_PREFIX,
    AudioFacts,
    EncryptedSpool,
    NewRecording,
    ObjectStore,
    RecordingStore,
    SealedFileWriter,
    StoreUnavailable,
)
from storage.db.models import AuditEvent, Recording
from tests.retention.parts import clock_of

HORIZON = timedelta(minutes=20)
PERIOD = timedelta(days=90)
AUDIO = AudioFacts("wav", "pcm_s16le", 8000, 1, 1.0, "audio/wav")
CALLER, CALLED = "+447700900123", "+441632960001"


class StoreOutage:
    """The service's store in an outage that began after the capture's first upload."""

    def __init__(self, inner: ObjectStore, *, puts_allowed: int = 0) -> None:
        self._inner = inner
        self._puts_allowed = puts_allowed

    async def put_file(
        self, key: str, path: Path, *, tags: Mapping[str, str] | None = None
    ) -> str | None:
        if self._puts_allowed <= 0:
            raise StoreUnavailable("the store is down")
        self._puts_allowed -= 1
        return await self._inner.put_file(key, path, tags=tags)

    async def delete(self, key: str) -> None:
        raise StoreUnavailable("the store is down")


def store_in(services: Services, objects: Any) -> RecordingStore:
    return RecordingStore(
        database=services.database,
        objects=objects,
        keys=services.keys,
        audit=services.audit,
        clock=services.clock,
    )


async def push_during_outage(services: Services, tmp_path: Path, started: datetime) -> None:
    """A capture (original and rendition) refused with 503: its original reached the
    store, its rendition did not, and the clean-up could not reach the store either."""
    spool = EncryptedSpool(services.spool.path)
    await spool.write(b"RIFF call audio " * 64)
    await spool.finish()
    rendition = SealedFileWriter(tmp_path / "rendition.spool", "audio/webm")
    rendition.write(b"\x1a\x45\xdf\xa3 rendition")
    store = store_in(services, StoreOutage(services.objects, puts_allowed=1))
    with pytest.raises(StoreUnavailable):
        await store.store_capture(
            spool,
            NewRecording(
                source="pbx",
                source_recording_id="call-in-outage",
                started_at=started,
                retention_deadline=started + PERIOD,
                from_number=CALLER,
                to_number=CALLED,
                agent="staff-0421",
            ),
            AUDIO,
            actor="source:pbx",
            rendition=rendition.seal(),
        )
    await spool.discard()


async def pending(services: Services) -> list[Recording]:
    async with services.database.read() as session:
        return list((await session.execute(select(Recording))).scalars())


@dataclass(frozen=True)
class Reaped:
    """One ``recording.capture_abandoned`` event."""

    recording_id: uuid.UUID | None
    outcome: str
    details: dict[str, Any]


async def reaped_events(services: Services) -> list[Reaped]:
    async with services.database.read() as session:
        events = (
            await session.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "recording.capture_abandoned")
                .order_by(AuditEvent.seq)
            )
        ).scalars()
        return [Reaped(e.recording_id, e.outcome, dict(e.details or {})) for e in events]


async def stored_keys(services: Services) -> list[str]:
    return [key async for key in services.objects.iter_keys(RECORDINGS_PREFIX)]


async def cycle(services: Services, captures: RecordingStore | None = None) -> CycleReport:
    return await run_retention_cycle(
        services.deleter,
        captures or services.recordings,
        services.fetch_queue,
        services.keys,
        clock=services.clock,
        horizon=HORIZON,
        period=PERIOD,
    )


async def test_a_capture_abandoned_in_a_store_outage_is_reaped_by_the_next_cycle(
    services: Services, tmp_path: Path
) -> None:
    clock = clock_of(services)
    await push_during_outage(services, tmp_path, clock.now - timedelta(minutes=3))
    (row,) = await pending(services)
    assert (row.state, row.from_number, len(row.objects)) == ("pending", CALLER, 2)
    assert len(await stored_keys(services)) == 1

    # Within its grace it could be a capture still uploading: the cycle leaves it.
    clock.advance(timedelta(minutes=5))
    assert (await cycle(services)).captures_reaped == 0
    assert len(await pending(services)) == 1

    clock.advance(timedelta(minutes=15))
    report = await cycle(services)

    assert report.captures_reaped == 1
    assert await pending(services) == []
    assert await stored_keys(services) == []
    (event,) = await reaped_events(services)
    assert event.recording_id == row.id
    assert event.details["reason"] == "abandoned"
    assert (event.details["objects"], event.details["objects_removed"]) == (2, True)
    assert CALLER not in str(event.details)


async def test_a_pending_capture_past_its_deadline_is_overdue_until_reaped_whatever_its_age(
    services: Services, tmp_path: Path
) -> None:
    clock = clock_of(services)
    # A late delivery of a call whose deadline is two minutes away.
    await push_during_outage(services, tmp_path, clock.now - PERIOD + timedelta(minutes=2))
    clock.advance(timedelta(minutes=5))  # past its deadline, well inside its grace
    now = clock.now

    facts = await services.deleter.facts(now=now, cutoff=now)
    registry = CollectorRegistry()
    RetentionMetrics(registry).show(facts, now)
    assert registry.get_sample_value("callrec_retention_overdue_recordings") == 1
    status = await retention_status(
        services.deleter, now=now, interval=HORIZON, margin=timedelta(0), period=PERIOD
    )
    assert status["overdue"] == 1
    attestation = await attest(services.deleter, now=now, window=timedelta(days=1))
    assert attestation["overdue_unheld"] == 1

    report = await cycle(services)

    assert report.captures_reaped == 1
    assert await pending(services) == []
    (event,) = await reaped_events(services)
    assert event.details["reason"] == "past_deadline"
    assert await services.deleter.overdue_unheld(now=clock.now) == 0


async def test_a_store_still_down_at_the_cycle_strips_the_personal_data_now_and_the_objects_later(
    services: Services, tmp_path: Path
) -> None:
    clock = clock_of(services)
    await push_during_outage(services, tmp_path, clock.now)
    clock.advance(timedelta(minutes=20))

    assert (
        await cycle(services, store_in(services, StoreOutage(services.objects)))
    ).captures_reaped == 1
    (row,) = await pending(services)
    assert (row.state, row.from_number, row.to_number, row.agent) == ("pending", None, None, None)
    assert len(await stored_keys(services)) == 1

    # The store is back: the next cycle removes the objects and the row.
    assert (await cycle(services)).captures_reaped == 1
    assert await pending(services) == []
    assert await stored_keys(services) == []
    events = await reaped_events(services)
    assert [(e.outcome, e.details["objects_removed"]) for e in events] == [
        ("error", False),
        ("allow", True),
    ]
    assert all(e.recording_id == row.id for e in events)
