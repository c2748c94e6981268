"""A queued rendition, in storage terms: the original's ciphertext handed to a worker, and
the finished rendition stored beside it.

The worker decodes the original from a local copy of its *ciphertext* (the same SGRC
bytes the store holds), decrypting as it reads, so no plaintext ever reaches the disk and
the store is read once, sequentially, rather than in the small seeks a decoder makes.

Storing follows the capture's order: put the object create-only, then commit its wrapped
(share-masked) data key, the object row and the job's ``done`` in one transaction that
first locks the recording. A recording no longer stored (its deletion began), or a claim
no longer the job's latest, stores nothing, and the object just put is deleted again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from storage.crypto.sealed_writer import SealedFile
from storage.db.database import Database
from storage.db.job_models import RenditionState
from storage.db.models import DataKey, Recording, RecordingHold, RecordingState, StoredObject
from storage.db.rendition_queue import ClaimedRendition, RenditionQueue
from storage.errors import IntegrityFailure, Unavailable
from storage.holds import hold_in_force
from storage.keys.epochs import DataKeys
from storage.keys.key_shares import KeyShares, unmask
from storage.keys.keyring import WrappedKey
from storage.objects.store import HELD_TAGS, UNHELD_TAGS, ObjectStore
from storage.recordings import ORIGINAL, PLAYBACK, object_key_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OriginalCopy:
    """An original's ciphertext on local disk, and what opens it (in memory only)."""

    path: Path
    object_id: uuid.UUID
    data_key: bytes
    ciphertext_size: int
    started_at: datetime
    share_digest: bytes | None
    """The recording's key-share digest, which the rendition's key is masked under too."""

    def __repr__(self) -> str:
        return f"OriginalCopy({self.object_id}, {self.path})"


class RenditionStore:
    """Reads originals out for rendering and stores the renditions that come back."""

    def __init__(
        self,
        *,
        database: Database,
        objects: ObjectStore,
        keys: DataKeys,
        queue: RenditionQueue,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._objects = objects
        self._shares = KeyShares(objects)
        self._keys = keys
        self._queue = queue
        self._clock = clock

    async def copy_original(self, recording_id: uuid.UUID, directory: Path) -> OriginalCopy | None:
        """The original's ciphertext copied into ``directory``; None if not stored any more.

        IntegrityFailure when the store holds a different length than was stored: the
        rendition is not made from an object that fails its own checks.
        """
        async with self._database.read() as session:
            found = (
                await session.execute(
                    select(StoredObject, Recording.key_share_digest, Recording.started_at)
                    .join(Recording, Recording.id == StoredObject.recording_id)
                    .where(
                        StoredObject.recording_id == recording_id,
                        StoredObject.kind == ORIGINAL,
                        Recording.state == RecordingState.STORED,
                    )
                )
            ).one_or_none()
            if found is None:
                return None
            stored, digest, started_at = found
            if stored.data_key is None:
                return None
            wrapped = WrappedKey(stored.data_key.kek_id, stored.data_key.wrapped)
        share = await self._shares.read(recording_id, digest)
        data_key = unmask(await self._keys.unwrap(wrapped, stored.id), stored.id, share)
        path = directory / f"{uuid.uuid4().hex}.original.spool"
        try:
            await self._copy(stored.object_key, path, stored.ciphertext_size)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return OriginalCopy(path, stored.id, data_key, stored.ciphertext_size, started_at, digest)

    async def _copy(self, key: str, path: Path, length: int) -> None:
        if await self._objects.copy_out(key, path, length) != length:
            raise IntegrityFailure("the recording's original is not the length it was stored at")

    async def store(self, job: ClaimedRendition, sealed: SealedFile, copy: OriginalCopy) -> bool:
        """Store the rendition with its recording and finish the job; False if the claim
        was lost or the recording is no longer stored (then nothing is left behind)."""
        key = object_key_for(job.object_id)
        share = await self._shares.read(job.recording_id, copy.share_digest)
        # Masked by the recording's share, like every key of a recording that has one.
        masked = sealed.data_key if share is None else share.mask(sealed.data_key, sealed.object_id)
        wrapped = await self._keys.wrap(masked, sealed.object_id, started_at=copy.started_at)
        version = await self._objects.put_file(key, sealed.path, tags=await self._tags(job))
        try:
            stored = await self._commit(job, sealed, key, version, wrapped)
        except BaseException:
            await self.forget_object(job.object_id)
            raise
        if not stored:
            await self.forget_object(job.object_id)
        return stored

    async def _commit(
        self,
        job: ClaimedRendition,
        sealed: SealedFile,
        key: str,
        version: str | None,
        wrapped: WrappedKey,
    ) -> bool:
        now = self._clock()
        async with self._database.transaction() as session:
            # The recording first, as a deletion locks it: the two never wait on each other.
            recording = await session.get(Recording, job.recording_id, with_for_update=True)
            row = await self._queue.held_in(session, job)
            if recording is None or recording.state != RecordingState.STORED or row is None:
                return False
            session.add(
                StoredObject(
                    id=sealed.object_id,
                    recording_id=job.recording_id,
                    kind=PLAYBACK,
                    object_key=key,
                    content_type=sealed.content_type,
                    plaintext_size=sealed.facts.plaintext_size,
                    plaintext_sha256=sealed.facts.plaintext_sha256,
                    ciphertext_size=sealed.facts.ciphertext_size,
                    version_id=version,
                    created_at=now,
                )
            )
            session.add(
                DataKey(
                    object_id=sealed.object_id,
                    kek_id=wrapped.kek_id,
                    wrapped=wrapped.blob,
                    created_at=now,
                )
            )
            row.state = RenditionState.DONE
            row.lease_until = None
            row.last_error = None
            row.finished_at = now
            row.updated_at = now
        return True

    async def forget_object(self, object_id: uuid.UUID | None) -> None:
        """Delete what a claim wrote or was writing (idempotent; best effort when the store
        is down: the object is ciphertext whose key was never kept)."""
        if object_id is None:
            return
        try:
            await self._objects.delete(object_key_for(object_id))
        except (Unavailable, OSError):
            log.warning("could not delete an unfinished rendition's object", exc_info=True)

    async def _tags(self, job: ClaimedRendition) -> dict[str, str]:
        """A held recording's objects carry the held tag, so the store's lifecycle backstop
        passes its rendition by as it does its original."""
        async with self._database.read() as session:
            held = await session.scalar(
                select(func.count()).where(
                    RecordingHold.recording_id == job.recording_id,
                    hold_in_force(self._clock()),
                )
            )
        return dict(HELD_TAGS if held else UNHELD_TAGS)
