"""A bundle written to a local file: owner-only, complete or not there at all.

The ciphertext goes to a hidden temporary name in the destination's directory and is
renamed onto the destination only once the bundle is whole, so a reader never sees half a
bundle and a failure leaves nothing behind. Only ciphertext is ever written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from retrieval.sar_bundle.errors import BundleRefused
from storage.durable_files import fsync_directory


class _FileSink:
    """Writes through a file descriptor on a worker thread (disk writes block)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, data: bytes, /) -> None:
        await asyncio.to_thread(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]


@asynccontextmanager
async def private_bundle_file(path: Path, *, overwrite: bool = False) -> AsyncIterator[_FileSink]:
    """A sink writing ``path`` (mode 0600) when the block completes; on an exception the
    partial file is removed and the exception passes on.

    BundleRefused, before anything is written, if ``path`` exists and ``overwrite`` is
    False, or its directory does not exist.
    """
    fd, partial = await asyncio.to_thread(_begin, path, overwrite)
    try:
        yield _FileSink(fd)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(_abandon, fd, partial))
        raise
    await asyncio.to_thread(_finish, fd, partial, path, overwrite)


def _begin(path: Path, overwrite: bool) -> tuple[int, Path]:
    if not path.parent.is_dir():
        raise BundleRefused(f"{path.parent} is not a directory")
    if path.exists() and not overwrite:
        raise BundleRefused(f"{path} already exists")
    partial = path.parent / f".{path.name}.{secrets.token_hex(6)}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # the umask can only narrow the mode; make it exact
    return fd, partial


def _finish(fd: int, partial: Path, path: Path, overwrite: bool) -> None:
    try:
        os.fsync(fd)
    except BaseException:
        _abandon(fd, partial)
        raise
    os.close(fd)
    try:
        if overwrite:
            os.replace(partial, path)
        else:
            # link() refuses an existing name where rename() would replace it: a file made
            # meanwhile at ``path`` is not silently destroyed.
            try:
                os.link(partial, path)
            except FileExistsError:
                raise BundleRefused(f"{path} already exists") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    fsync_directory(path.parent)


def _abandon(fd: int, partial: Path) -> None:
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial)
