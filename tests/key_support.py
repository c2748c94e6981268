"""Recordings stored straight through storage, and the key hierarchy on the local keyring.

For tests and benchmarks about keys, where the HTTP path and the media pipeline would
only cost time: the objects, wraps, rows and audit events are exactly the service's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from config.services import Services
from storage import (
    AudioFacts,
    AuditTrail,
    Database,
    EncryptedSpool,
    EpochKeys,
    FilesystemObjectStore,
    KeyChain,
    LocalKeyring,
    NewRecording,
)

AUDIO = AudioFacts("wav", "pcm_s16le", 8000, 1, 1.0, "audio/wav")
PERIOD = timedelta(days=90)


def local_epoch_keys(
    database: Database, root: Path, clock: Callable[[], datetime], period: timedelta = PERIOD
) -> EpochKeys:
    """Epoch keys in ``root/epoch-keys`` under a local keyring in ``root/keyring``."""
    return EpochKeys(
        database=database,
        material=FilesystemObjectStore(root / "epoch-keys"),
        root=KeyChain(LocalKeyring.open(root / "keyring")),
        audit=AuditTrail(clock),
        clock=clock,
        retention_period=period,
    )


async def store_recording(
    services: Services, source_id: str, started_at: datetime, payload: bytes
) -> uuid.UUID:
    """Store ``payload`` as the original of a recording that started at ``started_at``."""
    spool = EncryptedSpool(services.spool.path)
    await spool.write(payload)
    await spool.finish()
    outcome = await services.recordings.store_capture(
        spool,
        NewRecording(
            source="pbx",
            source_recording_id=source_id,
            started_at=started_at,
            retention_deadline=started_at + PERIOD,
        ),
        AUDIO,
        actor="source:pbx",
    )
    await spool.discard()
    return outcome.recording_id
