"""Key shares: an early erasure holds even against a database backup taken before it.

The threat: someone keeps a backup of the database and a copy of a recording's
ciphertext (a store backup, a replica, a download), and later gets at the live key
stores, in which the recording's week's key is still alive. Before shares, the backup's
wrapped data key and the live epoch key gave the data key back. Each case runs on
SQLite with the filesystem store and on PostgreSQL with a versioned S3 bucket (moto).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from config.services import Services, build_services
from config.settings import Settings
from storage import (
    ORIGINAL,
    RECORDINGS_PREFIX,
    IntegrityFailure,
    KeyShareMissing,
    KeyShares,
    ObjectStore,
    RecordingAudio,
    Scrubber,
    StoredCiphertext,
    open_verified,
    share_key_for,
    unmask,
)
from storage.db.models import DataKey, Recording, StoredObject
from storage.keys.keyring import WrappedKey
from tests.clock import FakeClock
from tests.key_support import store_recording

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STARTED = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Backends:
    """Where the parts under test keep things: a data dir, a database and an object store."""

    data_dir: Path
    database_url: str
    store_url: str | None  # None: the filesystem store in the data dir
    s3_bucket: str | None = None
    s3_client: S3Client | None = None


@pytest.fixture
def backends(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Backends:
    """SQLite with the filesystem store; PostgreSQL with a versioned S3 bucket."""
    if database_url.startswith("sqlite"):
        return Backends(tmp_path / "var", database_url, None)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", request.getfixturevalue("s3_endpoint"))
    bucket: str = request.getfixturevalue("versioned_s3_bucket")
    client: S3Client = request.getfixturevalue("s3_client")
    return Backends(tmp_path / "var", database_url, f"s3://{bucket}/hub", bucket, client)


@asynccontextmanager
async def parts(
    backends: Backends, clock: FakeClock, database_url: str | None = None
) -> AsyncIterator[Services]:
    """The service's parts on ``backends`` (or on another database: a restored backup)."""
    settings = Settings(
        data_dir=backends.data_dir,
        database_url=database_url or backends.database_url,
        single_node=True,
        store_url=backends.store_url,
    )
    services = build_services(settings, clock=clock)
    try:
        yield services
    finally:
        await services.close()


