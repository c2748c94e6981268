"""Retention epochs: each data key is wrapped under the key of its call's ISO week.

Why a level between the root key and the data keys: deleting a recording deletes its
wrapped data key from the database, but backups of the database keep the row, and while
the key that wrapped it lives, whoever restores a backup could open any copy of the audio
that survived (a replica, an unpurged version, a store's own backup). Epoch keys are kept
outside the database, in their own store, wrapped by the root key-encryption key. Once
every recording of a week is gone the week's key is destroyed there, and every copy of
every data key it wrapped, in every backup, is noise.

``EpochKeys`` is the one object callers hold; the work is done beside it: the keys and
their material (``epoch_material``), rotation (``rotation``), shredding spent weeks
(``shredding``) and status (``status``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from storage.audit import AuditTrail
from storage.db.database import Database
from storage.keys.epoch_calendar import EPOCH_KEY_PREFIX, HOLD_EPOCH, epoch_end, epoch_of
from storage.keys.epoch_material import KEYS_ACTOR, EpochKeyStore
from storage.keys.keyring import WrappedKey
from storage.keys.providers import KeyChain
from storage.keys.rotation import RewrapReport, Rotation
from storage.keys.shredding import ShredReport, shred_spent_epochs
from storage.keys.status import KeyStatus, key_status
from storage.objects.store import ObjectStore

__all__ = [
    "EPOCH_KEY_PREFIX",
    "HOLD_EPOCH",
    "DataKeys",
    "EpochKeys",
    "KeyStatus",
    "RewrapReport",
    "ShredReport",
    "epoch_end",
    "epoch_of",
]


class DataKeys(Protocol):
    """What storing, playing and scrubbing need: wrap a data key, open a wrapped one."""

    async def wrap(self, dek: bytes, object_id: uuid.UUID, *, started_at: datetime) -> WrappedKey:
        """Seal ``dek`` for ``object_id`` under the key of the call's epoch."""
        ...

    async def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """The data key; KeyringError if it cannot be opened (destroyed, wrong, altered)."""
        ...


class EpochKeys:
    """Wraps data keys under epoch keys and looks after those keys' lives.

    ``material`` is the epoch-key store: an object store that is not the database and
    should not be backed up with it. ``root`` wraps the epoch keys.
    """

    def __init__(
        self,
        *,
        database: Database,
        material: ObjectStore,
        root: KeyChain,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        retention_period: timedelta,
    ) -> None:
        self._keys = EpochKeyStore(
            database=database,
            material=material,
            root=root,
            audit=audit,
            clock=clock,
            retention_period=retention_period,
        )
        self._rotation = Rotation(self._keys)

    def __repr__(self) -> str:
        return repr(self._keys)

    async def wrap(self, dek: bytes, object_id: uuid.UUID, *, started_at: datetime) -> WrappedKey:
        """Seal ``dek`` for ``object_id`` under the current key of the call's epoch."""
        return await self._keys.wrap(dek, object_id, started_at=started_at)

    async def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """The data key; KeyringError if its epoch key is destroyed or it is not authentic."""
        return await self._keys.unwrap(wrapped, object_id)

    async def check(self) -> None:
        """Fail closed at start-up: the root key round-trips and the epoch-key store answers."""
        await self._keys.check()

    async def generation(self) -> int:
        """The current generation: 0 until the first rotation."""
        return await self._keys.generation()

    async def rotate_if_due(self, every: timedelta, *, actor: str) -> int | None:
        """Rotate when the current generation is ``every`` old; the new generation, or None."""
        return await self._rotation.rotate_if_due(every, actor=actor)

    async def rotation_due_at(self, every: timedelta) -> datetime | None:
        """When the current generation is due to be replaced under a rotation ``every``
        long; None when scheduled rotation is off or no key exists yet."""
        return await self._rotation.rotation_due_at(every)

    async def rotate(self, *, actor: str) -> int:
        """Start a new generation (and root version); returns the new generation."""
        return await self._rotation.rotate(actor=actor)

    async def stale_count(self) -> int:
        """How many data keys are not yet under a key of the current generation."""
        return await self._rotation.stale_count()

    async def rewrap(
        self,
        *,
        actor: str,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> RewrapReport:
        """Move every data key to its epoch's key of the current generation; then retire."""
        return await self._rotation.rewrap(actor=actor, batch_size=batch_size, progress=progress)

    async def retire(self, *, actor: str) -> list[str]:
        """Destroy superseded epoch keys and root versions nothing uses; the ids retired."""
        return await self._rotation.retire(actor=actor)

    async def shred_spent_epochs(self, *, actor: str = KEYS_ACTOR) -> ShredReport:
        """Destroy the key of every spent week whose recordings are all gone."""
        return await shred_spent_epochs(self._keys, actor=actor)

    async def status(self) -> KeyStatus:
        """The generation, each live epoch key with its data-key count, what is left to do."""
        return await key_status(self._keys, self._rotation.stale_count)
