"""Plaintext ranges of a stored recording, decrypted segment by segment for playback.

Opening checks everything that can be checked before a byte goes out: the stored size
against the size recorded at capture, the header and key commitment, and the final
segment (so a truncated object never plays). Reads then fetch only the segments a range
needs, with one ranged read from the object store.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select

from storage.blobs import ObjectStore
from storage.crypto import HEADER_LENGTH, SEGMENT_PLAINTEXT, SegmentDecryptor
from storage.database import Database
from storage.errors import IntegrityFailure, ObjectMissing
from storage.keyring import KeyWrapper, WrappedKey
from storage.models import Recording, RecordingState, StoredObject

# Segments fetched and decrypted per step when streaming: 1 MiB of audio.
_SEGMENTS_PER_READ = 16


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a player needs to know before asking for bytes."""

    recording_id: uuid.UUID
    object_id: uuid.UUID
    content_type: str
    size: int
    etag: str


class OpenAudio:
    """One opened, verified object; read plaintext ranges from it."""

    def __init__(
        self, info: AudioInfo, key: str, objects: ObjectStore, decryptor: SegmentDecryptor
    ):
        self.info = info
        self._key = key
        self._objects = objects
        self._decryptor = decryptor

    async def read(self, start: int, end: int) -> bytes:
        """Plaintext bytes [start, end); IntegrityFailure if any segment fails to verify."""
        if start >= end:
            return b""
        first, last = self._decryptor.segments_for(start, end)
        span_start, span_end = self._decryptor.ciphertext_span(first, last)
        ciphertext = await self._objects.read_range(self._key, span_start, span_end)
        plain = self._decryptor.decrypt_segments(first, ciphertext)
        base = first * SEGMENT_PLAINTEXT
        return plain[start - base : end - base]

    async def stream(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext [start, end) in pieces of about 1 MiB, never the whole range at once."""
        step = _SEGMENTS_PER_READ * SEGMENT_PLAINTEXT
        position = start
        while position < end:
            boundary = min(end, (position // step + 1) * step)
            yield await self.read(position, boundary)
            position = boundary


class RecordingAudio:
    """Opens the stored original of a recording for playback."""

    def __init__(self, database: Database, objects: ObjectStore, keys: KeyWrapper) -> None:
        self._database = database
        self._objects = objects
        self._keys = keys

    async def open(self, recording_id: uuid.UUID) -> OpenAudio | None:
        """The verified audio of a stored recording; None if there is none to play.

        Raises IntegrityFailure when the object is missing, cut short, grown, or altered.
        """
        async with self._database.read() as session:
            stored = (
                await session.execute(
                    select(StoredObject)
                    .join(Recording, Recording.id == StoredObject.recording_id)
                    .where(
                        StoredObject.recording_id == recording_id,
                        StoredObject.kind == "original",
                        Recording.state == RecordingState.STORED,
                    )
                )
            ).scalar_one_or_none()
            if stored is None or stored.data_key is None:
                return None
            wrapped = WrappedKey(stored.data_key.kek_id, stored.data_key.wrapped)
        key = stored.object_key
        try:
            actual = await self._objects.size(key)
        except ObjectMissing:
            raise IntegrityFailure("the recording's object is missing from the store") from None
        if actual != stored.ciphertext_size:
            raise IntegrityFailure("the stored object's size differs from the recorded size")
        data_key = self._keys.unwrap(wrapped, stored.id)
        header = await self._objects.read_range(key, 0, HEADER_LENGTH)
        decryptor = SegmentDecryptor(data_key, stored.id, header, stored.ciphertext_size)
        final = decryptor.segment_count - 1
        span_start, span_end = decryptor.ciphertext_span(final, final)
        decryptor.decrypt_segments(final, await self._objects.read_range(key, span_start, span_end))
        info = AudioInfo(
            recording_id=recording_id,
            object_id=stored.id,
            content_type=stored.content_type,
            size=decryptor.plaintext_length,
            # Strong: the object never changes, and a new format would be a new object.
            etag=f'"{stored.id.hex}-sgrc1"',
        )
        return OpenAudio(info, key, self._objects, decryptor)
