"""The one way to read a stored SGRC object back: every byte handed out has been verified.

Playback, the integrity scrub and the tests all open stored objects through here, so the
checks are written once: the store's size against the size recorded at capture, the header
and key commitment before any segment is read, the final segment (which is what catches
truncation), and each segment's tag before its plaintext leaves.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from storage.crypto.decryptor import SegmentDecryptor
from storage.crypto.format import HEADER_LENGTH, SEGMENT_PLAINTEXT
from storage.errors import IntegrityFailure

# Segments fetched and decrypted per step when streaming: 1 MiB of plaintext.
SEGMENTS_PER_READ = 16


class RangeSource(Protocol):
    """The part of an object store a reader needs (every ObjectStore is one)."""

    async def size(self, key: str) -> int:
        """The object's length in bytes; ObjectMissing when it is absent."""
        ...

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object; ObjectMissing when it is absent."""
        ...


@dataclass(frozen=True, slots=True)
class StoredCiphertext:
    """A stored object as its row records it: where it is and how long it was written.

    ``length`` is the ciphertext length recorded at capture, never the size the store
    reports now: segment boundaries and which segment is final follow from it, so a store
    that truncates or extends an object cannot move them.
    """

    source: RangeSource
    key: str
    object_id: uuid.UUID
    length: int

    async def check_size(self) -> None:
        """ObjectMissing if the store has no such object; IntegrityFailure if its size differs.

        Bytes appended past the recorded end are never read, so this comparison is what
        notices them.
        """
        if await self.source.size(self.key) != self.length:
            raise IntegrityFailure("the stored object's size differs from the recorded size")

    async def open(self, data_key: bytes) -> VerifiedObject:
        """Read the header and check it and the key commitment against ``data_key``.

        IntegrityFailure when the header is malformed or was sealed under another key or
        for another object; no segment has been read at that point.
        """
        header = await self.read_span(0, HEADER_LENGTH)
        return VerifiedObject(self, SegmentDecryptor(data_key, self.object_id, header, self.length))

    async def read_span(self, start: int, end: int) -> bytes:
        """Ciphertext ``[start, end)``, refusing a read of any other length."""
        data = await self.source.read_range(self.key, start, end)
        # A store that ignores the range end is misbehaving; refuse it even if the extra
        # bytes happen to be genuine segments.
        if len(data) != end - start:
            raise IntegrityFailure("object store returned a read of the wrong length")
        return data


class VerifiedObject:
    """An opened stored object; every plaintext byte it returns has been authenticated."""

    __slots__ = ("_ciphertext", "_decryptor")

    def __init__(self, ciphertext: StoredCiphertext, decryptor: SegmentDecryptor) -> None:
        self._ciphertext = ciphertext
        self._decryptor = decryptor

    @property
    def plaintext_length(self) -> int:
        """Plaintext size implied by the recorded ciphertext length."""
        return self._decryptor.plaintext_length

    async def check_final_segment(self) -> None:
        """Verify the final segment, which is how truncation is caught before serving a byte.

        A truncated object still serves its early ranges correctly, so this check, not
        the reads themselves, is what stops a cut-short recording from going out.
        """
        final = self._decryptor.segment_count - 1
        await self._segments(final, final)

    async def read(self, start: int, end: int) -> bytes:
        """Plaintext ``[start, end)`` with one ranged read of just the segments covering it.

        Nothing is returned unless every one of those segments authenticates.
        """
        if not 0 <= start <= end <= self.plaintext_length:
            raise ValueError(f"range [{start}, {end}) outside 0..{self.plaintext_length}")
        if start == end:
            return b""
        first, last = self._decryptor.segments_for(start, end)
        plain = await self._segments(first, last)
        base = first * SEGMENT_PLAINTEXT
        if start == base and end - base == len(plain):
            return plain
        return plain[start - base : end - base]

    async def stream(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext ``[start, end)`` in pieces of about 1 MiB, never the whole range at once.

        A range of up to 1 MiB is one read wherever it falls (a player's typical request
        would otherwise cost two reads whenever it crosses a 1 MiB boundary); longer ones
        are read in pieces aligned to those boundaries, so no segment is decrypted twice.
        """
        step = SEGMENTS_PER_READ * SEGMENT_PLAINTEXT
        position = start
        while position < end:
            aligned = min(end, (position // step + 1) * step)
            boundary = end if end - position <= step else aligned
            yield await self.read(position, boundary)
            position = boundary

    async def plaintext(self) -> AsyncIterator[bytes]:
        """The whole plaintext in order, a few segments per read, every segment verified.

        Unlike ``stream(0, plaintext_length)`` this also authenticates the empty final
        segment of an empty object, so it proves the whole object, not just its bytes.
        """
        count = self._decryptor.segment_count
        first = 0
        while first < count:
            last = min(first + SEGMENTS_PER_READ, count) - 1
            yield await self._segments(first, last)
            first = last + 1

    async def read_all(self) -> bytes:
        """The whole plaintext at once, for small objects and tests."""
        return b"".join([piece async for piece in self.plaintext()])

    async def _segments(self, first: int, last: int) -> bytes:
        start, end = self._decryptor.ciphertext_span(first, last)
        ciphertext = await self._ciphertext.read_span(start, end)
        return self._decryptor.decrypt_segments(first, ciphertext)


async def open_verified(ciphertext: StoredCiphertext, data_key: bytes) -> VerifiedObject:
    """Check the stored size, the header and the final segment; then the object is readable.

    For callers that already hold the data key; a caller that wants the size checked
    before it spends a key unwrap calls the steps itself, in that order.
    """
    await ciphertext.check_size()
    opened = await ciphertext.open(data_key)
    await opened.check_final_segment()
    return opened
