"""The filesystem object store: private files under one directory, for one host and tests."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import aiofiles
import aiofiles.os

from storage.durable_files import fsync_directory
from storage.errors import ObjectExists, ObjectMissing, StoreUnavailable
from storage.objects.store import (
    ObjectLock,
    ObjectVersion,
    copy_in_ranges,
    validate_key,
    validate_range,
)

_COPY_CHUNK = 1024 * 1024
_TEMP_PREFIX = ".tmp-"
_PROBE_PREFIX = ".probe-"
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700
# A hard link can be refused for reasons that say nothing about the store's health: another
# filesystem, a filesystem without links, a file we may not link (protected_hardlinks), or a
# full link count. Copying still works in all of these cases.
_LINK_REFUSALS = frozenset({errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK})


class FilesystemObjectStore:
    """Objects as private files under one directory, for single-host deployments and tests.

    Durability comes from fsyncing file data and every directory entry that changes;
    atomicity and create-only semantics come from ``link``, which never replaces an
    existing name, so a reader sees either no object or the whole object.
    """

    def __init__(self, root: Path) -> None:
        # Created private from the first moment; an existing root is left as the operator
        # made it, because tightening someone else's directory could break their setup.
        root.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
        self._root = root

    async def put_file(
        self,
        key: str,
        path: Path,
        *,
        tags: Mapping[str, str] | None = None,
        lock: ObjectLock | None = None,
    ) -> str | None:
        """Hard-link ``path`` into the store when it shares the filesystem, else copy it.

        Linking avoids copying a large recording a second time. The linked file becomes
        the object: it is made 0600 first, and the caller must not modify it afterwards
        (unlinking it is fine). Errors about ``path`` itself are the caller's and are
        raised unchanged. A filesystem has no retention lock: ``lock`` is ignored, and the
        store is only as write-once as its directory's owner keeps it.
        """
        final = self._path(key)
        source = await aiofiles.os.stat(path)
        try:
            root = await aiofiles.os.stat(self._root)
            await asyncio.to_thread(self._make_dirs, final.parent)
            linked = source.st_dev == root.st_dev and await self._link_in(path, final)
            if not linked:
                await self._copy_in(path, final)
            await asyncio.to_thread(fsync_directory, final.parent)
        except FileExistsError as exc:
            raise ObjectExists(key) from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot store object {key!r} under {self._root}") from exc
        return None

    async def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Files carry no tags; the sweep is the only deletion a filesystem store has."""

    async def copy_out(self, key: str, target: Path, length: int) -> int:
        """Hard-link the object as ``target`` when both share a filesystem, else copy it.

        An object file is never written again once stored, and the caller only reads
        ``target``, so sharing its bytes is as good as a copy and costs no I/O: a
        rendition does not read and write a whole recording beside the captures.
        """
        source = self._path(key)
        try:
            await aiofiles.os.link(source, target)
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        except OSError as exc:
            if exc.errno not in _LINK_REFUSALS:
                raise StoreUnavailable(f"cannot read object {key!r} under {self._root}") from exc
            return await copy_in_ranges(self, key, target, length)
        return (await aiofiles.os.stat(target)).st_size

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Seek and read; a buffered read only comes back short at the end of the file.

        Open, seek, read and close happen in one worker-thread call rather than aiofiles'
        four: a player that hangs up mid-request cancels the caller, and the file must
        still be closed by the thread that opened it, not left to the garbage collector.
        """
        validate_range(start, end)
        path = self._path(key)
        try:
            return await asyncio.to_thread(_read_span, path, start, end)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectMissing(key) from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read object {key!r} under {self._root}") from exc

    async def size(self, key: str) -> int:
        """Stat the object; directories are layout, not objects, so they count as missing."""
        info = await self._stat_object(key)
        if info is None:
            raise ObjectMissing(key)
        return info.st_size

    async def fingerprint(self, key: str) -> str:
        """Size, inode, and modification and change times in nanoseconds.

        Any write to the file moves its change time, which (unlike the modification
        time) no one can set back by hand; a replaced file has a new one too.
        """
        info = await self._stat_object(key)
        if info is None:
            raise ObjectMissing(key)
        return f"{info.st_size}-{info.st_ino}-{info.st_mtime_ns}-{info.st_ctime_ns}"

    async def delete(self, key: str) -> None:
        """Unlink and fsync the directory, so the deletion survives a crash too."""
        path = self._path(key)
        try:
            await aiofiles.os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete object {key!r} under {self._root}") from exc
        try:
            await asyncio.to_thread(fsync_directory, path.parent)
        except OSError as exc:
            raise StoreUnavailable(f"cannot persist deletion of {key!r}") from exc

    async def delete_many(self, objects: Sequence[ObjectVersion]) -> None:
        """Unlink each file, then fsync each directory touched once rather than per file."""
        directories: set[Path] = set()
        for item in objects:
            path = self._path(item.key)
            try:
                await aiofiles.os.unlink(path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot delete object {item.key!r} under {self._root}"
                ) from exc
            directories.add(path.parent)
        for directory in sorted(directories):
            try:
                await asyncio.to_thread(fsync_directory, directory)
            except OSError as exc:
                raise StoreUnavailable(f"cannot persist deletions under {directory}") from exc

    async def exists(self, key: str) -> bool:
        """Stat the object; only a regular file is an object."""
        return await self._stat_object(key) is not None

    async def iter_keys(self, prefix: str = "", *, after: str = "") -> AsyncIterator[str]:
        """Walk the tree one directory per thread hop, so a huge store never blocks the loop.

        Under a prefix, the walk starts at the deepest directory the prefix names whole.
        """
        start = self._root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self._root
        pending = [start]
        while pending:
            directory = pending.pop()
            try:
                files, subdirs = await asyncio.to_thread(_scan, directory)
            except FileNotFoundError as exc:
                if directory == self._root:
                    raise StoreUnavailable(f"store root {self._root} is missing") from exc
                continue
            except OSError as exc:
                raise StoreUnavailable(f"cannot list objects under {self._root}") from exc
            for name in files:
                key = (directory / name).relative_to(self._root).as_posix()
                if key.startswith(prefix) and key > after:
                    yield key
            # Reversed so that popping visits subdirectories in name order.
            pending.extend(directory / name for name in reversed(subdirs))

    async def check(self) -> None:
        """Write and remove a probe file: existing is not enough if the disk went read-only."""
        probe = self._root / f"{_PROBE_PREFIX}{secrets.token_hex(8)}"
        try:
            async with aiofiles.open(probe, "xb", opener=_private_opener) as handle:
                await handle.write(b"probe")
            await aiofiles.os.unlink(probe)
        except OSError as exc:
            raise StoreUnavailable(f"object store at {self._root} is not writable") from exc

    async def close(self) -> None:
        """Nothing is held open between calls."""

    def _path(self, key: str) -> Path:
        return self._root / validate_key(key)

    async def _stat_object(self, key: str) -> os.stat_result | None:
        path = self._path(key)
        try:
            info = await aiofiles.os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot inspect object {key!r} under {self._root}") from exc
        return info if stat.S_ISREG(info.st_mode) else None

    def _make_dirs(self, directory: Path) -> None:
        """Create missing directories privately, fsyncing each parent so they survive a crash."""
        current = self._root
        for part in directory.relative_to(self._root).parts:
            parent, current = current, current / part
            try:
                os.mkdir(current, _PRIVATE_DIR)
            except FileExistsError:
                if not current.is_dir():
                    # Reported as an I/O fault rather than ObjectExists: the key itself is free.
                    raise NotADirectoryError(
                        errno.ENOTDIR, "not a directory", str(current)
                    ) from None
                continue
            fsync_directory(parent)

    async def _link_in(self, source: Path, final: Path) -> bool:
        """Link ``source`` as ``final``; False when this filesystem cannot, so the caller copies."""
        try:
            await asyncio.to_thread(_seal, source)
            await aiofiles.os.link(source, final)
        except OSError as exc:
            if exc.errno in _LINK_REFUSALS:
                return False
            raise
        return True

    async def _copy_in(self, source: Path, final: Path) -> None:
        """Copy into a private temporary beside ``final``, then link it into place.

        The temporary sits in the same directory so the link cannot cross filesystems,
        and its dot-led name keeps it out of ``iter_keys`` if a crash strands it.
        """
        temp = final.parent / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            async with (
                aiofiles.open(source, "rb") as reader,
                aiofiles.open(temp, "xb", opener=_private_opener) as writer,
            ):
                while chunk := await reader.read(_COPY_CHUNK):
                    await writer.write(chunk)
                await writer.flush()
                await asyncio.to_thread(os.fsync, writer.fileno())
            await aiofiles.os.link(temp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.unlink(temp)


def _read_span(path: Path, start: int, end: int) -> bytes:
    with path.open("rb") as source:
        source.seek(start)
        return source.read(end - start)


def _private_opener(path: str, flags: int) -> int:
    """Create files 0600 from the start, so no window exists where others could open them."""
    return os.open(path, flags, _PRIVATE_FILE)


def _seal(path: Path) -> None:
    """Make a file about to become an object private and durable before it gets its name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fchmod(fd, _PRIVATE_FILE)
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan(directory: Path) -> tuple[list[str], list[str]]:
    """List one directory's object files and subdirectories, skipping the store's dot-files."""
    files: list[str] = []
    subdirs: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            elif entry.is_file(follow_symlinks=False):
                files.append(entry.name)
    return sorted(files), sorted(subdirs)
