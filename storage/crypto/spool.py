"""Encrypted spool files: uploads are encrypted as they arrive, so no plaintext touches disk.

The spool is written in the final object format under a fresh data key that exists only
in memory until the recording is committed. If the process dies or the capture fails,
the key is gone and the spool file is noise; if it succeeds, the spool file itself
becomes the stored object (a hard link on the filesystem store, an upload to S3).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.crypto.encryptor import SegmentEncryptor
from storage.crypto.file_reader import EncryptedFileReader
from storage.crypto.format import new_data_key
from storage.errors import StoreUnavailable

# Batch small network chunks into one thread hop; large enough to amortise the hop,
# small enough that memory per upload stays bounded.
_FLUSH_BYTES = 1024 * 1024
_LOCK = ".lock"


@dataclass(frozen=True, slots=True)
class SpoolFacts:
    """Sizes and the plaintext hash of a finished spool, recorded with the stored object."""

    plaintext_size: int
    plaintext_sha256: str
    ciphertext_size: int


class EncryptedSpool:
    """One upload being received: append plaintext, get an encrypted file."""

    def __init__(self, directory: Path) -> None:
        """Create the spool file; StoreUnavailable if the spool directory cannot take it."""
        self.object_id = uuid.uuid4()
        self.path = directory / f"{self.object_id.hex}.spool"
        self._data_key = new_data_key()
        self._encryptor = SegmentEncryptor(self._data_key, self.object_id)
        self._plain_hash = hashlib.sha256()
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self._in_flight: asyncio.Future[None] | None = None
        self._plaintext_size = 0
        self._ciphertext_size = 0
        self._facts: SpoolFacts | None = None
        self._fd = -1
        with _spool_errors():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                self._write_cipher(self._encryptor.header)
            except OSError:
                self._discard_sync()
                raise

    @property
    def data_key(self) -> bytes:
        """The object's data key; wrap it before storing, never log it."""
        return self._data_key

    @property
    def facts(self) -> SpoolFacts:
        """Sizes and hashes; only available after ``finish``."""
        if self._facts is None:
            raise RuntimeError("the spool is not finished")
        return self._facts

    async def write(self, data: bytes | memoryview) -> None:
        """Accept more plaintext; encryption and disk writes happen off the event loop.

        The data must not change afterwards: it is held by reference until flushed.
        """
        if self._facts is not None:
            raise RuntimeError("the spool is finished")
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _FLUSH_BYTES:
            await self._flush(drain=False)

    async def finish(self) -> SpoolFacts:
        """Encrypt the final segment, fsync and close; return the facts to record."""
        await self._flush(drain=True)
        self._start(self._finish_sync)
        await self._wait()
        return self.facts

    def open_plaintext(self) -> EncryptedFileReader:
        """A seekable plaintext view that decrypts on demand (for probing the audio)."""
        return EncryptedFileReader(
            self.path, self._data_key, self.object_id, self.facts.ciphertext_size
        )

    async def discard(self) -> None:
        """Close and remove the spool file; safe to call more than once, even cancelled.

        Work on a thread cannot be cancelled, so it is waited for before its file
        descriptor is closed; a cancellation that arrives meanwhile is passed on after.
        """
        cancelled = False
        in_flight = self._in_flight
        while in_flight is not None and not in_flight.done():
            try:
                await asyncio.wait({in_flight})
            except asyncio.CancelledError:
                cancelled = True
        if in_flight is not None and not in_flight.cancelled():
            in_flight.exception()  # retrieved: the request already failed for its own reason
        self._in_flight = None
        self._discard_sync()  # a close and an unlink: too quick to need a thread
        if cancelled:
            raise asyncio.CancelledError

    async def _flush(self, *, drain: bool) -> None:
        # At most one batch is encrypted and written while the next one is received, so
        # the network and the disk work side by side, in order, with bounded memory.
        await self._wait()
        if not self._pending:
            return
        chunks, self._pending, self._pending_size = self._pending, [], 0
        self._start(self._absorb, chunks)
        if drain:
            await self._wait()

    def _start(self, work: Callable[..., None], *args: object) -> None:
        # Remembered, so discard() can wait for it: threads cannot be cancelled.
        self._in_flight = asyncio.ensure_future(asyncio.to_thread(_with_spool_errors, work, *args))

    async def _wait(self) -> None:
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight)
            self._in_flight = None

    def _absorb(self, chunks: list[bytes | memoryview]) -> None:
        for chunk in chunks:
            self._plain_hash.update(chunk)
            self._plaintext_size += len(chunk)
            self._write_cipher(self._encryptor.update_view(chunk))

    def _write_cipher(self, sealed: bytes | memoryview) -> None:
        # The ciphertext needs no hash of its own: every segment carries a GCM tag.
        view = memoryview(sealed)
        self._ciphertext_size += len(view)
        while view:
            view = view[os.write(self._fd, view) :]

    def _finish_sync(self) -> None:
        self._write_cipher(self._encryptor.finalize())
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._facts = SpoolFacts(
            plaintext_size=self._plaintext_size,
            plaintext_sha256=self._plain_hash.hexdigest(),
            ciphertext_size=self._ciphertext_size,
        )

    def _discard_sync(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)


class SpoolDirectory:
    """This process's own spool directory, held by a lock for as long as the process lives.

    Replicas may share a data directory; each spools into its own subdirectory, and a
    subdirectory is swept only when no live process holds its lock.
    """

    def __init__(self, root: Path) -> None:
        with _spool_errors():
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path = root / uuid.uuid4().hex
            self.path.mkdir(mode=0o700)
            self._lock_fd = os.open(self.path / _LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        """Remove this process's spool directory and give up its lock."""
        if self._lock_fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = -1


def sweep_spool(root: Path) -> int:
    """Remove the spool directories of processes that died; return how many spool files.

    Their data keys died with them, so the files are unreadable and only take space.
    A directory whose lock a live process still holds is left alone.
    """
    removed = 0
    if not root.is_dir():
        return 0
    for directory in root.iterdir():
        if not directory.is_dir():
            continue
        try:
            fd = os.open(directory / _LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # its process is alive
        removed += len(list(directory.glob("*.spool")))
        shutil.rmtree(directory, ignore_errors=True)
        os.close(fd)
    return removed


@contextlib.contextmanager
def _spool_errors() -> Iterator[None]:
    # A full or broken spool disk is an outage like an unreachable store: retry later.
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"the spool cannot be written: {exc.strerror}") from None


def _with_spool_errors(work: Callable[..., None], *args: object) -> None:
    with _spool_errors():
        work(*args)
