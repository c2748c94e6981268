"""Local key-encryption keys and wrapping data keys with them; not the object format."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.durable_files import (
    fsync_directory,
    read_private_file,
    refuse_loose_mode,
    write_private_file,
)
from storage.errors import KeyringError

__all__ = ["KeyWrapper", "LocalKeyring", "WrappedKey", "blob_kek_raw", "open_key", "seal_key"]

_KEY_LENGTH: Final = 32
_NONCE_LENGTH: Final = 12
_BLOB_VERSION: Final = 0x01
_BLOB_LENGTH: Final = 1 + 16 + _NONCE_LENGTH + _KEY_LENGTH + 16
_WRAP_INFO: Final = b"sgrc-wrap/v1\0"
_KEY_SUFFIX: Final = ".key"
_CURRENT: Final = "current"
_PRIVATE_BITS: Final = 0o077


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key sealed under a KEK; safe to store, useless without that KEK."""

    kek_id: str
    blob: bytes = field(repr=False)


class KeyWrapper(Protocol):
    """What storage needs from a key provider, so a KMS can stand in for the local keyring."""

    @property
    def current_kek_id(self) -> str:
        """The KEK that new wraps use."""
        ...

    def wrap(self, dek: bytes, object_id: uuid.UUID) -> WrappedKey:
        """Seal ``dek`` so it can only be unwrapped for ``object_id``."""
        ...

    def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """Return the data key, or raise KeyringError if it is not authentic for ``object_id``."""
        ...


def _parse_kek_id(text: str) -> str | None:
    """Return the canonical id if ``text`` is one (32 lowercase hex digits), else None."""
    if len(text) != 32:
        return None
    try:
        parsed = uuid.UUID(hex=text)
    except ValueError:
        return None
    return parsed.hex if parsed.hex == text else None


def _aad(object_id: uuid.UUID, kek_raw: bytes) -> bytes:
    return _WRAP_INFO + object_id.bytes + kek_raw


def seal_key(kek: AESGCM, kek_raw: bytes, dek: bytes, object_id: uuid.UUID) -> bytes:
    """The wrap blob of ``dek`` under ``kek`` (whose 16-byte id is ``kek_raw``).

    Bound to the object and to the KEK's id, so a blob moved to another row, or relabelled
    as another KEK's, fails authentication. Shared by every AES-GCM wrapping key here.
    """
    if len(dek) != _KEY_LENGTH:
        raise ValueError("a data key is exactly 32 bytes")
    nonce = os.urandom(_NONCE_LENGTH)
    sealed = kek.encrypt(nonce, dek, _aad(object_id, kek_raw))
    return bytes([_BLOB_VERSION]) + kek_raw + nonce + sealed


def blob_kek_raw(blob: bytes) -> bytes:
    """The 16-byte KEK id a wrap blob names; KeyringError if it is no wrap blob of ours."""
    if len(blob) != _BLOB_LENGTH or blob[0] != _BLOB_VERSION:
        raise KeyringError("wrapped key has an unknown format")
    return blob[1:17]


def open_key(kek: AESGCM, blob: bytes, object_id: uuid.UUID) -> bytes:
    """The data key in ``blob``; KeyringError unless it was sealed by ``kek`` for ``object_id``."""
    kek_raw = blob_kek_raw(blob)
    nonce = blob[17 : 17 + _NONCE_LENGTH]
    try:
        return kek.decrypt(nonce, blob[17 + _NONCE_LENGTH :], _aad(object_id, kek_raw))
    except InvalidTag:
        raise KeyringError(
            "wrapped key failed authentication (wrong object, wrong KEK or altered)"
        ) from None


