"""Re-wrap rate: every data key moved to a new generation, on PostgreSQL, local keyring.

The baseline, measured in the same run on the same rows, is the database work alone: the
same batches read and written back unchanged, one commit each, with no unwrapping,
wrapping or audit. The ratio says how much of a re-wrap is the re-wrap itself.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Table, bindparam, insert, select, update

from storage import (
    Database,
    EpochKeys,
    create_engine,
)
from storage.db.models import DataKey, Recording, StoredObject
from tests.bench.retention import drop_database, fresh_database, stored_rows
from tests.key_support import local_epoch_keys

_SEED_CHUNK = 5000
_BATCH = 500
_WEEKS = 13  # ninety days of calls: thirteen epoch keys in play


@dataclass(frozen=True)
class RewrapFigures:
    """One re-wrap of ``count`` keys and its baseline."""

    count: int
    rewrap_s: float
    baseline_s: float
    seed_s: float


async def measure_rewrap(count: int) -> RewrapFigures:
    """Seed ``count`` recordings under generation 0, rotate, and time the re-wrap."""
    name, url = await fresh_database()
    engine = create_engine(url)
    database = Database(engine)
    try:
        with tempfile.TemporaryDirectory(prefix="callrec-rewrap-") as scratch:
            root = Path(scratch)
            clock = lambda: datetime.now(UTC)  # noqa: E731
            keys = local_epoch_keys(database, root, clock)
            begun = time.perf_counter()
            await _seed(database, keys, count)
            seed_s = time.perf_counter() - begun
            await keys.rotate(actor="bench")
            begun = time.perf_counter()
            report = await keys.rewrap(actor="bench", batch_size=_BATCH)
            rewrap_s = time.perf_counter() - begun
            if report.rewrapped != count or await keys.stale_count():
                raise RuntimeError(f"re-wrapped {report.rewrapped} of {count}")
            baseline_s = await _rewrite_unchanged(database)
    finally:
        await engine.dispose()
        await drop_database(name)
    return RewrapFigures(count, rewrap_s, baseline_s, seed_s)


async def _seed(database: Database, keys: EpochKeys, count: int) -> None:
    now = datetime.now(UTC)
    for first in range(0, count, _SEED_CHUNK):
        recordings, objects, data_keys = [], [], []
        for n in range(first, min(first + _SEED_CHUNK, count)):
            recording_id, object_id = uuid.uuid4(), uuid.uuid4()
            started = now - timedelta(days=7 * (n % _WEEKS), minutes=n % 600)
            recording, stored = stored_rows(n, started, recording_id, object_id, 1024)
            recordings.append(recording)
            objects.append(stored)
            wrapped = await keys.wrap(os.urandom(32), object_id, started_at=started)
            data_keys.append(
                {
                    "object_id": object_id,
                    "kek_id": wrapped.kek_id,
                    "wrapped": wrapped.blob,
                    "created_at": started,
                }
            )
        async with database.transaction() as session:
            await session.execute(insert(Recording), recordings)
            await session.execute(insert(StoredObject), objects)
            await session.execute(insert(DataKey), data_keys)


async def _rewrite_unchanged(database: Database) -> float:
    """Read every data key in batches and write each back as it was, a commit per batch."""
    table: Table = DataKey.__table__  # type: ignore[assignment]
    statement = (
        update(table)
        .where(table.c.object_id == bindparam("b_object"))
        .where(table.c.kek_id == bindparam("b_old"))
        .values(kek_id=bindparam("b_new"), wrapped=bindparam("b_blob"))
    )
    after: uuid.UUID | None = None
    begun = time.perf_counter()
    while True:
        async with database.read() as session:
            query = select(DataKey.object_id, DataKey.kek_id, DataKey.wrapped)
            if after is not None:
                query = query.where(DataKey.object_id > after)
            rows = (await session.execute(query.order_by(DataKey.object_id).limit(_BATCH))).all()
        if not rows:
            return time.perf_counter() - begun
        after = rows[-1].object_id
        async with database.transaction() as session:
            await session.execute(
                statement,
                [{"b_object": o, "b_old": k, "b_new": k, "b_blob": w} for o, k, w in rows],
            )
