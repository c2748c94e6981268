"""Retention epochs, rotation and re-wrapping, through the service's own parts.

Recordings are stored and played through the same objects the service uses; ninety days
pass on a fake clock. What must hold: a week's key is destroyed once its recordings are
gone (held ones moved to the hold key first), after which a database backup taken before
cannot open any of that week's keys; rotation and re-wrapping never touch audio and never
leave a recording unplayable; old keys go only when nothing uses them.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, select, update

from config.services import Services, build_services
from config.settings import Settings
from retention import sweep_expired_recordings
from storage import (
    ORIGINAL,
    KeyringError,
    RecordingAudio,
    epoch_of,
)
from storage.db.models import AuditEvent, DataKey, EpochKey, StoredObject
from storage.keys.keyring import WrappedKey
from tests.clock import FakeClock
from tests.key_support import store_recording

WEEK_23 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # a Monday: 2026-W23


@asynccontextmanager
async def service_parts(
    data_dir: Path, database_url: str, clock: Callable[[], datetime]
) -> AsyncIterator[Services]:
    """The service's parts without its HTTP server: a process of its own, in effect."""
    services = build_services(
        Settings(data_dir=data_dir, database_url=database_url, single_node=True), clock=clock
    )
    try:
        yield services
    finally:
        await services.close()


