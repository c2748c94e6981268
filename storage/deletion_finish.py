"""What finishing a deletion takes from the store, and the receipt it leaves.

Kept apart from deletion.py, which holds the order of the steps and their transactions:
these are the lookups and the record those steps use, each in one place.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage.audit import AuditRecord
from storage.db.database import Database
from storage.db.job_models import RenditionJob, RenditionState
from storage.db.models import Recording, RecordingState, StoredObject
from storage.keys.key_shares import share_key_for
from storage.keys.receipts import RECEIPT_ACTION, ReceiptSigner
from storage.objects.store import ObjectVersion
from storage.recordings import object_key_for
from storage.vocabulary import RETENTION_ACTOR, rfc3339


@dataclass(frozen=True, slots=True)
class DoomedObject:
    """One stored object of a recording being deleted: the exact version to remove, and
    the hash its receipt names it by."""

    recording_id: uuid.UUID
    version: ObjectVersion
    sha256: str


async def stored_objects_of(
    database: Database, recording_ids: list[uuid.UUID]
) -> list[DoomedObject]:
    """The stored objects of those recordings whose keys are gone: a recording still
    stored is never touched by a deletion's last step."""
    async with database.read() as session:
        rows = await session.execute(
            select(
                StoredObject.recording_id,
                StoredObject.object_key,
                StoredObject.version_id,
                StoredObject.plaintext_sha256,
            )
            .join(Recording, Recording.id == StoredObject.recording_id)
            .where(
                StoredObject.recording_id.in_(recording_ids),
                Recording.state == RecordingState.DELETING,
            )
        )
        return [
            DoomedObject(recording_id, ObjectVersion(key, version), sha256)
            for recording_id, key, version, sha256 in rows
        ]


async def shares_of(database: Database, recording_ids: list[uuid.UUID]) -> list[ObjectVersion]:
    """The key shares of those recordings whose keys are gone (each exact version)."""
    async with database.read() as session:
        rows = await session.execute(
            select(Recording.id, Recording.key_share_version_id).where(
                Recording.id.in_(recording_ids),
                Recording.state == RecordingState.DELETING,
                Recording.key_share_digest.is_not(None),
            )
        )
        return [ObjectVersion(share_key_for(rid), version) for rid, version in rows]


async def renditions_in_flight(
    database: Database, recording_ids: list[uuid.UUID]
) -> list[ObjectVersion]:
    """What unfinished rendition jobs of those recordings may have put in the store: a
    worker overtaken by the deletion deletes its own object, but one that died would
    leave it behind."""
    async with database.read() as session:
        rows = await session.execute(
            select(RenditionJob.object_id)
            .join(Recording, Recording.id == RenditionJob.recording_id)
            .where(
                RenditionJob.recording_id.in_(recording_ids),
                Recording.state == RecordingState.DELETING,
                RenditionJob.state != RenditionState.DONE,
                RenditionJob.object_id.is_not(None),
            )
        )
        return [
            ObjectVersion(object_key_for(object_id), None)
            for (object_id,) in rows
            if object_id is not None
        ]


def deletion_receipt(
    signer: ReceiptSigner,
    row: Recording,
    *,
    deleted_at: datetime,
    reason: str,
    sha256: list[str],
) -> AuditRecord:
    """The signed receipt of one finished deletion: what was destroyed, named by its
    hashes alone, so the receipt itself holds no personal data."""
    return AuditRecord(
        actor=RETENTION_ACTOR,
        action=RECEIPT_ACTION,
        recording_id=row.id,
        details=signer.sign(
            {
                "recording_id": str(row.id),
                "source": row.source,
                "started_at": rfc3339(row.started_at),
                "retention_deadline": rfc3339(row.retention_deadline),
                "deleted_at": rfc3339(deleted_at),
                "reason": reason,
                "objects": len(sha256),
                "sha256": sorted(sha256),
            }
        ),
    )
