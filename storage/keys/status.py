"""Where the key hierarchy stands: generation, live epoch keys, work left to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from storage.db.models import DataKey, EpochKey, KeyRotation
from storage.keys.epoch_material import EpochKeyStore, current_generation


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


async def key_status(keys: EpochKeyStore, stale_count: Callable[[], Awaitable[int]]) -> KeyStatus:
    """The generation, each live epoch key with its data-key count, what is left to do."""
    async with keys.database.read() as session:
        generation = await current_generation(session)
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
        root_kek_id=keys.root.current_kek_id,
        epoch_keys=[EpochKeyStatus(*row) for row in counts],
        stale=await stale_count(),
        destroyed=int(destroyed or 0),
    )
