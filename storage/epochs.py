"""Retention epochs: each data key is wrapped under the key of its call's ISO week.

Why a level between the root key and the data keys: deleting a recording deletes its
wrapped data key from the database, but backups of the database keep the row, and while
the key that wrapped it lives, whoever restores a backup could open any copy of the audio
that survived (a replica, an unpurged version, a store's own backup). Epoch keys are kept
outside the database, in their own store, wrapped by the root key-encryption key. Once
every recording of a week is gone the week's key is destroyed there, and every copy of
every data key it wrapped, in every backup, is noise. A recording still held when its week
is spent is first re-wrapped under the hold key, which is never destroyed by age.

Rotation works on the same level. A rotation starts a new generation (and a new root
version where the provider keeps versions); re-wrapping moves each data key to its epoch's
key of the current generation, one small AES operation per key that never touches audio;
a superseded epoch key is destroyed once nothing refers to it, and a root version once no
epoch key is wrapped under it. Every step is a commit of its own and is audited, so a
crash at any point leaves every recording playable and the next run carries on.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.blobs import ObjectStore
from storage.database import Database
from storage.errors import KeyringError, ObjectMissing
from storage.holds import held_at
from storage.key_providers import KeyChain
from storage.keyring import WrappedKey, blob_kek_raw, open_key, seal_key
from storage.models import DataKey, EpochKey, KeyRotation, Recording, StoredObject

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

EPOCH_KEY_PREFIX: Final = "ep-"
HOLD_EPOCH: Final = "hold"
KEYS_ACTOR: Final = "keys"
# A week is spent this long after its last possible deadline, so no capture still in
# flight (a capture's deadline must be in the future when it is accepted) can want it.
SPENT_GRACE: Final = timedelta(days=1)
# A superseded key is destroyed only this long after the rotation: every process has
# read the new generation by then (each wrap reads it), and commits take seconds.
RETIRE_GRACE: Final = timedelta(minutes=10)
# Unwrapped epoch keys are kept in memory this long (bytes cannot be wiped; keep it short).
_CACHE_SECONDS: Final = 300.0
_KEY_LENGTH: Final = 32
_FORMAT: Final = "callrec-epoch-key/1"
_PURGE_WINDOW: Final = timedelta(days=30)


class DataKeys(Protocol):
    """What storing, playing and scrubbing need: wrap a data key, open a wrapped one."""

    async def wrap(self, dek: bytes, object_id: uuid.UUID, *, started_at: datetime) -> WrappedKey:
        """Seal ``dek`` for ``object_id`` under the key of the call's epoch."""
        ...

    async def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """The data key; KeyringError if it cannot be opened (destroyed, wrong, altered)."""
        ...


def epoch_of(moment: datetime) -> str:
    """The ISO week (UTC) ``moment`` falls in, as ``2026-W48``."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def epoch_end(epoch: str) -> datetime | None:
    """When ``epoch``'s week ends (UTC); None for the hold epoch, which never ends."""
    if epoch == HOLD_EPOCH:
        return None
    year, week = epoch.split("-W")
    start = datetime.fromisocalendar(int(year), int(week), 1).replace(tzinfo=UTC)
    return start + timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RewrapReport:
    """What a re-wrap did: how many data keys moved, to which generation, what was retired."""

    generation: int
    rewrapped: int
    retired: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ShredReport:
    """What a pass over spent epochs did."""

    destroyed: list[str] = field(default_factory=list)  # epochs whose key was destroyed
    moved_to_hold: int = 0  # held recordings' data keys re-wrapped under the hold key
    waiting: list[str] = field(default_factory=list)  # spent, but unheld keys remain


