"""Storing a capture: a failure at any step leaves nothing visible, and the reaper finishes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import (
    ORIGINAL,
    PLAYBACK,
    RECORDINGS_PREFIX,
    AudioFacts,
    AuditTrail,
    CaptureInProgress,
    Database,
    DatabaseUnavailable,
    EncryptedSpool,
    EpochKeys,
    FilesystemObjectStore,
    NewRecording,
    PeakReader,
    Peaks,
    RecordingAudio,
    RecordingStore,
    SealedFileWriter,
    StoreUnavailable,
    create_engine,
    create_sessionmaker,
)
from storage.db.models import AuditEvent, Recording, RecordingState, Referral
from storage.db.repository import RecordingRepository
from storage.keys.key_shares import share_key_for
from storage.keys.keyring import WrappedKey
from tests.clock import FakeClock
from tests.key_support import local_epoch_keys

AUDIO = AudioFacts("wav", "pcm_s16le", 8000, 1, 1.0, "audio/wav")


@dataclass
class Harness:
    engine: AsyncEngine
    objects: FilesystemObjectStore
    keys: EpochKeys
    clock: FakeClock
    spool_dir: Path

    def store(self, *, objects: object = None, keys: object = None) -> RecordingStore:
        return RecordingStore(
            database=Database(self.engine),
            objects=objects or self.objects,  # type: ignore[arg-type]
            keys=keys or self.keys,  # type: ignore[arg-type]
            audit=AuditTrail(self.clock),
            clock=self.clock,
        )

    async def spool(self, payload: bytes = b"RIFF audio bytes" * 100) -> EncryptedSpool:
        spool = EncryptedSpool(self.spool_dir)
        await spool.write(payload)
        await spool.finish()
        return spool

    async def rows_and_events(self) -> tuple[int, int]:
        async with create_sessionmaker(self.engine)() as session:
            rows = (await session.execute(select(func.count(Recording.id)))).scalar_one()
            # The recording's own events (creating an epoch key is audited too).
            events = (
                await session.execute(
                    select(func.count(AuditEvent.seq)).where(AuditEvent.action.like("recording.%"))
                )
            ).scalar_one()
        return rows, events

    async def object_keys(self) -> list[str]:
        return [key async for key in self.objects.iter_keys(RECORDINGS_PREFIX)]


# What one capture here puts in the store: its original and its key share.
KEYS_PER_CAPTURE = 2


@pytest.fixture
async def harness(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    engine = create_engine(database_url)
    clock = FakeClock(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    keys = local_epoch_keys(Database(engine), tmp_path, clock)
    yield Harness(
        engine,
        FilesystemObjectStore(tmp_path / "objects"),
        keys,
        clock,
        tmp_path / "spool",
    )
    await engine.dispose()


def new_recording(source_id: str = "call-1") -> NewRecording:
    started = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    return NewRecording(
        source="pbx",
        source_recording_id=source_id,
        started_at=started,
        retention_deadline=started + timedelta(days=90),
        referrals=("MASH-2026-000001", "MASH-2026-000001", "MASH-2026-000002"),
    )


class FailingObjects:
    """An object store that is down for writes but otherwise behaves."""

    def __init__(self, inner: FilesystemObjectStore) -> None:
        self._inner = inner

    async def put_file(
        self, key: str, path: Path, *, tags: Mapping[str, str] | None = None
    ) -> str | None:
        raise StoreUnavailable("the store is down")

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)


class FailingKeys:
    """A key provider (a KMS, later) that stops answering after the object is written."""

    current_kek_id = "unreachable"

    async def wrap(self, dek: bytes, object_id: uuid.UUID, *, started_at: datetime) -> WrappedKey:
        raise DatabaseUnavailable("the key service is down")

    async def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        raise AssertionError("not used")


async def test_a_stored_capture_has_its_row_object_key_links_and_audit_event(
    harness: Harness,
) -> None:
    spool = await harness.spool()
    outcome = await harness.store().store_capture(spool, new_recording(), AUDIO, actor="source:pbx")
    assert outcome.created
    async with create_sessionmaker(harness.engine)() as session:
        row = await session.get(Recording, outcome.recording_id)
    assert row is not None
    assert row.state == RecordingState.STORED
    assert [r.reference for r in row.referrals] == ["MASH-2026-000001", "MASH-2026-000002"]
    assert row.objects[0].data_key is not None
    assert sorted(await harness.object_keys()) == sorted(
        [row.objects[0].object_key, share_key_for(row.id)]
    )
    assert await harness.rows_and_events() == (1, 1)


async def test_an_unavailable_store_leaves_no_row(harness: Harness) -> None:
    spool = await harness.spool()
    store = harness.store(objects=FailingObjects(harness.objects))
    with pytest.raises(StoreUnavailable):
        await store.store_capture(spool, new_recording(), AUDIO, actor="source:pbx")
    assert await harness.rows_and_events() == (0, 0)
    assert await harness.object_keys() == []


async def test_a_failure_after_the_object_is_written_removes_object_and_row(
    harness: Harness,
) -> None:
    spool = await harness.spool()
    store = harness.store(keys=FailingKeys())
    with pytest.raises(DatabaseUnavailable):
        await store.store_capture(spool, new_recording(), AUDIO, actor="source:pbx")
    assert await harness.rows_and_events() == (0, 0)
    assert await harness.object_keys() == []


async def test_a_second_capture_of_the_same_source_id_returns_the_first(harness: Harness) -> None:
    store = harness.store()
    first = await store.store_capture(
        await harness.spool(), new_recording(), AUDIO, actor="source:pbx"
    )
    second = await store.store_capture(
        await harness.spool(), new_recording(), AUDIO, actor="source:pbx"
    )
    assert (first.created, second.created) == (True, False)
    assert second.recording_id == first.recording_id
    assert await harness.rows_and_events() == (1, 1)
    assert len(await harness.object_keys()) == KEYS_PER_CAPTURE


async def test_the_reaper_removes_captures_abandoned_mid_way_and_their_objects(
    harness: Harness,
) -> None:
    # A capture that claimed its id and wrote its object, then the process died.
    spool = await harness.spool()
    dying = harness.store(keys=FailingKeys())
    dying._release_claim = _do_nothing  # type: ignore[method-assign]
    with pytest.raises(DatabaseUnavailable):
        await dying.store_capture(spool, new_recording(), AUDIO, actor="source:pbx")
    assert await harness.rows_and_events() == (1, 0)
    assert len(await harness.object_keys()) == KEYS_PER_CAPTURE
    store = harness.store()
    # Too young to be called abandoned: it could still be a capture in progress.
    assert await store.reap_abandoned_captures(older_than=timedelta(hours=1)) == 0

    harness.clock.now += timedelta(hours=2)
    assert await store.reap_abandoned_captures(older_than=timedelta(hours=1)) == 1
    assert await harness.rows_and_events() == (0, 1)  # gone, and its removal audited
    assert await harness.object_keys() == []
    # ...and the source can deliver the recording again.
    again = await store.store_capture(
        await harness.spool(), new_recording(), AUDIO, actor="source:pbx"
    )
    assert again.created


async def _do_nothing(*_args: object, **_kwargs: object) -> None:
    return None


async def test_concurrent_captures_sharing_new_referrals_in_any_order_all_succeed(
    harness: Harness,
) -> None:
    store = harness.store()
    orders = [("MASH-R1", "MASH-R2", "MASH-R3"), ("MASH-R3", "MASH-R2", "MASH-R1")] * 4

    async def capture(index: int, referrals: tuple[str, ...]) -> bool:
        spool = await harness.spool()
        recording = dataclasses.replace(new_recording(f"call-{index}"), referrals=referrals)
        return (await store.store_capture(spool, recording, AUDIO, actor="source:pbx")).created

    results = await asyncio.gather(*(capture(n, order) for n, order in enumerate(orders)))
    assert all(results)
    async with harness_reads(harness) as session:
        references = (await session.execute(select(Referral.reference))).scalars().all()
    assert sorted(references) == ["MASH-R1", "MASH-R2", "MASH-R3"]


async def test_a_redelivery_takes_over_a_capture_abandoned_long_ago(harness: Harness) -> None:
    dying = harness.store(keys=FailingKeys())
    dying._release_claim = _do_nothing  # type: ignore[method-assign]
    with pytest.raises(DatabaseUnavailable):
        await dying.store_capture(await harness.spool(), new_recording(), AUDIO, actor="s")
    store = harness.store()
    harness.clock.now += timedelta(minutes=20)
    again = await store.store_capture(await harness.spool(), new_recording(), AUDIO, actor="s")
    assert again.created
    # The new capture, and the abandoned one's removal on the record.
    assert await harness.rows_and_events() == (1, 2)
    assert len(await harness.object_keys()) == KEYS_PER_CAPTURE


def harness_reads(harness: Harness) -> Any:
    return Database(harness.engine).read()


async def test_a_finished_capture_is_never_removed_as_abandoned(harness: Harness) -> None:
    store = harness.store()
    outcome = await store.store_capture(
        await harness.spool(), new_recording(), AUDIO, actor="source:pbx"
    )
    async with Database(harness.engine).transaction() as session:
        keys = await RecordingRepository(session).remove_pending(
            outcome.recording_id, received_before=harness.clock.now + timedelta(days=1)
        )
    assert keys == []
    assert await harness.rows_and_events() == (1, 1)
    assert len(await harness.object_keys()) == KEYS_PER_CAPTURE


class TakenOverDuringUpload:
    """An object store under which the pending row is removed while the object uploads,
    as a redelivery's takeover would."""

    def __init__(self, inner: FilesystemObjectStore, engine: AsyncEngine) -> None:
        self._inner = inner
        self._engine = engine

    async def put_file(
        self, key: str, path: Path, *, tags: Mapping[str, str] | None = None
    ) -> str | None:
        version = await self._inner.put_file(key, path, tags=tags)
        async with Database(self._engine).transaction() as session:
            await session.execute(delete(Recording))
        return version

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)


