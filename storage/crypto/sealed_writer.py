"""A writable, partly seekable file that lands on disk already encrypted (for muxers).

A muxer such as FFmpeg's WebM writer streams its output, then seeks back to the start to
fill in the duration and the index's position. The rendition must never touch disk as
plaintext, so this file keeps only the first segment (64 KiB) and the segment being
filled in memory; every other segment is sealed and written as soon as it is complete.
Seeking back into the first segment or within the current one works; seeking anywhere
already sealed is refused, so a muxer that needs more fails loudly instead of writing
a damaged object.

Blocking; meant for a worker thread or process. The result is a ``SealedFile``: the
object id, path, data key and facts that ``RecordingStore`` stores like a spool.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from storage.crypto.encryptor import SegmentEncryptor
from storage.crypto.file_reader import EncryptedFileReader
from storage.crypto.format import HEADER_LENGTH, SEGMENT_CIPHERTEXT, SEGMENT_PLAINTEXT, new_data_key
from storage.crypto.spool import SpoolFacts

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_VERIFY_READ = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SealedFile:
    """A finished encrypted file waiting to be stored; its key exists only in memory.

    ``repr`` leaves the key out, so a logged or failed job never shows it.
    """

    object_id: uuid.UUID
    path: Path
    data_key: bytes
    facts: SpoolFacts
    content_type: str

    def __repr__(self) -> str:
        return f"SealedFile({self.object_id}, {self.path}, {self.facts.plaintext_size} bytes)"


class SealedFileWriter(io.RawIOBase):
    """Plaintext in, SGRC ciphertext on disk; see the module docstring for what may seek."""

    def __init__(
        self, path: Path, content_type: str, *, object_id: uuid.UUID | None = None
    ) -> None:
        """``object_id`` is bound into every segment; a queued rendition names it in
        advance (so whoever takes its job over knows which object to clear away)."""
        super().__init__()
        self.object_id = object_id or uuid.uuid4()
        self.path = path
        self._content_type = content_type
        self._data_key = new_data_key()
        self._encryptor = SegmentEncryptor(self._data_key, self.object_id)
        self._head = bytearray()  # segment 0, kept until close
        self._tail = bytearray()  # the segment being filled, index _tail_index >= 1
        self._tail_index = 1
        self._position = 0
        self._size = 0
        self._sealed: SealedFile | None = None
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._position + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"unknown whence {whence}")
        if not 0 <= target <= self._size:
            raise OSError("the encrypted writer cannot seek outside what was written")
        self._position = target
        return target

    def write(self, data: ReadableBuffer, /) -> int:
        if self.closed or self._sealed is not None:
            raise ValueError("write to a closed encrypted writer")
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            written += self._write_piece(view[written:])
        return written

    def _write_piece(self, view: memoryview) -> int:
        index, offset = divmod(self._position, SEGMENT_PLAINTEXT)
        if index == 0:
            buffer = self._head
        else:
            if index == self._tail_index + 1 and len(self._tail) == SEGMENT_PLAINTEXT:
                self._seal_tail()
            if index != self._tail_index:
                raise OSError("the encrypted writer cannot rewrite a sealed segment")
            buffer = self._tail
        count = min(len(view), SEGMENT_PLAINTEXT - offset)
        buffer[offset : offset + count] = view[:count]
        self._position += count
        self._size = max(self._size, self._position)
        return count

    def _seal_tail(self) -> None:
        sealed = self._encryptor.seal_at(self._tail_index, self._tail, final=False)
        self._pwrite(sealed, HEADER_LENGTH + self._tail_index * SEGMENT_CIPHERTEXT)
        self._tail_index += 1
        self._tail = bytearray()

    def _pwrite(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            offset += (count := os.pwrite(self._fd, view, offset))
            view = view[count:]

    def seal(self) -> SealedFile:
        """Seal the last segments and the header, fsync, check, and return the result."""
        if self._sealed is not None:
            return self._sealed
        final_index = max(0, (self._size - 1) // SEGMENT_PLAINTEXT)
        if final_index >= 1:
            sealed = self._encryptor.seal_at(self._tail_index, self._tail, final=True)
            self._pwrite(sealed, HEADER_LENGTH + self._tail_index * SEGMENT_CIPHERTEXT)
        self._pwrite(self._encryptor.seal_at(0, self._head, final=final_index == 0), HEADER_LENGTH)
        self._pwrite(self._encryptor.header, 0)
        os.fsync(self._fd)
        ciphertext_size = os.fstat(self._fd).st_size
        os.close(self._fd)
        self._fd = -1
        self._head = self._tail = bytearray()
        self._sealed = SealedFile(
            object_id=self.object_id,
            path=self.path,
            data_key=self._data_key,
            facts=SpoolFacts(
                plaintext_size=self._size,
                plaintext_sha256=self._read_back_sha256(ciphertext_size),
                ciphertext_size=ciphertext_size,
            ),
            content_type=self._content_type,
        )
        return self._sealed

    def _read_back_sha256(self, ciphertext_size: int) -> str:
        # Segments were written out of order, so the plaintext hash is taken by reading
        # the file back: that also proves every segment authenticates before it is kept.
        digest = hashlib.sha256()
        with EncryptedFileReader(
            self.path, self._data_key, self.object_id, ciphertext_size
        ) as reader:
            while chunk := reader.read(_VERIFY_READ):
                digest.update(chunk)
        return digest.hexdigest()

    def close(self) -> None:
        """Close without sealing when ``seal`` was not called: the file is removed."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self.path.unlink(missing_ok=True)
        super().close()
