"""Key rotation: a new generation, re-wrapping data keys into it, retiring what it replaced.

A rotation starts a new generation (and a new root version where the provider keeps
versions); re-wrapping moves each data key to its epoch's key of the current generation,
one small AES operation per key that never touches audio; a superseded epoch key is
destroyed once nothing refers to it, and a root version once no epoch key is wrapped under
it. Every step is a commit of its own and is audited, so a crash at any point leaves every
recording playable and the next run carries on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import exists, func, select

from storage.audit import AuditRecord
from storage.db.models import (
    DataKey,
    EpochKey,
    KeyRotation,
    Recording,
    SharedSecret,
    StoredObject,
)
from storage.keys.epoch_calendar import epoch_of
from storage.keys.epoch_material import EpochKeyStore, current_generation, seal_with, stale
from storage.keys.keyring import WrappedKey
from storage.keys.shared_secrets import SharedSecrets

# A superseded key is destroyed only this long after the rotation: every process has
# read the new generation by then (each wrap reads it), and commits take seconds.
RETIRE_GRACE: Final = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class RewrapReport:
    """What a re-wrap did: how many data keys moved, to which generation, what was retired."""

    generation: int
    rewrapped: int
    retired: list[str] = field(default_factory=list)


class Rotation:
    """Rotates the key hierarchy held by ``keys`` and moves data keys along with it."""

    def __init__(self, keys: EpochKeyStore) -> None:
        self._keys = keys

    async def rotate_if_due(self, every: timedelta, *, actor: str) -> int | None:
        """Rotate when the current generation is ``every`` old; the new generation, or None.

        Before the first rotation the age is counted from the first epoch key, so a new
        installation is not rotated on its first day. ``every`` of zero never rotates.
        """
        due = await self.rotation_due_at(every)
        if due is None or self._keys.clock() < due:
            return None
        return await self.rotate(actor=actor)

    async def rotation_due_at(self, every: timedelta) -> datetime | None:
        """When the current generation is ``every`` old and due to be replaced; None when
        ``every`` is zero (no scheduled rotation) or no key has been made yet."""
        if not every:
            return None
        async with self._keys.database.read() as session:
            since = await session.scalar(
                select(KeyRotation.rotated_at).order_by(KeyRotation.generation.desc()).limit(1)
            ) or await session.scalar(select(func.min(EpochKey.created_at)))
        return None if since is None else since + every

    async def rotate(self, *, actor: str) -> int:
        """Make a new root version current (where the provider has versions) and a new
        generation of epoch keys for new wraps; returns the new generation."""
        root_id = await asyncio.to_thread(self._keys.root.rotate)
        async with self._keys.database.transaction() as session:
            generation = await current_generation(session) + 1
            session.add(
                KeyRotation(
                    generation=generation,
                    root_kek_id=root_id,
                    rotated_at=self._keys.clock(),
                    rotated_by=actor,
                )
            )
            await self._keys.audit.append(
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
        async with self._keys.database.read() as session:
            generation = await current_generation(session)
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(DataKey)
                    .outerjoin(EpochKey, EpochKey.id == DataKey.kek_id)
                    .where(stale(generation))
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
        generation = await self._keys.generation()
        moved = 0
        while True:
            passed = await self._rewrap_pass(generation, actor, batch_size, progress)
            moved += passed
            # Rows committed under an older key while the pass ran (a process that read
            # the generation just before the rotation) are caught by another pass.
            if passed == 0 or await self.stale_count() == 0:
                break
        keys = self._keys
        # The shared secrets too, so the root version they were wrapped under can retire.
        await SharedSecrets(keys.database, keys.root, keys.audit, keys.clock).rewrap()
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
            async with self._keys.database.read() as session:
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
                    .where(stale(generation))
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
                dek = await self._keys.unwrap(WrappedKey(kek_id, blob), object_id)
                home = self._keys.home(epoch or epoch_of(started_at))
                if home not in targets:
                    targets[home] = await self._keys.current_key(home)
                new_id, kek = targets[home]
                changes.append(
                    {
                        "b_object": object_id,
                        "b_old": kek_id,
                        "b_new": new_id,
                        "b_blob": seal_with(kek, new_id, dek, object_id),
                    }
                )
            changed = await self._keys.replace_wraps(
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

    async def retire(self, *, actor: str) -> list[str]:
        """Destroy superseded epoch keys nothing uses, then root versions nothing uses.

        Only once the rotation is RETIRE_GRACE old, so no process can still be about to
        wrap under a superseded key. Returns the ids retired.
        """
        now = self._keys.clock()
        async with self._keys.database.read() as session:
            generation = await current_generation(session)
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
        retired = [
            key_id for key_id in unused if await self._keys.destroy(key_id, "superseded", actor)
        ]
        retired += await self._retire_roots(actor)
        return retired

    async def _retire_roots(self, actor: str) -> list[str]:
        root = self._keys.root
        await asyncio.to_thread(root.refresh)
        current = root.current_kek_id
        retired = []
        for kek_id in root.kek_ids():
            if kek_id == current:
                continue
            async with self._keys.database.read() as session:
                used = await session.scalar(
                    select(
                        exists().where(
                            EpochKey.root_kek_id == kek_id, EpochKey.destroyed_at.is_(None)
                        )
                        | exists().where(DataKey.kek_id == kek_id)
                        | exists().where(SharedSecret.kek_id == kek_id)
                    )
                )
            if used or not await asyncio.to_thread(root.retire, kek_id):
                continue
            async with self._keys.database.transaction() as session:
                await self._keys.audit.append(
                    session,
                    AuditRecord(
                        actor=actor, action="keys.root_retired", details={"root_kek_id": kek_id}
                    ),
                )
            retired.append(kek_id)
        return retired
