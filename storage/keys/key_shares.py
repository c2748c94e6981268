"""Per-recording key shares: the half of each data key that lives in the object store.

Why: the database keeps every data key sealed under its week's epoch key, and backups of
the database keep those rows. While the week's key lives, an old backup could open the
data key of a recording erased since, and with it any saved copy of the ciphertext.
So a recording stored with a share keeps, in the database, not its data keys but each
data key masked by a value only the share gives:

    mask       = HKDF-SHA256(ikm = share, salt = none,
                             info = "callrec/key-share/v1 mask" 0x00 || object_id, 32)
    sealed row = epoch wrap of (data key XOR mask)

The share (32 random bytes) is a small create-only object beside the recording's audio,
deleted with it. Once it is gone, the database (any copy of it) and the live epoch keys
give only the masked value, which says nothing about the data key. The database keeps a
digest of the share so that a missing or altered share is named as such, never mistaken
for damaged audio. A recording stored before shares existed has no digest: its rows hold
the data keys themselves, as before.

Rotation and moves to the hold key re-seal the masked value as it is: they never need
the share, so they never read the object store.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import IntegrityFailure, KeyShareMissing, ObjectMissing
from storage.objects.store import RECORDINGS_PREFIX, ObjectStore

SHARE_LENGTH: Final = 32
_MAGIC: Final = b"CRKS"
_VERSION: Final = 1
# magic, version, the recording's id, the share itself
SHARE_OBJECT_LENGTH: Final = len(_MAGIC) + 1 + 16 + SHARE_LENGTH
_MASK_INFO: Final = b"callrec/key-share/v1 mask\x00"
_DIGEST_INFO: Final = b"callrec/key-share/v1 digest\x00"


def share_key_for(recording_id: uuid.UUID) -> str:
    """Where a recording's share lives: beside its objects, named by the recording's id."""
    return f"{RECORDINGS_PREFIX}{recording_id.hex[:2]}/{recording_id.hex}.share"


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


@dataclass(frozen=True, slots=True)
class KeyShare:
    """One recording's share. ``secret`` is key material: never log or print it."""

    recording_id: uuid.UUID
    secret: bytes

    def __repr__(self) -> str:
        return f"KeyShare(recording_id={self.recording_id})"

    @classmethod
    def new(cls, recording_id: uuid.UUID) -> KeyShare:
        """A fresh random share for ``recording_id``."""
        return cls(recording_id, os.urandom(SHARE_LENGTH))

    @property
    def digest(self) -> bytes:
        """What the database keeps to recognise the share: one-way, bound to the recording."""
        return _hkdf(self.secret, _DIGEST_INFO + self.recording_id.bytes)

    def mask(self, key: bytes, object_id: uuid.UUID) -> bytes:
        """``key`` XOR this share's mask for ``object_id``: masking and unmasking are one."""
        if len(key) != SHARE_LENGTH:
            raise ValueError("a data key is 32 bytes")
        pad = _hkdf(self.secret, _MASK_INFO + object_id.bytes)
        return bytes(a ^ b for a, b in zip(key, pad, strict=True))

    def encode(self) -> bytes:
        """The share object's bytes (SHARE_OBJECT_LENGTH of them)."""
        return _MAGIC + bytes([_VERSION]) + self.recording_id.bytes + self.secret


def decode_share(raw: bytes, recording_id: uuid.UUID, digest: bytes) -> KeyShare:
    """The share in ``raw``; IntegrityFailure naming what is wrong with it."""
    if len(raw) != SHARE_OBJECT_LENGTH:
        raise IntegrityFailure("the recording's key share has the wrong length")
    if raw[:4] != _MAGIC or raw[4] != _VERSION:
        raise IntegrityFailure("the recording's key share is not a version 1 share")
    if raw[5:21] != recording_id.bytes:
        raise IntegrityFailure("the key share belongs to another recording")
    share = KeyShare(recording_id, raw[21:])
    if not hmac.compare_digest(share.digest, digest):
        raise IntegrityFailure("the recording's key share does not match its recorded digest")
    return share


class KeyShares:
    """Puts, reads and names recordings' shares in the object store of their audio."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    async def put(self, share: KeyShare, *, tags: Mapping[str, str]) -> str | None:
        """Store ``share`` create-only with ``tags``; the store's version id, if it has one.

        The object store takes files, so the share passes through a private temporary
        directory for the length of one put and is removed at once.
        """
        with tempfile.TemporaryDirectory(prefix="callrec-share-") as scratch:
            path = Path(scratch) / "share"
            await asyncio.to_thread(path.write_bytes, share.encode())
            return await self._objects.put_file(share_key_for(share.recording_id), path, tags=tags)

    async def read(self, recording_id: uuid.UUID, digest: bytes | None) -> KeyShare | None:
        """The recording's share; None for a recording stored before shares (no digest).

        One GET. KeyShareMissing when it is not in the store; IntegrityFailure when it is
        cut short, grown or altered.
        """
        if digest is None:
            return None
        try:
            # One byte past the end, so an object that grew is seen in the same request.
            raw = await self._objects.read_range(
                share_key_for(recording_id), 0, SHARE_OBJECT_LENGTH + 1
            )
        except ObjectMissing:
            raise KeyShareMissing("the recording's key share is missing from the store") from None
        return decode_share(raw, recording_id, digest)


def unmask(unwrapped: bytes, object_id: uuid.UUID, share: KeyShare | None) -> bytes:
    """The data key from what its epoch wrap held: as is without a share (older recordings)."""
    return unwrapped if share is None else share.mask(unwrapped, object_id)