def payload(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest() * 3000  # 96 000 bytes: two segments


class SavedCopy:
    """A copy of an object's ciphertext taken out of the store while it was there."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def size(self, key: str) -> int:
        return len(self._data)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        return self._data[start:end]


async def original_of(services: Services, recording_id: uuid.UUID) -> StoredObject:
    async with services.database.read() as session:
        return (
            await session.execute(
                select(StoredObject).where(
                    StoredObject.recording_id == recording_id, StoredObject.kind == ORIGINAL
                )
            )
        ).scalar_one()


async def save_ciphertext(services: Services, recording_id: uuid.UUID) -> bytes:
    stored = await original_of(services, recording_id)
    return await services.objects.read_range(stored.object_key, 0, stored.ciphertext_size)


async def what_the_backup_opens(
    backup: Services, recording_id: uuid.UUID, saved: bytes
) -> tuple[bytes, bytes]:
    """Everything the backup, the live key stores and the live object store give.

    Returns (the value its wrapped key unwraps to, the data key that value and whatever
    share the store still holds make). KeyShareMissing when the store has no share.
    """
    async with backup.database.read() as session:
        stored, digest = (
            await session.execute(
                select(StoredObject, Recording.key_share_digest)
                .join(Recording, Recording.id == StoredObject.recording_id)
                .where(StoredObject.recording_id == recording_id, StoredObject.kind == ORIGINAL)
            )
        ).one()
        key_row = await session.get(DataKey, stored.id)
        assert key_row is not None  # the backup holds the wrapped key of the erased recording
        wrapped = WrappedKey(key_row.kek_id, key_row.wrapped)
    unwrapped = await backup.keys.unwrap(wrapped, stored.id)  # the week's key is alive
    share = await KeyShares(backup.objects).read(recording_id, digest)
    return unwrapped, unmask(unwrapped, stored.id, share)


async def decrypt_saved(saved: bytes, stored: StoredObject, data_key: bytes) -> bytes:
    ciphertext = StoredCiphertext(SavedCopy(saved), "saved", stored.id, stored.ciphertext_size)
    return await (await open_verified(ciphertext, data_key)).read_all()


async def erase(services: Services, recording_id: uuid.UUID) -> None:
    """Early erasure, as the DPO's request runs it: keys destroyed, then the objects."""
    assert await services.deleter.begin_one(recording_id, actor="dpo:ada", reason="erasure")
    await services.deleter.finish(recording_id)


async def test_an_erased_recording_stays_unreadable_with_an_older_backup_and_live_keys(
    backends: Backends, database_backup: Callable[[str], Awaitable[str]]
) -> None:
    clock = FakeClock(STARTED + timedelta(days=2))
    async with parts(backends, clock) as services:
        erased = await store_recording(services, "erased", STARTED, payload("erased"))
        kept = await store_recording(services, "kept", STARTED, payload("kept"))
        saved = await save_ciphertext(services, erased)
        stored = await original_of(services, erased)
        backup_url = await database_backup(backends.database_url)

        # The backup is a working one: before the erasure it opens the saved copy.
        async with parts(backends, clock, backup_url) as backup:
            _, data_key = await what_the_backup_opens(backup, erased, saved)
            assert await decrypt_saved(saved, stored, data_key) == payload("erased")

        await erase(services, erased)
        assert not await services.objects.exists(share_key_for(erased))
        if backends.s3_client is not None and backends.s3_bucket is not None:
            # Deleted by exact version: no older version or delete marker keeps it.
            listed = backends.s3_client.list_object_versions(
                Bucket=backends.s3_bucket, Prefix=f"hub/{share_key_for(erased)}"
            )
            assert listed.get("Versions", []) == []
            assert listed.get("DeleteMarkers", []) == []

    async with parts(backends, clock, backup_url) as backup:
        # The week's key still opens the backup's row, but that is only the masked key...
        with pytest.raises(KeyShareMissing):
            await what_the_backup_opens(backup, erased, saved)
        async with backup.database.read() as session:
            key_row = await session.get(DataKey, stored.id)
        assert key_row is not None
        masked = await backup.keys.unwrap(WrappedKey(key_row.kek_id, key_row.wrapped), stored.id)
        # ...which does not open the saved ciphertext: its key commitment refuses it.
        with pytest.raises(IntegrityFailure, match="key commitment"):
            await decrypt_saved(saved, stored, masked)
        # The same backup still opens a recording that was not erased.
        kept_saved = await save_ciphertext(backup, kept)
        _, kept_key = await what_the_backup_opens(backup, kept, kept_saved)
        kept_stored = await original_of(backup, kept)
        assert await decrypt_saved(kept_saved, kept_stored, kept_key) == payload("kept")


async def make_legacy(services: Services, recording_id: uuid.UUID) -> None:
    """Turn a recording into one stored before shares: plain data keys, no share."""
    async with services.database.read() as session:
        row = await session.get(Recording, recording_id)
        assert row is not None
        digest = row.key_share_digest
        keys = {
            stored.id: WrappedKey(stored.data_key.kek_id, stored.data_key.wrapped)
            for stored in row.objects
            if stored.data_key is not None
        }
    share = await KeyShares(services.objects).read(recording_id, digest)
    async with services.database.transaction() as session:
        for object_id, wrapped in keys.items():
            plain = unmask(await services.keys.unwrap(wrapped, object_id), object_id, share)
            rewrapped = await services.keys.wrap(plain, object_id, started_at=STARTED)
            await session.execute(
                update(DataKey)
                .where(DataKey.object_id == object_id)
                .values(kek_id=rewrapped.kek_id, wrapped=rewrapped.blob)
            )
        await session.execute(
            update(Recording)
            .where(Recording.id == recording_id)
            .values(key_share_digest=None, key_share_version_id=None)
        )
    await services.objects.delete(share_key_for(recording_id))


def scrubber(services: Services) -> Scrubber:
    return Scrubber(
        database=services.database,
        objects=services.objects,
        keys=services.keys,
        audit=services.audit,
    )


async def plays(services: Services, recording_id: uuid.UUID, name: str) -> bool:
    """Opened afresh (nothing kept), read to the end, exactly what was captured."""
    audio = RecordingAudio(services.database, services.objects, services.keys)
    opened = await audio.open(recording_id, ORIGINAL)
    return opened is not None and await opened.read(0, opened.info.size) == payload(name)


async def test_a_recording_stored_before_shares_still_plays_scrubs_and_deletes(
    backends: Backends,
) -> None:
    clock = FakeClock(STARTED + timedelta(days=2))
    async with parts(backends, clock) as services:
        legacy = await store_recording(services, "legacy", STARTED, payload("legacy"))
        await make_legacy(services, legacy)
        assert await plays(services, legacy, "legacy")
        report = await scrubber(services).run()
        assert report.ok, report.findings
        await erase(services, legacy)
        assert [key async for key in services.objects.iter_keys(RECORDINGS_PREFIX)] == []


async def replace_share(services: Services, recording_id: uuid.UUID, data: bytes) -> None:
    """Put ``data`` where the recording's share was (every version of it removed first)."""
    key = share_key_for(recording_id)
    await services.objects.delete(key)
    path = services.spool.path / "forged-share"
    path.write_bytes(data)
    await services.objects.put_file(key, path)
    path.unlink()


async def share_bytes(services: Services, recording_id: uuid.UUID) -> bytes:
    return await services.objects.read_range(share_key_for(recording_id), 0, 1024)


@pytest.mark.parametrize(
    ("damage", "message", "problem"),
    [
        ("missing", "key share is missing", "missing"),
        ("flipped", "does not match its recorded digest", "corrupt"),
        ("cut", "wrong length", "corrupt"),
        ("grown", "wrong length", "corrupt"),
        ("another recording's", "belongs to another recording", "corrupt"),
    ],
)
async def test_a_missing_or_altered_share_is_an_integrity_failure_the_scrub_names(
    backends: Backends, damage: str, message: str, problem: str
) -> None:
    clock = FakeClock(STARTED + timedelta(days=2))
    async with parts(backends, clock) as services:
        victim = await store_recording(services, "victim", STARTED, payload("victim"))
        other = await store_recording(services, "other", STARTED, payload("other"))
        assert (await scrubber(services).run()).ok  # the shares are known, not orphans
        share = await share_bytes(services, victim)
        if damage == "missing":
            await services.objects.delete(share_key_for(victim))
        elif damage == "flipped":
            await replace_share(services, victim, share[:-1] + bytes([share[-1] ^ 1]))
        elif damage == "cut":
            await replace_share(services, victim, share[:-1])
        elif damage == "grown":
            await replace_share(services, victim, share + b"\0")
        else:
            await replace_share(services, victim, await share_bytes(services, other))

        with pytest.raises(IntegrityFailure, match=message):
            await RecordingAudio(services.database, services.objects, services.keys).open(
                victim, ORIGINAL
            )
        assert await plays(services, other, "other")
        report = await scrubber(services).run()
        assert [(f.object_key, f.recording_id, f.problem) for f in report.findings] == [
            (share_key_for(victim), victim, problem)
        ]


async def test_a_share_is_read_once_per_open_and_kept_with_the_opened_object(
    backends: Backends,
) -> None:
    clock = FakeClock(STARTED + timedelta(days=2))
    async with parts(backends, clock) as services:
        recording = await store_recording(services, "counted", STARTED, payload("counted"))
        reads: list[str] = []
        counting = CountingStore(services.objects, reads)
        audio = RecordingAudio(services.database, counting, services.keys)  # type: ignore[arg-type]
        first = await audio.open(recording, ORIGINAL)
        assert first is not None
        assert reads.count(share_key_for(recording)) == 1
        again = await audio.open(recording, ORIGINAL)
        assert again is first
        assert reads.count(share_key_for(recording)) == 1


class CountingStore:
    """The service's object store, noting the key of every size and read request."""

    def __init__(self, inner: ObjectStore, reads: list[str]) -> None:
        self._inner = inner
        self._reads = reads

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def size(self, key: str) -> int:
        self._reads.append(key)
        return await self._inner.size(key)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        self._reads.append(key)
        return await self._inner.read_range(key, start, end)