def payload(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest() * 200


async def capture(services: Services, name: str, started_at: datetime) -> uuid.UUID:
    return await store_recording(services, name, started_at, payload(name))


async def plays(services: Services, recording_id: uuid.UUID, name: str) -> bool:
    """Opened afresh (no kept objects), read to the end, and exactly what was captured."""
    audio = RecordingAudio(services.database, services.objects, services.keys)
    opened = await audio.open(recording_id, ORIGINAL)
    return opened is not None and await opened.read(0, opened.info.size) == payload(name)


async def wrapped_keys(
    services: Services, epoch: str | None = None
) -> list[tuple[WrappedKey, uuid.UUID]]:
    """Every data key row (of one epoch's keys, if given), as a backup would hold them."""
    async with services.database.read() as session:
        query = select(DataKey.kek_id, DataKey.wrapped, DataKey.object_id).outerjoin(
            EpochKey, EpochKey.id == DataKey.kek_id
        )
        if epoch is not None:
            query = query.where(EpochKey.epoch == epoch)
        rows = (await session.execute(query)).all()
    return [(WrappedKey(kek_id, blob), object_id) for kek_id, blob, object_id in rows]


async def actions(services: Services, action: str) -> list[AuditEvent]:
    async with services.database.read() as session:
        return list(
            (await session.execute(select(AuditEvent).where(AuditEvent.action == action)))
            .scalars()
            .all()
        )


async def test_a_spent_week_loses_its_key_and_an_earlier_backup_cannot_open_its_keys(
    tmp_path: Path, database_url: str, database_backup: Callable[[str], Awaitable[str]]
) -> None:
    data_dir = tmp_path / "var"
    clock = FakeClock(WEEK_23 + timedelta(days=21))
    async with service_parts(data_dir, database_url, clock) as services:
        gone = {
            f"gone-{n}": await capture(services, f"gone-{n}", WEEK_23 + timedelta(days=n))
            for n in range(3)
        }
        held = await capture(services, "held", WEEK_23 + timedelta(days=4))
        later = await capture(services, "later", WEEK_23 + timedelta(days=14))
        status = await services.keys.status()
        assert {(key.epoch, key.data_keys) for key in status.epoch_keys} == {
            ("2026-W23", 4),
            ("2026-W25", 1),
        }

        backup_url = await database_backup(database_url)
        # The backup is a working one: while the week's key lives, it opens every key.
        async with service_parts(data_dir, backup_url, clock) as restored:
            before = await wrapped_keys(restored, "2026-W23")
            assert len(before) == 4
            for wrapped, object_id in before:
                assert len(await restored.keys.unwrap(wrapped, object_id)) == 32

        clock.now = WEEK_23 + timedelta(days=85)
        await services.holds.place(
            held,
            kind="staff_safety_incident",
            reason="incident review",
            review_by=clock.now + timedelta(days=30),
            actor="safety",
        )
        # The week ends on 2026-06-08; its last deadline is 90 days later, and a day's grace.
        clock.now = datetime(2026, 9, 7, 0, 1, tzinfo=UTC)
        swept = await sweep_expired_recordings(
            services.deleter, now=clock.now, horizon=timedelta(minutes=20)
        )
        assert set(swept.deleted) == set(gone.values())  # exactly the unheld three
        shred = await services.keys.shred_spent_epochs()
        assert shred.destroyed == ["2026-W23"]
        assert shred.moved_to_hold == 1

        assert await plays(services, held, "held")
        assert await plays(services, later, "later")
        (moved,) = await actions(services, "keys.moved_to_hold")
        assert moved.recording_id == held
        assert moved.details is not None
        assert moved.details["epoch"] == "2026-W23"
        (destroyed,) = await actions(services, "keys.epoch_key_destroyed")
        assert destroyed.details is not None
        assert destroyed.details["epoch"] == "2026-W23"
        assert destroyed.details["key_id"] not in os.listdir(data_dir / "epoch-keys")
        # A second pass finds nothing more to do.
        assert (await services.keys.shred_spent_epochs()).destroyed == []

    async with service_parts(data_dir, backup_url, clock) as restored:
        for wrapped, object_id in before:
            with pytest.raises(KeyringError, match="destroyed or missing"):
                await restored.keys.unwrap(wrapped, object_id)
        # The other week's keys in the same backup still open: only the spent week is gone.
        (other,) = await wrapped_keys(restored, "2026-W25")
        assert len(await restored.keys.unwrap(*other)) == 32


async def test_a_week_with_unheld_recordings_left_keeps_its_key_until_they_are_deleted(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock(WEEK_23 + timedelta(days=8))
    async with service_parts(tmp_path / "var", database_url, clock) as services:
        recording = await capture(services, "late-sweep", WEEK_23)
        clock.now = datetime(2026, 9, 8, tzinfo=UTC)
        # No sweep has run: the recording is overdue but its key must not go before it does.
        shred = await services.keys.shred_spent_epochs()
        assert shred.destroyed == []
        assert shred.waiting == ["2026-W23"]
        assert await plays(services, recording, "late-sweep")


async def objects_digest(data_dir: Path) -> dict[str, str]:
    root = data_dir / "objects"
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


async def test_rotation_then_rewrap_moves_every_key_and_retires_only_what_nothing_uses(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    clock = FakeClock(WEEK_23 + timedelta(days=10))
    async with service_parts(data_dir, database_url, clock) as services:
        names = [f"call-{n}" for n in range(6)]
        ids = {
            name: await capture(services, name, WEEK_23 + timedelta(days=3 * n))
            for n, name in enumerate(names)
        }
        # One key as it was stored before epochs: wrapped by the root key directly.
        (legacy, legacy_object), *_ = await wrapped_keys(services)
        dek = await services.keys.unwrap(legacy, legacy_object)
        direct = services.keyring.wrap(dek, legacy_object)
        async with services.database.transaction() as session:
            await session.execute(
                update(DataKey)
                .where(DataKey.object_id == legacy_object)
                .values(kek_id=direct.kek_id, wrapped=direct.blob)
            )
        old_root = services.keyring.current_kek_id
        audio_before = await objects_digest(data_dir)

        assert await services.keys.rotate(actor="test") == 1
        assert services.keyring.current_kek_id != old_root
        ids["after"] = await capture(services, "after", WEEK_23 + timedelta(days=9))
        assert await services.keys.stale_count() == 6
        # Everything old is still in use: nothing may be retired.
        assert await services.keys.retire(actor="test") == []

        done: list[int] = []
        report = await services.keys.rewrap(actor="test", batch_size=2, progress=done.append)
        assert report.rewrapped == 6
        assert sum(done) == 6
        assert await services.keys.stale_count() == 0
        status = await services.keys.status()
        assert {key.generation for key in status.epoch_keys if key.data_keys} == {1}
        rewrapped = await actions(services, "keys.rewrapped")
        assert sum(event.details["data_keys"] for event in rewrapped if event.details) == 6
        # Within ten minutes of the rotation a process may still hold the old generation.
        assert report.retired == []
        for name, recording_id in ids.items():
            assert await plays(services, recording_id, name)

        clock.now += timedelta(minutes=11)
        retired = await services.keys.retire(actor="test")
        old_epoch_keys = {key.key_id for key in status.epoch_keys if key.generation == 0}
        assert set(retired) == old_epoch_keys | {old_root}
        assert not (data_dir / "keyring" / f"{old_root}.key").exists()
        live = {key.key_id for key in (await services.keys.status()).epoch_keys}
        kept = {name for name in os.listdir(data_dir / "epoch-keys") if name.startswith("ep-")}
        assert kept == live
        assert not live & old_epoch_keys
        assert await services.keys.retire(actor="test") == []
        # Audio was never re-encrypted: every stored object is byte for byte what it was.
        after = await objects_digest(data_dir)
        assert {key: after[key] for key in audio_before} == audio_before

    # A process started afresh (no cached keys) plays everything.
    async with service_parts(data_dir, database_url, clock) as fresh:
        for name, recording_id in ids.items():
            assert await plays(fresh, recording_id, name)


async def test_a_running_service_picks_up_a_rotation_made_by_another_process(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    clock = FakeClock(WEEK_23 + timedelta(days=2))
    async with (
        service_parts(data_dir, database_url, clock) as serving,
        service_parts(data_dir, database_url, clock) as command,
    ):
        first = await capture(serving, "first", WEEK_23)
        await command.keys.rotate(actor="cli")
        await command.keys.rewrap(actor="cli")
        # The serving process wraps under the new generation and opens what the other made.
        second = await capture(serving, "second", WEEK_23)
        assert await serving.keys.stale_count() == 0
        assert await plays(serving, first, "first")
        assert await plays(serving, second, "second")
        assert serving.keyring.current_kek_id == command.keyring.current_kek_id


async def test_a_damaged_or_misfiled_wrap_is_refused_never_opened(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock(WEEK_23 + timedelta(days=2))
    async with service_parts(tmp_path / "var", database_url, clock) as services:
        await capture(services, "one", WEEK_23)
        await capture(services, "two", WEEK_23 + timedelta(hours=1))
        (first, first_object), (second, second_object) = await wrapped_keys(services)
        with pytest.raises(KeyringError):
            await services.keys.unwrap(first, second_object)  # another object's key
        flipped = bytearray(first.blob)
        flipped[-1] ^= 1
        with pytest.raises(KeyringError):
            await services.keys.unwrap(WrappedKey(first.kek_id, bytes(flipped)), first_object)
        with pytest.raises(KeyringError):
            await services.keys.unwrap(WrappedKey("ep-" + "0" * 32, first.blob), first_object)
        with pytest.raises(KeyringError):
            await services.keys.unwrap(WrappedKey("ep-not-an-id", first.blob), first_object)
        material = tmp_path / "var" / "epoch-keys" / first.kek_id
        material.chmod(0o600)
        material.write_bytes(b"{not json")
    async with service_parts(tmp_path / "var", database_url, clock) as restarted:
        with pytest.raises(KeyringError, match="damaged"):
            await restarted.keys.unwrap(second, second_object)


def test_weeks_are_iso_weeks_in_utc() -> None:
    assert epoch_of(datetime(2026, 6, 1, 0, 0, tzinfo=UTC)) == "2026-W23"
    assert epoch_of(datetime(2026, 5, 31, 23, 59, tzinfo=UTC)) == "2026-W22"
    # 2026-12-31 is a Thursday of week 53; 2027-01-01 is still in it.
    assert epoch_of(datetime(2027, 1, 1, 12, 0, tzinfo=UTC)) == "2026-W53"


async def test_object_rows_name_their_epoch_key_not_the_key_itself(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock(WEEK_23 + timedelta(days=2))
    async with service_parts(tmp_path / "var", database_url, clock) as services:
        await capture(services, "one", WEEK_23)
        async with services.database.read() as session:
            (row,) = (await session.execute(select(EpochKey))).scalars().all()
            (stored,) = (await session.execute(select(StoredObject))).scalars().all()
        assert (row.epoch, row.generation) == ("2026-W23", 0)
        assert stored.data_key is not None
        assert stored.data_key.kek_id == row.id
        # The database holds no key material for the epoch: no binary column at all.
        assert not [c for c in EpochKey.__table__.columns if isinstance(c.type, LargeBinary)]


async def test_scheduled_rotation_comes_when_the_generation_is_old_enough(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock(WEEK_23)
    async with service_parts(tmp_path / "var", database_url, clock) as services:
        keys = services.keys
        # Nothing stored yet: nothing to count the age from.
        assert await keys.rotate_if_due(timedelta(days=90), actor="keys") is None
        await capture(services, "first", WEEK_23)
        clock.now += timedelta(days=89)
        assert await keys.rotate_if_due(timedelta(days=90), actor="keys") is None
        clock.now += timedelta(days=1)
        assert await keys.rotate_if_due(timedelta(0), actor="keys") is None  # turned off
        assert await keys.rotate_if_due(timedelta(days=90), actor="keys") == 1
        assert await keys.rotate_if_due(timedelta(days=90), actor="keys") is None
        clock.now += timedelta(days=90)
        assert await keys.rotate_if_due(timedelta(days=90), actor="keys") == 2
        rotations = await actions(services, "keys.rotated")
        assert [event.actor for event in rotations] == ["keys", "keys"]


async def test_the_rotation_due_time_is_what_the_scheduled_rotation_follows(
    tmp_path: Path, database_url: str
) -> None:
    # The time an alert compares with the clock: a generation outliving it means the
    # scheduled rotation is not happening.
    clock = FakeClock(WEEK_23)
    every = timedelta(days=90)
    async with service_parts(tmp_path / "var", database_url, clock) as services:
        keys = services.keys
        assert await keys.rotation_due_at(every) is None  # no key yet
        await capture(services, "first", WEEK_23)
        first_due = await keys.rotation_due_at(every)
        assert first_due is not None
        assert first_due == WEEK_23 + every  # the first key was made at WEEK_23
        assert await keys.rotation_due_at(timedelta(0)) is None  # scheduled rotation off
        clock.now = first_due - timedelta(seconds=1)
        assert await keys.rotate_if_due(every, actor="keys") is None
        clock.now = first_due
        assert await keys.rotate_if_due(every, actor="keys") == 1
        assert await keys.rotation_due_at(every) == first_due + every
