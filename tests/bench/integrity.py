"""Integrity-scrub benchmark: `callrec`'s scrubber over N stored objects against plain
decryption of the same bytes (read each file, authenticate every segment, nothing else).

Objects are written through the real capture path's storage (encrypted spool, object
store, wrapped key, database row), on SQLite and the filesystem store, so the scrubber
reads exactly what a service would; the payload is random bytes of a recording's size.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage import (
    AudioFacts,
    AuditTrail,
    Database,
    EncryptedSpool,
    EpochKeys,
    FilesystemObjectStore,
    KeyChain,
    LocalKeyring,
    NewRecording,
    RecordingStore,
    Scrubber,
    create_engine,
    upgrade_database,
)
from storage.crypto import HEADER_LENGTH, SegmentDecryptor
from storage.recordings import object_key_for

_AUDIO = AudioFacts("wav", "pcm_s16le", 8000, 1, 1.0, "audio/wav")


@dataclass(frozen=True)
class ScrubFigures:
    objects: int
    plaintext_bytes: int
    scrub_s: float
    plain_s: float


async def measure_scrub(objects: int, object_bytes: int) -> ScrubFigures:
    """Seed ``objects`` recordings of ``object_bytes``, then time both ways of checking them."""
    with tempfile.TemporaryDirectory(prefix="callrec-scrub-") as scratch:
        root = Path(scratch)
        engine = create_engine(f"sqlite+aiosqlite:///{root / 'callrec.db'}")
        await upgrade_database(engine)
        database = Database(engine)
        objects_dir = root / "objects"
        store = FilesystemObjectStore(objects_dir)
        clock = lambda: datetime.now(UTC)  # noqa: E731
        keyring = EpochKeys(
            database=database,
            material=FilesystemObjectStore(root / "epoch-keys"),
            root=KeyChain(LocalKeyring.open(root / "keyring")),
            audit=AuditTrail(clock),
            clock=clock,
            retention_period=timedelta(days=90),
        )
        recordings = RecordingStore(
            database=database, objects=store, keys=keyring, audit=AuditTrail(clock), clock=clock
        )
        payload = os.urandom(object_bytes)
        started_at = datetime.now(UTC) - timedelta(hours=1)
        keys: list[tuple[Path, bytes, uuid.UUID, int]] = []
        for n in range(objects):
            spool = EncryptedSpool(root / "spool")
            await spool.write(payload)
            await spool.finish()
            await recordings.store_capture(
                spool,
                NewRecording(
                    source="bench",
                    source_recording_id=f"scrub-{n}",
                    started_at=started_at,
                    retention_deadline=started_at + timedelta(days=90),
                ),
                _AUDIO,
                actor="source:bench",
            )
            keys.append(
                (
                    objects_dir / object_key_for(spool.object_id),
                    spool.data_key,
                    spool.object_id,
                    spool.facts.ciphertext_size,
                )
            )
            await spool.discard()
        scrubber = Scrubber(database=database, objects=store, keys=keyring, audit=AuditTrail(clock))
        begun = time.perf_counter()
        report = await scrubber.run()
        scrub_s = time.perf_counter() - begun
        if not report.ok or report.objects != objects:
            raise RuntimeError(f"the scrub found problems in fresh objects: {report.findings}")
        plain_s = _plain_decryption(keys)
        await database.dispose()
    return ScrubFigures(objects, objects * object_bytes, scrub_s, plain_s)


def _plain_decryption(objects: list[tuple[Path, bytes, uuid.UUID, int]]) -> float:
    """The baseline: each file read in the same 16-segment pieces and authenticated."""
    begun = time.perf_counter()
    for path, key, object_id, size in objects:
        with path.open("rb") as file:
            decryptor = SegmentDecryptor(key, object_id, file.read(HEADER_LENGTH), size)
            first = 0
            while first < decryptor.segment_count:
                last = min(first + 16, decryptor.segment_count) - 1
                start, end = decryptor.ciphertext_span(first, last)
                file.seek(start)
                decryptor.decrypt_segments(first, file.read(end - start))
                first = last + 1
    return time.perf_counter() - begun
