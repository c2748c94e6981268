"""Integrity-scrub benchmark: `callrec`'s scrubber over N stored objects against plain
decryption of the same bytes (read each file, authenticate every segment, nothing else).

Objects are written through the real capture path's storage (encrypted spool, object
store, wrapped key, database row), on SQLite with the filesystem store or an S3 server,
so the scrubber reads exactly what a service would; the payload is random bytes of a
recording's size. The baseline reads the same objects from the same place in the same
16-segment pieces.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import storage
from storage import (
    AudioFacts,
    AuditTrail,
    Database,
    EncryptedSpool,
    FilesystemObjectStore,
    NewRecording,
    ObjectStore,
    RecordingStore,
    Scrubber,
    create_engine,
    upgrade_database,
)
from storage.crypto.decryptor import SegmentDecryptor
from storage.crypto.format import HEADER_LENGTH
from storage.recordings import object_key_for
from tests.key_support import local_epoch_keys

_AUDIO = AudioFacts("wav", "pcm_s16le", 8000, 1, 1.0, "audio/wav")


@dataclass(frozen=True)
class ScrubFigures:
    objects: int
    plaintext_bytes: int
    scrub_s: float
    plain_s: float


async def measure_scrub(
    objects: int, object_bytes: int, s3_endpoint: str | None = None
) -> ScrubFigures:
    """Seed ``objects`` recordings of ``object_bytes``, then time both ways of checking them.

    On the filesystem store, or with ``s3_endpoint`` on that S3 server (bucket ``bench``).
    """
    with tempfile.TemporaryDirectory(prefix="callrec-scrub-") as scratch:
        root = Path(scratch)
        engine = create_engine(f"sqlite+aiosqlite:///{root / 'callrec.db'}")
        await upgrade_database(engine)
        database = Database(engine)
        objects_dir = root / "objects"
        prefix = f"scrub-{uuid.uuid4().hex[:8]}"
        store: ObjectStore = (
            FilesystemObjectStore(objects_dir)
            if s3_endpoint is None
            else storage.S3ObjectStore.connect("bench", prefix, endpoint_url=s3_endpoint)
        )
        clock = lambda: datetime.now(UTC)  # noqa: E731
        keyring = local_epoch_keys(database, root, clock)
        recordings = RecordingStore(
            database=database, objects=store, keys=keyring, audit=AuditTrail(clock), clock=clock
        )
        payload = os.urandom(object_bytes)
        started_at = datetime.now(UTC) - timedelta(hours=1)
        keys: list[tuple[str, bytes, uuid.UUID, int]] = []
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
                    object_key_for(spool.object_id),
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
        if s3_endpoint is None:
            plain_s = _plain_decryption(keys, _file_reader(objects_dir))
        else:
            plain_s = _plain_decryption(keys, _s3_reader(s3_endpoint, prefix))
        await store.close()
        await database.dispose()
    return ScrubFigures(objects, objects * object_bytes, scrub_s, plain_s)


Reader = Callable[[str, int, int], bytes]


def _file_reader(root: Path) -> Reader:
    def read(key: str, start: int, end: int) -> bytes:
        with (root / key).open("rb") as file:
            file.seek(start)
            return file.read(end - start)

    return read


def _s3_reader(endpoint: str, prefix: str) -> Reader:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)

    def read(key: str, start: int, end: int) -> bytes:
        answer = client.get_object(
            Bucket="bench", Key=f"{prefix}/{key}", Range=f"bytes={start}-{end - 1}"
        )
        body: bytes = answer["Body"].read()
        return body

    return read


def _plain_decryption(objects: list[tuple[str, bytes, uuid.UUID, int]], read: Reader) -> float:
    """The baseline: each object read in the same 16-segment pieces and authenticated."""
    begun = time.perf_counter()
    for name, key, object_id, size in objects:
        decryptor = SegmentDecryptor(key, object_id, read(name, 0, HEADER_LENGTH), size)
        first = 0
        while first < decryptor.segment_count:
            last = min(first + 16, decryptor.segment_count) - 1
            start, end = decryptor.ciphertext_span(first, last)
            decryptor.decrypt_segments(first, read(name, start, end))
            first = last + 1
    return time.perf_counter() - begun
