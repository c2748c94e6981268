"""Files that survive a crash: directory fsync, and 0600 key files refused if others can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

from storage.errors import KeyringError

_PRIVATE_BITS: Final = 0o077


def refuse_loose_mode(path: Path, mode: int) -> None:
    """Raise KeyringError if group or others have any access to ``path``."""
    if mode & _PRIVATE_BITS:
        raise KeyringError(
            f"{path} is accessible to group or others (mode {stat.S_IMODE(mode):04o}); "
            "restrict it to the owner (chmod go-rwx)"
        )


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new name in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write a 0600 file and fsync it; ``exclusive`` refuses to touch an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        # The umask can only narrow the mode; fchmod makes it exactly owner read/write.
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private_file(path: Path, limit: int) -> bytes:
    """Read a small file that must be private, checking the mode of what was actually opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise KeyringError(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyringError(f"{path} is not a regular file")
        refuse_loose_mode(path, info.st_mode)
        if info.st_size > limit:
            raise KeyringError(f"{path} is {info.st_size} bytes, expected at most {limit}")
        chunks: list[bytes] = []
        while chunk := os.read(fd, limit + 1):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
