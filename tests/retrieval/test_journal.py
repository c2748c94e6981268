"""Listening sessions: opened before the first byte, written when quiet, never lost to an outage."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from retrieval import PlaybackJournal
from storage import AuditRecord, DatabaseUnavailable
from tests.clock import FakeClock

GRANT = uuid.uuid4()
RECORDING = uuid.uuid4()


class Trail:
    """An audit sink that can be switched off, as the database can."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self.down = False

    async def record(self, record: AuditRecord) -> None:
        if self.down:
            raise DatabaseUnavailable("down")
        self.records.append(record)


async def open_session(journal: PlaybackJournal) -> None:
    await journal.start(GRANT, actor="idp|sup-1", recording_id=RECORDING, purpose="quality_review")


async def test_the_session_opens_once_and_is_written_when_quiet() -> None:
    trail, clock = Trail(), FakeClock()
    journal = PlaybackJournal(trail, clock=clock.monotonic, idle_s=30)
    await open_session(journal)
    await open_session(journal)
    await journal.played(GRANT, 0, 100, (0.0, 1.0))
    await journal.played(GRANT, 100, 200, (1.0, 2.0))
    await journal.flush()
    assert [r.action for r in trail.records] == ["recording.play_open"]
    clock.advance(timedelta(seconds=31))
    await journal.flush()
    played = trail.records[-1]
    assert played.action == "recording.played"
    assert played.details == {
        "grant": str(GRANT),
        "ranges": [[0, 200]],
        "seconds": [[0.0, 2.0]],
        "requests": 2,
    }


async def test_a_failed_open_refuses_playback() -> None:
    trail = Trail()
    trail.down = True
    journal = PlaybackJournal(trail)
    with pytest.raises(DatabaseUnavailable):
        await open_session(journal)


async def test_ranges_survive_an_outage_and_are_written_when_it_ends() -> None:
    trail, clock = Trail(), FakeClock()
    journal = PlaybackJournal(trail, clock=clock.monotonic, idle_s=30)
    await open_session(journal)
    await journal.played(GRANT, 0, 100, None)
    clock.advance(timedelta(seconds=60))
    trail.down = True
    await journal.flush()
    trail.down = False
    await journal.flush()
    assert [r.action for r in trail.records] == ["recording.play_open", "recording.played"]


async def test_a_long_session_is_written_in_parts() -> None:
    trail = Trail()
    journal = PlaybackJournal(trail, max_ranges=3)
    await open_session(journal)
    for n in range(7):
        await journal.played(GRANT, n * 1000, n * 1000 + 10, None)
    await journal.flush(idle_only=False)
    parts = [r.details["requests"] for r in trail.records if r.details and "requests" in r.details]
    assert parts == [3, 3, 1]