class LocalKeyring:
    """KEKs in one private directory: ``<kek_id>.key`` files plus a ``current`` pointer.

    Everything is checked on open, so a keyring that another user could read, or whose
    files were damaged, stops the service at start-up rather than at the first wrap.
    """

    __slots__ = ("_current", "_directory", "_keys")

    def __init__(self, directory: Path, keys: dict[str, AESGCM], current: str) -> None:
        """Use ``open``; this only assembles already-checked parts."""
        self._directory = directory
        self._keys = keys
        self._current = current

    @classmethod
    def open(cls, directory: Path, *, create: bool = True) -> LocalKeyring:
        """Load and check the keyring, creating it with a first key if it is new and allowed."""
        directory = Path(directory)
        if not directory.exists():
            if not create:
                raise KeyringError(f"keyring directory {directory} does not exist")
            directory.mkdir(mode=0o700, parents=True)
            # mkdir's mode is filtered by the umask; set it outright so it is what we claim.
            directory.chmod(0o700)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise KeyringError(f"keyring path {directory} is not a directory")
        refuse_loose_mode(directory, info.st_mode)

        keys: dict[str, AESGCM] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix != _KEY_SUFFIX:
                continue
            kek_id = _parse_kek_id(path.stem)
            if kek_id is None:
                raise KeyringError(f"{path} is not named <32 hex digit id>.key")
            material = read_private_file(path, _KEY_LENGTH)
            if len(material) != _KEY_LENGTH:
                raise KeyringError(f"{path} holds {len(material)} bytes, expected {_KEY_LENGTH}")
            keys[kek_id] = AESGCM(material)

        current_path = directory / _CURRENT
        if not keys and not current_path.exists():
            if not create:
                raise KeyringError(f"keyring directory {directory} holds no keys")
            keyring = cls(directory, {}, "")
            keyring.rotate()
            return keyring
        if not current_path.exists():
            raise KeyringError(
                f"{current_path} is missing; write the id of the key new wraps should use"
            )
        raw = read_private_file(current_path, 64)
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            text = ""
        current = _parse_kek_id(text)
        if current is None:
            raise KeyringError(f"{current_path} does not hold a key id")
        if current not in keys:
            raise KeyringError(f"{current_path} names key {current}, which is not in {directory}")
        return cls(directory, keys, current)

    def __repr__(self) -> str:
        return (
            f"LocalKeyring(directory={str(self._directory)!r}, current={self._current!r}, "
            f"keys={len(self._keys)})"
        )

    @property
    def current_kek_id(self) -> str:
        """The KEK that new wraps use."""
        return self._current

    def knows(self, kek_id: str) -> bool:
        """Whether a key wrapped under ``kek_id`` is this keyring's to open."""
        if kek_id not in self._keys and _parse_kek_id(kek_id) is not None:
            # Perhaps made by a rotation in another process since this one started.
            self.refresh()
        return kek_id in self._keys

    def rotate(self) -> str:
        """Create a new KEK and make it current; older KEKs stay so old wraps still open."""
        kek_id = uuid.uuid4().hex
        material = os.urandom(_KEY_LENGTH)
        write_private_file(self._directory / f"{kek_id}{_KEY_SUFFIX}", material, exclusive=True)
        fsync_directory(self._directory)
        # Replace ``current`` atomically so a crash leaves either the old or the new id.
        staging = self._directory / f"{_CURRENT}.tmp"
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        write_private_file(staging, f"{kek_id}\n".encode("ascii"), exclusive=True)
        staging.replace(self._directory / _CURRENT)
        fsync_directory(self._directory)
        self._keys[kek_id] = AESGCM(material)
        self._current = kek_id
        return kek_id

    def refresh(self) -> None:
        """Re-read the directory: another process (``callrec keys rotate``) may have added
        a key and moved ``current``; a running service picks both up here."""
        fresh = LocalKeyring.open(self._directory, create=False)
        self._keys, self._current = fresh._keys, fresh._current

    def retire(self, kek_id: str) -> bool:
        """Delete a KEK that is not current; what it wrapped can never be opened again.

        The caller proves nothing uses it first. Returns False if it was not here.
        """
        if kek_id == self._current:
            raise KeyringError("the current key-encryption key cannot be retired")
        if self._keys.pop(kek_id, None) is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            (self._directory / f"{kek_id}{_KEY_SUFFIX}").unlink()
        fsync_directory(self._directory)
        return True

    def kek_ids(self) -> list[str]:
        """Every KEK version held here, current included."""
        return sorted(self._keys)

    def wrap(self, dek: bytes, object_id: uuid.UUID) -> WrappedKey:
        """Seal ``dek`` under the current KEK, bound to ``object_id`` and to the KEK's id."""
        kek_raw = uuid.UUID(hex=self._current).bytes
        return WrappedKey(
            self._current, seal_key(self._keys[self._current], kek_raw, dek, object_id)
        )

    def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """Return the data key, refusing anything not wrapped by us for this very object."""
        kek_id = uuid.UUID(bytes=blob_kek_raw(wrapped.blob)).hex
        if kek_id != wrapped.kek_id:
            raise KeyringError("wrapped key names a different KEK than its record")
        kek = self._keys.get(kek_id)
        if kek is None:
            self.refresh()
            kek = self._keys.get(kek_id)
        if kek is None:
            raise KeyringError(f"key-encryption key {kek_id} is not in the keyring")
        return open_key(kek, wrapped.blob, object_id)