async def test_a_capture_taken_over_mid_upload_stops_without_a_trace(harness: Harness) -> None:
    store = harness.store(objects=TakenOverDuringUpload(harness.objects, harness.engine))
    with pytest.raises(CaptureInProgress):
        await store.store_capture(await harness.spool(), new_recording(), AUDIO, actor="s")
    assert await harness.rows_and_events() == (0, 0)
    assert await harness.object_keys() == []


async def test_playback_serves_the_rendition_and_falls_back_to_the_original_without_one(
    harness: Harness, tmp_path: Path
) -> None:
    store = harness.store()
    original = b"RIFF original bytes " * 50
    writer = SealedFileWriter(tmp_path / "rendition.spool", "audio/webm")
    writer.write(b"\x1a\x45\xdf\xa3 rendition bytes")
    with_rendition = await store.store_capture(
        await harness.spool(original),
        new_recording("with"),
        AUDIO,
        actor="source:pbx",
        rendition=writer.seal(),
        peaks=Peaks(20.0, 1, bytes([1, 2, 3, 4])),
    )
    without = await store.store_capture(
        await harness.spool(original), new_recording("without"), AUDIO, actor="source:pbx"
    )
    audio = RecordingAudio(Database(harness.engine), harness.objects, harness.keys)

    async def served(recording_id: uuid.UUID, kind: str) -> tuple[str, bytes]:
        opened = await audio.open(recording_id, kind)
        assert opened is not None
        return opened.info.content_type, await opened.read(0, opened.info.size)

    assert await served(with_rendition.recording_id, PLAYBACK) == (
        "audio/webm",
        b"\x1a\x45\xdf\xa3 rendition bytes",
    )
    assert (await served(with_rendition.recording_id, ORIGINAL))[1] == original
    # Captured before renditions existed: playback plays the original.
    assert (await served(without.recording_id, PLAYBACK))[1] == original
    assert await PeakReader(Database(harness.engine)).peaks(with_rendition.recording_id) == Peaks(
        20.0, 1, bytes([1, 2, 3, 4])
    )
    assert await PeakReader(Database(harness.engine)).peaks(without.recording_id) is None


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 3 * 2**20 + 5),  # everything, in aligned pieces
        (2**20 - 100, 2**20 + 100),  # small, across a 1 MiB boundary: one read
        (5, 2**20 + 7),  # just over 1 MiB, unaligned at both ends
        (2**20, 2**21),  # exactly one aligned piece
        (3 * 2**20, 3 * 2**20 + 5),  # the short tail
    ],
)
async def test_streamed_ranges_are_exact_in_any_piece_layout(
    harness: Harness, start: int, end: int
) -> None:
    payload = os.urandom(3 * 2**20 + 5)
    stored = await harness.store().store_capture(
        await harness.spool(payload), new_recording(), AUDIO, actor="source:pbx"
    )
    opened = await RecordingAudio(Database(harness.engine), harness.objects, harness.keys).open(
        stored.recording_id, ORIGINAL
    )
    assert opened is not None
    pieces = [piece async for piece in opened.stream(start, end)]
    assert b"".join(pieces) == payload[start:end]
    assert all(len(piece) <= 2**20 + 65536 for piece in pieces)


async def test_a_players_ranges_reuse_the_recordings_state_for_two_seconds_and_its_audio_longer(
    harness: Harness,
) -> None:
    stored = await harness.store().store_capture(
        await harness.spool(), new_recording(), AUDIO, actor="source:pbx"
    )
    audio = RecordingAudio(
        Database(harness.engine), harness.objects, harness.keys, clock=harness.clock.monotonic
    )
    first = await audio.recording(stored.recording_id)
    opened = await audio.open(stored.recording_id, ORIGINAL)
    assert first is not None
    assert first.state == "stored"
    assert opened is not None
    async with harness.engine.begin() as connection:
        await connection.execute(
            update(Recording).where(Recording.id == stored.recording_id).values(state="deleting")
        )

    harness.clock.advance(timedelta(seconds=1.9))
    assert await audio.recording(stored.recording_id) is first
    harness.clock.advance(timedelta(seconds=0.1))
    seen = await audio.recording(stored.recording_id)
    assert seen is not None
    assert seen.state == "deleting"
    assert await audio.open(stored.recording_id, ORIGINAL) is opened
    assert await audio.recording(uuid.uuid4()) is None
