"""A seekable plaintext file view of a local SGRC file, for code that wants a file."""

from __future__ import annotations

import io
import os
import uuid
from typing import IO, TYPE_CHECKING

from storage.crypto.decryptor import SegmentDecryptor
from storage.crypto.format import (
    HEADER_LENGTH,
    SEGMENT_PLAINTEXT,
)
from storage.errors import IntegrityFailure

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrOrBytesPath, WriteableBuffer


class EncryptedFileReader(io.RawIOBase):
    """A seekable read-only plaintext view of a local SGRC file, for code that wants a file.

    The header, the file size against the trusted length and the final segment are all
    checked on open, so a damaged file fails before any caller sees a byte of it.
    """

    def __init__(
        self,
        source: StrOrBytesPath | IO[bytes],
        dek: bytes,
        object_id: uuid.UUID,
        ciphertext_length: int,
    ) -> None:
        super().__init__()
        self._position = 0
        self._cache_index = -1
        self._cache = b""
        self._owns_file = False
        self._file: IO[bytes] | None = None
        try:
            if isinstance(source, str | bytes | os.PathLike):
                self._file = open(source, "rb", buffering=0)  # noqa: SIM115 - closed by close()
                self._owns_file = True
            else:
                self._file = source
            actual = self._file.seek(0, io.SEEK_END)
            # Any other size means this is not the file that was written. Checking it here
            # is what catches bytes appended past the end, which reads would never touch.
            if actual != ciphertext_length:
                raise IntegrityFailure("file size differs from the recorded ciphertext length")
            self._decryptor = SegmentDecryptor(
                dek, object_id, self._fetch(0, HEADER_LENGTH), ciphertext_length
            )
            # The final-segment check, done by hand so its plaintext can seed the cache.
            self._segment(self._decryptor.segment_count - 1)
        except BaseException:
            self.close()
            raise

    def _fetch(self, start: int, end: int) -> bytes:
        if self._file is None:
            raise ValueError("I/O operation on closed file")
        self._file.seek(start)
        wanted = end - start
        chunks: list[bytes] = []
        while wanted > 0:
            chunk = self._file.read(wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def _segment(self, index: int) -> bytes:
        if index != self._cache_index:
            span = self._decryptor.ciphertext_span(index, index)
            self._cache = self._decryptor.decrypt_segments(index, self._fetch(*span))
            self._cache_index = index
        return self._cache

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    @property
    def plaintext_length(self) -> int:
        """Size of the plaintext, as a file's size would be."""
        return self._decryptor.plaintext_length

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        self._check_open()
        return False

    def tell(self) -> int:
        self._check_open()
        return self._position

    def write(self, data: ReadableBuffer, /) -> int:
        raise io.UnsupportedOperation("encrypted objects are read-only")

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        """Move like ``io.BytesIO``: past the end is allowed, before the start is not."""
        self._check_open()
        if whence == io.SEEK_SET:
            if offset < 0:
                raise ValueError(f"negative seek value {offset}")
            target = offset
        elif whence == io.SEEK_CUR:
            target = max(0, self._position + offset)
        elif whence == io.SEEK_END:
            target = max(0, self._decryptor.plaintext_length + offset)
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        self._position = target
        return target

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Fill ``buffer`` as far as the plaintext allows, crossing segments as needed."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        size = self._decryptor.plaintext_length
        written = 0
        while written < len(view) and self._position < size:
            index, skip = divmod(self._position, SEGMENT_PLAINTEXT)
            segment = self._segment(index)
            take = min(len(segment) - skip, len(view) - written)
            view[written : written + take] = memoryview(segment)[skip : skip + take]
            written += take
            self._position += take
        return written

    def readall(self) -> bytes:
        self._check_open()
        remaining = max(0, self._decryptor.plaintext_length - self._position)
        out = bytearray(remaining)
        self.readinto(out)
        return bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._cache = b""
            if self._owns_file and self._file is not None:
                self._file.close()
            self._file = None
        super().close()
