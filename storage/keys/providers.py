"""The one interface every key-encryption-key provider meets, and the chain that picks one.

A provider (the local keyring, a KMS, and later perhaps Vault transit or a cloud HSM)
wraps 32-byte keys for a named object and says which wrapped keys are its own; adding
one is a new module with a class of this shape and a line where the service is wired.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Protocol

from storage.errors import KeyringError
from storage.keys.keyring import WrappedKey

_KEY_LENGTH = 32


class KeyProvider(Protocol):
    """A key-encryption-key provider that can say which wrapped keys are its own."""

    @property
    def current_kek_id(self) -> str:
        """The KEK that new wraps use."""
        ...

    def knows(self, kek_id: str) -> bool:
        """Whether a key wrapped under ``kek_id`` is this provider's to open."""
        ...

    def wrap(self, dek: bytes, object_id: uuid.UUID) -> WrappedKey:
        """Seal ``dek`` so it opens only for ``object_id``."""
        ...

    def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """The key, or KeyringError if it is not authentic for ``object_id``."""
        ...

    def kek_ids(self) -> list[str]:
        """Every KEK version this provider holds, current included."""
        ...

    def refresh(self) -> None:
        """Pick up versions another process added (a rotation run from the command line)."""
        ...

    def rotate(self) -> str:
        """Make a new KEK version current (if the provider does not do so itself)."""
        ...

    def retire(self, kek_id: str) -> bool:
        """Destroy an old, unused KEK version if the provider can; False if it did not."""
        ...


class KeyChain:
    """New wraps with the current provider; each unwrap by the provider whose key it is.

    This is how a service moves to a KMS without losing what the local keyring wrapped.
    """

    def __init__(self, current: KeyProvider, older: Sequence[KeyProvider] = ()) -> None:
        self._current = current
        self._all = [current, *older]

    def __repr__(self) -> str:
        return f"KeyChain(current={self._current!r}, providers={len(self._all)})"

    @property
    def current_kek_id(self) -> str:
        return self._current.current_kek_id

    def knows(self, kek_id: str) -> bool:
        return any(provider.knows(kek_id) for provider in self._all)

    def wrap(self, dek: bytes, object_id: uuid.UUID) -> WrappedKey:
        return self._current.wrap(dek, object_id)

    def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        for provider in self._all:
            if provider.knows(wrapped.kek_id):
                return provider.unwrap(wrapped, object_id)
        raise KeyringError(f"no configured provider holds key-encryption key {wrapped.kek_id}")

    def kek_ids(self) -> list[str]:
        """Every KEK version of every provider in the chain."""
        return [kek_id for provider in self._all for kek_id in provider.kek_ids()]

    def refresh(self) -> None:
        """Let every provider pick up versions another process added."""
        for provider in self._all:
            provider.refresh()

    def rotate(self) -> str:
        """Rotate the current provider; returns the KEK id new wraps now use."""
        return self._current.rotate()

    def retire(self, kek_id: str) -> bool:
        """Retire ``kek_id`` in whichever provider holds it, unless it is the current KEK."""
        if kek_id == self.current_kek_id:
            return False
        return any(p.knows(kek_id) and p.retire(kek_id) for p in self._all)

    def check(self) -> None:
        """Wrap and unwrap a throw-away key: fail closed at start-up, not at a capture."""
        probe, object_id = os.urandom(_KEY_LENGTH), uuid.uuid4()
        if self.unwrap(self.wrap(probe, object_id), object_id) != probe:
            raise KeyringError("the current key-encryption key does not round-trip")