@dataclass(frozen=True, slots=True)
class EpochKeyStatus:
    """One live epoch key and how many data keys it wraps."""

    key_id: str
    epoch: str
    generation: int
    data_keys: int


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """Where the key hierarchy stands, for ``callrec keys status`` and the tests."""

    generation: int
    rotated_at: datetime | None
    root_kek_id: str
    epoch_keys: list[EpochKeyStatus]
    stale: int  # data keys not yet under the current generation
    destroyed: int  # epoch keys destroyed so far


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
        self._database = database
        self._material = material
        self._root = root
        self._audit = audit
        self._clock = clock
        self._period = retention_period
        self._cache: dict[str, tuple[float, AESGCM]] = {}

    def __repr__(self) -> str:
        return f"EpochKeys(root={self._root!r}, material={self._material!r})"

    # -- wrapping ----------------------------------------------------------------------

    async def wrap(self, dek: bytes, object_id: uuid.UUID, *, started_at: datetime) -> WrappedKey:
        """Seal ``dek`` for ``object_id`` under the current key of the call's epoch."""
        key_id, kek = await self._current_key(self._home(epoch_of(started_at)))
        return WrappedKey(key_id, seal_key(kek, _raw_id(key_id), dek, object_id))

    async def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """The data key; KeyringError if its epoch key is destroyed or it is not authentic."""
        if not wrapped.kek_id.startswith(EPOCH_KEY_PREFIX):
            # Wrapped directly by a root key before epochs existed; a re-wrap moves it.
            return await asyncio.to_thread(self._root.unwrap, wrapped, object_id)
        if blob_kek_raw(wrapped.blob) != _raw_id(wrapped.kek_id):
            raise KeyringError("wrapped key names a different epoch key than its record")
        kek = await self._epoch_key(wrapped.kek_id)
        return open_key(kek, wrapped.blob, object_id)

    async def check(self) -> None:
        """Fail closed at start-up: the root key round-trips and the epoch-key store answers."""
        await asyncio.to_thread(self._root.check)
        await self._material.check()

    # -- rotation ----------------------------------------------------------------------

    async def generation(self) -> int:
        """The current generation: 0 until the first rotation."""
        async with self._database.read() as session:
            return await _generation(session)

    async def rotate_if_due(self, every: timedelta, *, actor: str) -> int | None:
        """Rotate when the current generation is ``every`` old; the new generation, or None.

        Before the first rotation the age is counted from the first epoch key, so a new
        installation is not rotated on its first day. ``every`` of zero never rotates.
        """
        if not every:
            return None
        async with self._database.read() as session:
            since = await session.scalar(
                select(KeyRotation.rotated_at).order_by(KeyRotation.generation.desc()).limit(1)
            ) or await session.scalar(select(func.min(EpochKey.created_at)))
        if since is None or self._clock() - since < every:
            return None
        return await self.rotate(actor=actor)

    async def rotate(self, *, actor: str) -> int:
        """Make a new root version current (where the provider has versions) and a new
        generation of epoch keys for new wraps; returns the new generation."""
        root_id = await asyncio.to_thread(self._root.rotate)
        async with self._database.transaction() as session:
            generation = await _generation(session) + 1
            session.add(
                KeyRotation(
                    generation=generation,
                    root_kek_id=root_id,
                    rotated_at=self._clock(),
                    rotated_by=actor,
                )
            )
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="keys.rotated",
                    details={"generation": generation, "root_kek_id": root_id},
                ),
            )
        return generation

    async def stale_count(self) -> int:
        """How many data keys are not yet under a key of the current generation."""
        async with self._database.read() as session:
            generation = await _generation(session)
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(DataKey)
                    .outerjoin(EpochKey, EpochKey.id == DataKey.kek_id)
                    .where(_stale(generation))
                )
                or 0
            )

    async def rewrap(
        self,
        *,
        actor: str,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> RewrapReport:
        """Move every data key to its epoch's key of the current generation; then retire.

        Each batch is read, re-wrapped in memory and written in one commit that changes a
        row only if it still holds what was read, so a capture, a deletion or another
        re-wrap running meanwhile is never undone. Killed at any point, every row holds a
        wrap that opens, and the next run carries on from what is left.
        """
        generation = await self.generation()
        moved = 0
        while True:
            passed = await self._rewrap_pass(generation, actor, batch_size, progress)
            moved += passed
            # Rows committed under an older key while the pass ran (a process that read
            # the generation just before the rotation) are caught by another pass.
            if passed == 0 or await self.stale_count() == 0:
                break
        return RewrapReport(generation, moved, await self.retire(actor=actor))

    async def _rewrap_pass(
        self,
        generation: int,
        actor: str,
        batch_size: int,
        progress: Callable[[int], None] | None,
    ) -> int:
        after: uuid.UUID | None = None
        moved = 0
        # Each epoch's target key, looked up once per pass rather than once per row.
        targets: dict[str, tuple[str, AESGCM]] = {}
        while True:
            async with self._database.read() as session:
                query = (
                    select(
                        DataKey.object_id,
                        DataKey.kek_id,
                        DataKey.wrapped,
                        Recording.started_at,
                        EpochKey.epoch,
                    )
                    .join(StoredObject, StoredObject.id == DataKey.object_id)
                    .join(Recording, Recording.id == StoredObject.recording_id)
                    .outerjoin(EpochKey, EpochKey.id == DataKey.kek_id)
                    .where(_stale(generation))
                    .order_by(DataKey.object_id)
                    .limit(batch_size)
                )
                if after is not None:
                    query = query.where(DataKey.object_id > after)
                rows = (await session.execute(query)).all()
            if not rows:
                return moved
            after = rows[-1].object_id
            changes = []
            for object_id, kek_id, blob, started_at, epoch in rows:
                dek = await self.unwrap(WrappedKey(kek_id, blob), object_id)
                home = self._home(epoch or epoch_of(started_at))
                if home not in targets:
                    targets[home] = await self._current_key(home)
                new_id, kek = targets[home]
                changes.append(
                    {
                        "b_object": object_id,
                        "b_old": kek_id,
                        "b_new": new_id,
                        "b_blob": seal_key(kek, _raw_id(new_id), dek, object_id),
                    }
                )
            changed = await self._replace_wraps(
                changes,
                lambda count: [
                    AuditRecord(
                        actor=actor,
                        action="keys.rewrapped",
                        details={"generation": generation, "data_keys": count},
                    )
                ],
            )
            moved += changed
            if progress is not None:
                progress(len(rows))

    async def _replace_wraps(
        self,
        changes: list[dict[str, Any]],
        records: Callable[[int], list[AuditRecord]],
    ) -> int:
        """Write new wraps, each only over the exact wrap it replaces, and their audit
        events, in one commit; returns how many rows changed."""
        table = cast(Table, DataKey.__table__)
        statement = (
            update(table)
            .where(table.c.object_id == bindparam("b_object"))
            .where(table.c.kek_id == bindparam("b_old"))
            .values(kek_id=bindparam("b_new"), wrapped=bindparam("b_blob"))
        )
        async with self._database.transaction() as session:
            result = await session.execute(statement, changes)
            # executemany reports the total where the driver can; otherwise count them all.
            reported = getattr(result, "rowcount", -1)
            count = int(reported) if reported is not None and reported >= 0 else len(changes)
            if count:
                await self._audit.append_many(session, records(count))
        return count

    async def retire(self, *, actor: str) -> list[str]:
        """Destroy superseded epoch keys nothing uses, then root versions nothing uses.

        Only once the rotation is RETIRE_GRACE old, so no process can still be about to
        wrap under a superseded key. Returns the ids retired.
        """
        now = self._clock()
        async with self._database.read() as session:
            generation = await _generation(session)
            rotated_at = await session.scalar(
                select(KeyRotation.rotated_at).where(KeyRotation.generation == generation)
            )
            if rotated_at is not None and now - rotated_at < RETIRE_GRACE:
                return []
            unused = list(
                (
                    await session.execute(
                        select(EpochKey.id).where(
                            EpochKey.generation < generation,
                            EpochKey.destroyed_at.is_(None),
                            ~exists().where(DataKey.kek_id == EpochKey.id),
                        )
                    )
                ).scalars()
            )
        retired = [key_id for key_id in unused if await self._destroy(key_id, "superseded", actor)]
        retired += await self._retire_roots(actor)
        return retired

    async def _retire_roots(self, actor: str) -> list[str]:
        await asyncio.to_thread(self._root.refresh)
        current = self._root.current_kek_id
        retired = []
        for kek_id in self._root.kek_ids():
            if kek_id == current:
                continue
            async with self._database.read() as session:
                used = await session.scalar(
                    select(
                        exists().where(
                            EpochKey.root_kek_id == kek_id, EpochKey.destroyed_at.is_(None)
                        )
                        | exists().where(DataKey.kek_id == kek_id)
                    )
                )
            if used or not await asyncio.to_thread(self._root.retire, kek_id):
                continue
            async with self._database.transaction() as session:
                await self._audit.append(
                    session,
                    AuditRecord(
                        actor=actor, action="keys.root_retired", details={"root_kek_id": kek_id}
                    ),
                )
            retired.append(kek_id)
        return retired

    # -- epoch shredding ---------------------------------------------------------------

    async def shred_spent_epochs(self, *, actor: str = KEYS_ACTOR) -> ShredReport:
        """Destroy the key of every spent week whose recordings are all gone.

        A held recording of a spent week is first re-wrapped under the hold key (audited
        on the recording). A week whose unheld recordings are not yet deleted waits for the
        sweep. Also finishes destroying the material of keys whose destruction was
        committed but not completed (a crash in between).
        """
        await self._purge_destroyed()
        now = self._clock()
        async with self._database.read() as session:
            live = (
                await session.execute(
                    select(EpochKey.id, EpochKey.epoch).where(
                        EpochKey.destroyed_at.is_(None), EpochKey.epoch != HOLD_EPOCH
                    )
                )
            ).all()
        destroyed, waiting, moved = [], [], 0
        for key_id, epoch in live:
            if not self._spent(epoch, now):
                continue
            moved += await self._move_held(key_id, epoch, now, actor)
            if await self._destroy(key_id, "epoch_spent", actor):
                destroyed.append(epoch)
            else:
                waiting.append(epoch)
        return ShredReport(sorted(set(destroyed)), moved, sorted(set(waiting)))

    async def _move_held(self, key_id: str, epoch: str, now: datetime, actor: str) -> int:
        async with self._database.read() as session:
            rows = (
                await session.execute(
                    select(DataKey.object_id, DataKey.wrapped, Recording.id)
                    .join(StoredObject, StoredObject.id == DataKey.object_id)
                    .join(Recording, Recording.id == StoredObject.recording_id)
                    .where(DataKey.kek_id == key_id, held_at(now))
                )
            ).all()
        if not rows:
            return 0
        hold_id, hold_kek = await self._current_key(HOLD_EPOCH)
        changes = []
        for object_id, blob, _recording in rows:
            dek = await self.unwrap(WrappedKey(key_id, blob), object_id)
            changes.append(
                {
                    "b_object": object_id,
                    "b_old": key_id,
                    "b_new": hold_id,
                    "b_blob": seal_key(hold_kek, _raw_id(hold_id), dek, object_id),
                }
            )
        recordings = sorted({row[2] for row in rows})
        return await self._replace_wraps(
            changes,
            lambda _count: [
                AuditRecord(
                    actor=actor,
                    action="keys.moved_to_hold",
                    recording_id=recording_id,
                    details={"epoch": epoch, "from": key_id, "to": hold_id},
                )
                for recording_id in recordings
            ],
        )

    def _spent(self, epoch: str, now: datetime) -> bool:
        end = epoch_end(epoch)
        return end is not None and end + self._period + SPENT_GRACE <= now

    def _home(self, epoch: str) -> str:
        """Where a key of ``epoch`` is wrapped now: the hold epoch once the week is spent."""
        return HOLD_EPOCH if self._spent(epoch, self._clock()) else epoch

    async def _destroy(self, key_id: str, reason: str, actor: str) -> bool:
        """Destroy one epoch key if nothing refers to it: committed first, then the material."""
        async with self._database.transaction() as session:
            row = (
                await session.execute(
                    select(EpochKey).where(EpochKey.id == key_id).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None or row.destroyed_at is not None:
                return False
            if await session.scalar(select(exists().where(DataKey.kek_id == key_id))):
                return False
            row.destroyed_at = self._clock()
            await self._audit.append(
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

    async def _purge_destroyed(self) -> None:
        since = self._clock() - _PURGE_WINDOW
        async with self._database.read() as session:
            ids = list(
                (
                    await session.execute(select(EpochKey.id).where(EpochKey.destroyed_at >= since))
                ).scalars()
            )
        for key_id in ids:
            await self._material.delete(_material_key(key_id))

    # -- status ------------------------------------------------------------------------

    async def status(self) -> KeyStatus:
        """The generation, each live epoch key with its data-key count, what is left to do."""
        async with self._database.read() as session:
            generation = await _generation(session)
            rotated_at = await session.scalar(
                select(KeyRotation.rotated_at).where(KeyRotation.generation == generation)
            )
            counts = (
                await session.execute(
                    select(
                        EpochKey.id,
                        EpochKey.epoch,
                        EpochKey.generation,
                        func.count(DataKey.object_id),
                    )
                    .outerjoin(DataKey, DataKey.kek_id == EpochKey.id)
                    .where(EpochKey.destroyed_at.is_(None))
                    .group_by(EpochKey.id, EpochKey.epoch, EpochKey.generation)
                    .order_by(EpochKey.epoch, EpochKey.generation)
                )
            ).all()
            destroyed = await session.scalar(
                select(func.count()).select_from(EpochKey).where(EpochKey.destroyed_at.isnot(None))
            )
        return KeyStatus(
            generation=generation,
            rotated_at=rotated_at,
            root_kek_id=self._root.current_kek_id,
            epoch_keys=[EpochKeyStatus(*row) for row in counts],
            stale=await self.stale_count(),
            destroyed=int(destroyed or 0),
        )

    # -- epoch keys themselves ---------------------------------------------------------

    async def _current_key(self, epoch: str) -> tuple[str, AESGCM]:
        """The key of ``epoch`` in the current generation, made on first use."""
        async with self._database.read() as session:
            generation = await _generation(session)
            key_id = await self._live_key(session, epoch, generation)
        if key_id is None:
            key_id = await self._create(epoch, generation)
        return key_id, await self._epoch_key(key_id)

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
        await asyncio.to_thread(self._root.refresh)
        wrapped = await asyncio.to_thread(self._root.wrap, material, _object_id(key_id))
        now = self._clock()
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
        async with self._database.transaction() as session:
            session.add(
                EpochKey(
                    id=key_id,
                    epoch=epoch,
                    generation=generation,
                    root_kek_id=wrapped.kek_id,
                    created_at=now,
                )
            )
            await self._audit.append(
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
        material = await asyncio.to_thread(self._root.unwrap, wrapped, _object_id(key_id))
        kek = AESGCM(material)
        self._cache[key_id] = (time.monotonic(), kek)
        return kek


def _stale(generation: int) -> Any:
    """SQL on DataKey outer-joined to EpochKey: not under a key of ``generation``."""
    return EpochKey.id.is_(None) | (EpochKey.generation < generation)


async def _generation(session: AsyncSession) -> int:
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
