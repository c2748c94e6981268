"""Shredding spent epochs: a week's key is destroyed once every recording of it is gone.

Deleting a recording deletes its wrapped data key from the database, but backups keep the
row; destroying the week's key is what turns every copy of that row, in every backup, into
noise. A recording still held when its week is spent is first re-wrapped under the hold
key, which is never destroyed by age.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from storage.audit import AuditRecord
from storage.db.models import DataKey, EpochKey, Recording, StoredObject
from storage.holds import held_at
from storage.keys.epoch_calendar import HOLD_EPOCH
from storage.keys.epoch_material import KEYS_ACTOR, EpochKeyStore, seal_with
from storage.keys.keyring import WrappedKey


@dataclass(frozen=True, slots=True)
class ShredReport:
    """What a pass over spent epochs did."""

    destroyed: list[str] = field(default_factory=list)  # epochs whose key was destroyed
    moved_to_hold: int = 0  # held recordings' data keys re-wrapped under the hold key
    waiting: list[str] = field(default_factory=list)  # spent, but unheld keys remain


async def shred_spent_epochs(keys: EpochKeyStore, *, actor: str = KEYS_ACTOR) -> ShredReport:
    """Destroy the key of every spent week whose recordings are all gone.

    A held recording of a spent week is first re-wrapped under the hold key (audited
    on the recording). A week whose unheld recordings are not yet deleted waits for the
    sweep. Also finishes destroying the material of keys whose destruction was
    committed but not completed (a crash in between).
    """
    await keys.purge_destroyed()
    now = keys.clock()
    async with keys.database.read() as session:
        live = (
            await session.execute(
                select(EpochKey.id, EpochKey.epoch).where(
                    EpochKey.destroyed_at.is_(None), EpochKey.epoch != HOLD_EPOCH
                )
            )
        ).all()
    destroyed, waiting, moved = [], [], 0
    for key_id, epoch in live:
        if not keys.spent(epoch, now):
            continue
        moved += await _move_held(keys, key_id, epoch, now, actor)
        if await keys.destroy(key_id, "epoch_spent", actor):
            destroyed.append(epoch)
        else:
            waiting.append(epoch)
    return ShredReport(sorted(set(destroyed)), moved, sorted(set(waiting)))


async def _move_held(
    keys: EpochKeyStore, key_id: str, epoch: str, now: datetime, actor: str
) -> int:
    """Re-wrap the data keys of recordings held at ``now`` from ``key_id`` to the hold key."""
    async with keys.database.read() as session:
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
    hold_id, hold_kek = await keys.current_key(HOLD_EPOCH)
    changes = []
    for object_id, blob, _recording in rows:
        dek = await keys.unwrap(WrappedKey(key_id, blob), object_id)
        changes.append(
            {
                "b_object": object_id,
                "b_old": key_id,
                "b_new": hold_id,
                "b_blob": seal_with(hold_kek, hold_id, dek, object_id),
            }
        )
    recordings = sorted({row[2] for row in rows})
    return await keys.replace_wraps(
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
