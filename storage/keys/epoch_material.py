"""Epoch keys themselves: wrapping data keys under them, making, loading and destroying them.

An epoch key's material lives in its own object store (not the database, not its backups),
wrapped by the root key; the database holds only its row. Rotation, shredding and status
work through this store.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import DataKey, EpochKey, KeyRotation
from storage.errors import KeyringError, ObjectMissing
from storage.keys.epoch_calendar import EPOCH_KEY_PREFIX, HOLD_EPOCH, epoch_of, is_spent
from storage.keys.keyring import WrappedKey, blob_kek_raw, open_key, seal_key
from storage.keys.providers import KeyChain
from storage.objects.store import ObjectStore

KEYS_ACTOR: Final = "keys"
# Unwrapped epoch keys are kept in memory this long (bytes cannot be wiped; keep it short).
_CACHE_SECONDS: Final = 300.0
_KEY_LENGTH: Final = 32
_FORMAT: Final = "callrec-epoch-key/1"
_PURGE_WINDOW: Final = timedelta(days=30)


class EpochKeyStore:
    """Wraps data keys under epoch keys and keeps the epoch keys' material.

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
        self.database = database
        self.root = root
        self.audit = audit
        self.clock = clock
        self._material = material
        self._period = retention_period
        self._cache: dict[str, tuple[float, AESGCM]] = {}

    def __repr__(self) -> str:
        return f"EpochKeys(root={self.root!r}, material={self._material!r})"

    async def wrap(self, dek: bytes, object_id: uuid.UUID, *, started_at: datetime) -> WrappedKey:
        """Seal ``dek`` for ``object_id`` under the current key of the call's epoch."""
        key_id, kek = await self.current_key(self.home(epoch_of(started_at)))
        return WrappedKey(key_id, seal_with(kek, key_id, dek, object_id))

    async def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """The data key; KeyringError if its epoch key is destroyed or it is not authentic."""
        if not wrapped.kek_id.startswith(EPOCH_KEY_PREFIX):
            # Wrapped directly by a root key before epochs existed; a re-wrap moves it.
            return await asyncio.to_thread(self.root.unwrap, wrapped, object_id)
        if blob_kek_raw(wrapped.blob) != _raw_id(wrapped.kek_id):
            raise KeyringError("wrapped key names a different epoch key than its record")
        kek = await self._epoch_key(wrapped.kek_id)
        return open_key(kek, wrapped.blob, object_id)

    async def check(self) -> None:
        """Fail closed at start-up: the root key round-trips and the epoch-key store answers."""
        await asyncio.to_thread(self.root.check)
        await self._material.check()

    async def generation(self) -> int:
        """The current generation: 0 until the first rotation."""
        async with self.database.read() as session:
            return await current_generation(session)

    def spent(self, epoch: str, now: datetime) -> bool:
        """Whether ``epoch``'s week is over for every recording it can hold."""
        return is_spent(epoch, now, self._period)

    def home(self, epoch: str) -> str:
        """Where a key of ``epoch`` is wrapped now: the hold epoch once the week is spent."""
        return HOLD_EPOCH if self.spent(epoch, self.clock()) else epoch

    async def current_key(self, epoch: str) -> tuple[str, AESGCM]:
        """The key of ``epoch`` in the current generation, made on first use."""
        async with self.database.read() as session:
            generation = await current_generation(session)
            key_id = await self._live_key(session, epoch, generation)
        if key_id is None:
            key_id = await self._create(epoch, generation)
        return key_id, await self._epoch_key(key_id)

    async def replace_wraps(
        self,
        changes: list[dict[str, Any]],
        records: Callable[[int], list[AuditRecord]],
    ) -> int:
        """Write new wraps, each only over the exact wrap it replaces, and their audit
        events, in one commit; returns how many rows changed.

        Each change names ``b_object``, ``b_old`` (the key id read), ``b_new`` and
        ``b_blob``, so a capture, a deletion or another re-wrap that changed the row
        meanwhile is never undone.
        """
        table = cast(Table, DataKey.__table__)
        statement = (
            update(table)
            .where(table.c.object_id == bindparam("b_object"))
            .where(table.c.kek_id == bindparam("b_old"))
            .values(kek_id=bindparam("b_new"), wrapped=bindparam("b_blob"))
        )
        async with self.database.transaction() as session:
            result = await session.execute(statement, changes)
            # executemany reports the total where the driver can; otherwise count them all.
            reported = getattr(result, "rowcount", -1)
            count = int(reported) if reported is not None and reported >= 0 else len(changes)
            if count:
                await self.audit.append_many(session, records(count))
        return count

    async def destroy(self, key_id: str, reason: str, actor: str) -> bool:
        """Destroy one epoch key if nothing refers to it: committed first, then the material."""
        async with self.database.transaction() as session:
            row = (
                await session.execute(
                    select(EpochKey).where(EpochKey.id == key_id).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None or row.destroyed_at is not None:
                return False
            if await session.scalar(select(exists().where(DataKey.kek_id == key_id))):
                return False
            row.destroyed_at = self.clock()
            await self.audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="keys.epoch_key_destroyed",
                    details={
                        "key_id": key_id,
                        "epoch": row.epoch,
                        "generation": row.generation,
                        "reason": reason,
                    },
                ),
            )
        self._cache.pop(key_id, None)
        await self._material.delete(_material_key(key_id))
        return True

    async def purge_destroyed(self) -> None:
        """Delete the material of recently destroyed keys again (a crash may have left it)."""
        since = self.clock() - _PURGE_WINDOW
        async with self.database.read() as session:
            ids = list(
                (
                    await session.execute(select(EpochKey.id).where(EpochKey.destroyed_at >= since))
                ).scalars()
            )
        for key_id in ids:
            await self._material.delete(_material_key(key_id))

    @staticmethod
    async def _live_key(session: AsyncSession, epoch: str, generation: int) -> str | None:
        # Two processes may each make one at the same moment; both work, and the oldest
        # is the one everybody picks from then on.
        found: str | None = await session.scalar(
            select(EpochKey.id)
            .where(
                EpochKey.epoch == epoch,
                EpochKey.generation == generation,
                EpochKey.destroyed_at.is_(None),
            )
            .order_by(EpochKey.created_at, EpochKey.id)
            .limit(1)
        )
        return found

    async def _create(self, epoch: str, generation: int) -> str:
        # The material is durable in its store before any row can name it, so a data key
        # is never wrapped under a key that a crash could lose.
        material = os.urandom(_KEY_LENGTH)
        key_id = EPOCH_KEY_PREFIX + uuid.uuid4().hex
        await asyncio.to_thread(self.root.refresh)
        wrapped = await asyncio.to_thread(self.root.wrap, material, _object_id(key_id))
        now = self.clock()
        document = {
            "format": _FORMAT,
            "id": key_id,
            "epoch": epoch,
            "generation": generation,
            "root_kek_id": wrapped.kek_id,
            "wrapped": base64.b64encode(wrapped.blob).decode("ascii"),
            "created_at": now.isoformat(),
        }
        await self._put_material(key_id, json.dumps(document).encode())
        async with self.database.transaction() as session:
            session.add(
                EpochKey(
                    id=key_id,
                    epoch=epoch,
                    generation=generation,
                    root_kek_id=wrapped.kek_id,
                    created_at=now,
                )
            )
            await self.audit.append(
                session,
                AuditRecord(
                    actor=KEYS_ACTOR,
                    action="keys.epoch_key_created",
                    details={"key_id": key_id, "epoch": epoch, "generation": generation},
                ),
            )
        self._cache[key_id] = (time.monotonic(), AESGCM(material))
        return key_id

    async def _put_material(self, key_id: str, document: bytes) -> None:
        # What goes through the file is the root-wrapped key, never the key itself.
        with tempfile.TemporaryDirectory(prefix="callrec-epoch-") as scratch:
            path = Path(scratch) / "key.json"
            await asyncio.to_thread(path.write_bytes, document)
            await self._material.put_file(_material_key(key_id), path)

    async def _epoch_key(self, key_id: str) -> AESGCM:
        cached = self._cache.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        name = _material_key(key_id)
        try:
            size = await self._material.size(name)
            raw = await self._material.read_range(name, 0, size)
        except ObjectMissing:
            raise KeyringError(f"epoch key {key_id} is destroyed or missing") from None
        try:
            document = json.loads(raw)
            if document["format"] != _FORMAT or document["id"] != key_id:
                raise ValueError("not this epoch key")
            wrapped = WrappedKey(document["root_kek_id"], base64.b64decode(document["wrapped"]))
        except (ValueError, KeyError, TypeError):
            raise KeyringError(f"epoch key {key_id} is damaged") from None
        material = await asyncio.to_thread(self.root.unwrap, wrapped, _object_id(key_id))
        kek = AESGCM(material)
        self._cache[key_id] = (time.monotonic(), kek)
        return kek


def seal_with(kek: AESGCM, key_id: str, dek: bytes, object_id: uuid.UUID) -> bytes:
    """``dek`` sealed for ``object_id`` under the epoch key ``key_id`` (whose key is ``kek``)."""
    return seal_key(kek, _raw_id(key_id), dek, object_id)


def stale(generation: int) -> Any:
    """SQL on DataKey outer-joined to EpochKey: not under a key of ``generation``."""
    return EpochKey.id.is_(None) | (EpochKey.generation < generation)


async def current_generation(session: AsyncSession) -> int:
    """The newest rotation's generation, read in ``session``; 0 before any rotation."""
    return int(await session.scalar(select(func.max(KeyRotation.generation))) or 0)


def _material_key(key_id: str) -> str:
    """Where an epoch key lives in its store: under its own id, which says nothing else."""
    return key_id


def _object_id(key_id: str) -> uuid.UUID:
    """The id an epoch key's root wrap is bound to: its own."""
    try:
        return uuid.UUID(hex=key_id.removeprefix(EPOCH_KEY_PREFIX))
    except ValueError:
        raise KeyringError("a wrapped key names an epoch key id that is not one") from None


def _raw_id(key_id: str) -> bytes:
    return _object_id(key_id).bytes
