"""The object-store interface every backend implements, and the key rules they share."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

MAX_KEY_LENGTH = 1024
"""S3's limit on key length, applied to every backend so keys stay portable between them."""

RECORDINGS_PREFIX = "recordings/"
"""Where every object of a recording lives in the store (audio, rendition, key share); the
audit anchors, when they share the store, live beside it under ``anchors/``."""

RETENTION_TAG = "callrec-retention"
"""The object tag an S3 lifecycle rule filters on (deploy/s3-lifecycle.json)."""
UNHELD_TAGS = {RETENTION_TAG: "standard"}
"""Tags of an object whose recording may expire: the lifecycle rule's backstop applies."""
HELD_TAGS = {RETENTION_TAG: "held"}
"""Tags of an object under a hold: the lifecycle rule passes it by."""

# What a ranged copy reads at a time: few requests, little memory.
COPY_PIECE = 8 * 1024 * 1024
_KEY_CHARACTERS = re.compile(r"[a-z0-9/_.-]+")


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One stored object as deletion names it: its key and, where the store has them, version."""

    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectLock:
    """A write-once retention for one object: S3 Object Lock's mode and retain-until date.

    ``governance`` can be lifted by a principal with ``s3:BypassGovernanceRetention``;
    ``compliance`` by nobody, not even the account's root, until the date has passed.
    """

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    retain_until: datetime


class ObjectStore(Protocol):
    """Where encrypted objects live; callers never learn which backend it is."""

    async def put_file(
        self,
        key: str,
        path: Path,
        *,
        tags: Mapping[str, str] | None = None,
        lock: ObjectLock | None = None,
    ) -> str | None:
        """Store the file at ``path`` under ``key``, durably, without ever overwriting.

        Raises ObjectExists when the key is taken, because an object is immutable once
        written: replacing it would break the integrity guarantees kept about it elsewhere.
        Returns the store's version id of the new object where it has one (a versioned
        S3 bucket), so a later deletion can name that exact version. ``tags`` label the
        object for the store's own rules (an S3 lifecycle backstop); stores without tags
        ignore them. ``lock`` asks the store to refuse deleting or replacing the object
        until a date (S3 Object Lock, on a bucket that has it); stores without such a
        lock ignore it, so it is a strengthening where available, never a requirement.
        """
        ...

    async def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace the object's tags (a hold placed or released); a no-op without tags."""
        ...

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes ``[start, end)``; shorter only where the object ends first.

        Ranged reads let playback and verification stream large recordings without
        holding them in memory. Raises ObjectMissing when there is no such object.
        """
        ...

    async def size(self, key: str) -> int:
        """Return the object's length in bytes; ObjectMissing when it is absent."""
        ...

    async def copy_out(self, key: str, target: Path, length: int) -> int:
        """Give ``target`` (a new private file) the object's bytes, expected to be
        ``length``; return the object's real size, so the caller can refuse a mismatch.

        At most ``length`` bytes are fetched where that costs I/O, so an object that grew
        cannot fill the disk. For work that needs the ciphertext as a local file (a
        rendition decoded in a worker process); the caller only reads ``target``, then
        unlinks it. ObjectMissing when there is no such object.
        """
        ...

    async def fingerprint(self, key: str) -> str:
        """A short token that changes whenever the object's bytes may have changed.

        An opened object is kept between the ranges a player asks for; before each play
        its fingerprint is compared with the one taken when it was opened and verified,
        so an object rewritten behind the service's back is verified again rather than
        served from what was checked before. One HEAD or stat: cheap enough for every
        request. ObjectMissing when the object is absent.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove the object and every older version of it; a missing object is fine.

        Deletion is a legal obligation here, so a copy left behind as an old version
        counts as not deleted. Idempotent so that an interrupted deletion can be retried.
        """
        ...

    async def delete_many(self, objects: Sequence[ObjectVersion]) -> None:
        """Delete many objects as ``delete`` does, in as few requests as the store allows.

        A sweep deletes thousands at a time; one request per object would bound it by
        round trips rather than by the store.
        """
        ...

    async def exists(self, key: str) -> bool:
        """Say whether an object is stored under ``key``."""
        ...

    def iter_keys(self, prefix: str = "", *, after: str = "") -> AsyncIterator[str]:
        """Yield every key in the store (starting with ``prefix``), in no promised order.

        All of them, so objects unknown to the database can be found; under a prefix, so
        the audit anchors can be listed without walking every recording; only those that
        sort after ``after``, so the newest of thousands of checkpoints is found without
        listing the ones already seen (S3 starts the listing there).
        """
        ...

    async def check(self) -> None:
        """Raise StoreUnavailable unless the store can be reached (and, where cheap, written)."""
        ...

    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ValueError.

    Keys become file paths and S3 object names, so anything that could climb out of the
    store (``..``, a leading ``/``) or mean different things on different backends (case,
    spaces, empty segments) is refused before it reaches either. Segments starting with a
    dot are reserved for the filesystem store's own temporary and probe files.
    """
    shown = key[:80]
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"object key must be 1 to {MAX_KEY_LENGTH} characters: {shown!r}")
    if _KEY_CHARACTERS.fullmatch(key) is None:
        raise ValueError(f"object key may only contain a-z 0-9 / _ . -: {shown!r}")
    if key.startswith("/") or ".." in key:
        raise ValueError(f"object key must be relative and contain no '..': {shown!r}")
    if any(not segment or segment.startswith(".") for segment in key.split("/")):
        raise ValueError(f"object key has an empty or dot-led segment: {shown!r}")
    return key


def validate_range(start: int, end: int) -> None:
    """Raise ValueError for a range no backend could serve, before any I/O is spent on it."""
    if start < 0 or end < start:
        raise ValueError(f"invalid byte range [{start}, {end})")


async def copy_in_ranges(store: ObjectStore, key: str, target: Path, length: int) -> int:
    """``copy_out`` for a store that can only read ranges: pieces of COPY_PIECE bytes,
    written off the event loop, so memory stays bounded and the loop keeps serving."""
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            position = 0
            while position < length:
                end = min(length, position + COPY_PIECE)
                piece = await store.read_range(key, position, end)
                if not piece:
                    break
                await asyncio.to_thread(out.write, piece)
                position += len(piece)
        # Short: the object ended there. Whole: only its size says whether it goes on.
        return position if position < length else await store.size(key)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)  # a short unlink: not worth a thread hop
        raise
