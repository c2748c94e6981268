"""Stores a captured recording durably: claim its id, put its object, commit keys and audit.

The order is what keeps "nothing half stored" true:

1. claim: insert the recording as ``pending`` (the unique source id makes duplicates and
   concurrent duplicates meet here), with its object row but no key;
2. put the recording's key share, then the encrypted objects (the original, then its
   playback rendition) into the object store, create-only;
3. commit the wrapped (share-masked) data keys, the peaks, the referrals, the ``stored``
   state and the audit event in one transaction.

A failure after 1 removes the claim and the object; a crash, or a store that failed and
could not be cleaned up, leaves a pending row that every retention cycle reaps
(``reap_abandoned_captures``) once it is older than ABANDONED_AFTER, or at once when its
recording falls due, and that the source's next delivery of the same id clears once it
is that old. Readers only ever see ``stored`` rows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from storage.abandoned import ABANDONED_AFTER, CaptureReaper
from storage.audit import AuditRecord, AuditTrail
from storage.crypto.sealed_writer import SealedFile
from storage.crypto.spool import EncryptedSpool, SpoolFacts
from storage.db.database import Database
from storage.db.models import DataKey, Recording, RecordingPeaks, RecordingState, StoredObject
from storage.db.peaks import Peaks
from storage.db.rendition_queue import RenditionQueue
from storage.db.repository import RecordingRepository
from storage.errors import StorageError, Unavailable
from storage.keys.epochs import DataKeys
from storage.keys.key_shares import KeyShare, KeyShares, share_key_for
from storage.objects.store import RECORDINGS_PREFIX, UNHELD_TAGS, ObjectStore
from storage.phone_numbers import DEFAULT_REGION, as_stored

log = logging.getLogger(__name__)
_CLAIM_ATTEMPTS = 3


class CaptureInProgress(StorageError):
    """The same source id is being stored by another request right now; retry shortly."""


@dataclass(frozen=True, slots=True)
class AudioFacts:
    """What probing the audio found; recorded with the recording."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float
    content_type: str
    declared_duration_s: float | None = None
    # (code, detail) of each thing wrong with audio that was kept anyway.
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NewRecording:
    """A recording as its source describes it, validated by the recorder."""

    source: str
    source_recording_id: str
    started_at: datetime
    retention_deadline: datetime
    ended_at: datetime | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    agent: str | None = None
    team: str | None = None
    referrals: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaptureOutcome:
    """The stored recording's id and deadline; ``created`` is False for a duplicate."""

    recording_id: uuid.UUID
    retention_deadline: datetime
    created: bool


ORIGINAL = "original"  # the file as the source sent it, byte for byte
PLAYBACK = "playback"  # the browser rendition


@dataclass(frozen=True, slots=True)
class _Sealed:
    """An encrypted file on local disk, waiting to become a stored object of ``kind``."""

    object_id: uuid.UUID
    path: Path
    data_key: bytes
    facts: SpoolFacts
    kind: str


def object_key_for(object_id: uuid.UUID) -> str:
    """Random, meaningless object keys: nothing about the call is visible in the store."""
    return f"{RECORDINGS_PREFIX}{object_id.hex[:2]}/{object_id.hex}"


class RecordingStore:
    """Coordinates metadata, object store, key wrapping and audit for stored recordings."""

    def __init__(
        self,
        *,
        database: Database,
        objects: ObjectStore,
        keys: DataKeys,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        duplicate_wait: timedelta = timedelta(seconds=30),
        abandoned_after: timedelta = ABANDONED_AFTER,
        phone_region: str = DEFAULT_REGION,
    ) -> None:
        self._database = database
        # Numbers are stored in E.164 where they are numbers, so a person's calls are
        # found by their number whichever source and format brought them.
        self._phone_region = phone_region
        self._objects = objects
        self._shares = KeyShares(objects)
        self._keys = keys
        self._audit = audit
        self._clock = clock
        self._duplicate_wait = duplicate_wait
        self._abandoned_after = abandoned_after
        self._reaper = CaptureReaper(
            database=database,
            objects=objects,
            audit=audit,
            clock=clock,
            abandoned_after=abandoned_after,
        )

    async def find_existing(self, source: str, source_recording_id: str) -> CaptureOutcome | None:
        """A settled earlier delivery of this source id, if any.

        A capture still in progress is waited for (up to ``duplicate_wait``, then
        CaptureInProgress); one abandoned by a crashed process is cleared away, so the
        source's retry can store the recording instead of being refused forever.
        """
        deadline = asyncio.get_running_loop().time() + self._duplicate_wait.total_seconds()
        while True:
            async with self._database.read() as session:
                found = await RecordingRepository(session).find_by_source_id(
                    source, source_recording_id
                )
            if found is None:
                return None
            if found.state != RecordingState.PENDING:
                return CaptureOutcome(found.id, found.retention_deadline, created=False)
            cutoff = self._clock() - self._abandoned_after
            if found.received_at < cutoff:
                # Raises StoreUnavailable if its objects cannot go yet: so would this capture.
                await self._reaper.remove(
                    found.id, received_before=cutoff, actor=f"source:{source}"
                )
                continue
            if asyncio.get_running_loop().time() >= deadline:
                raise CaptureInProgress(source_recording_id)
            await asyncio.sleep(0.1)

    async def store_capture(
        self,
        spool: EncryptedSpool,
        recording: NewRecording,
        audio: AudioFacts,
        *,
        actor: str,
        rendition: SealedFile | None = None,
        peaks: Peaks | None = None,
        queue_rendition: bool = False,
    ) -> CaptureOutcome:
        """Make a finished spool (and a rendition, if one is given) a durable, audited recording.

        The capture path gives peaks and ``queue_rendition``: the rendition is then made
        afterwards, by a queued job committed with the recording (rendition_queue.py), and
        playback serves the original until it is ready. Idempotent per source id. Raises
        Unavailable (database or store) or CaptureInProgress; in every failure case nothing
        stays visible and the caller may retry.
        """
        files = [_Sealed(spool.object_id, spool.path, spool.data_key, spool.facts, ORIGINAL)]
        if rendition is not None:
            files.append(
                _Sealed(
                    rendition.object_id,
                    rendition.path,
                    rendition.data_key,
                    rendition.facts,
                    PLAYBACK,
                )
            )
        for _ in range(_CLAIM_ATTEMPTS):
            existing = await self.find_existing(recording.source, recording.source_recording_id)
            if existing is not None:
                return existing
            row = self._pending_row(files, recording, audio, rendition)
            share = KeyShare.new(row.id)
            # Claimed with the share's digest, so a crash after the share is put leaves a
            # pending row the reaper knows to remove it with.
            row.key_share_digest = share.digest
            if await self._claim(row):
                return await self._complete(
                    row.id, files, share, recording, peaks, actor, queue_rendition, audio
                )
            # Another delivery of the same id claimed it first: look again.
        raise CaptureInProgress(recording.source_recording_id)

    def _pending_row(
        self,
        files: list[_Sealed],
        recording: NewRecording,
        audio: AudioFacts,
        rendition: SealedFile | None,
    ) -> Recording:
        now = self._clock()
        row = Recording(
            id=uuid.uuid4(),
            source=recording.source,
            source_recording_id=recording.source_recording_id,
            state=RecordingState.PENDING,
            started_at=recording.started_at,
            ended_at=recording.ended_at,
            direction=recording.direction,
            from_number=as_stored(recording.from_number, self._phone_region),
            to_number=as_stored(recording.to_number, self._phone_region),
            agent=recording.agent,
            team=recording.team,
            extra=recording.extra or None,
            container=audio.container,
            codec=audio.codec,
            sample_rate=audio.sample_rate,
            channels=audio.channels,
            duration_s=audio.duration_s,
            declared_duration_s=audio.declared_duration_s,
            audio_problems=[{"code": code, "detail": detail} for code, detail in audio.problems]
            or None,
            retention_deadline=recording.retention_deadline,
            received_at=now,
        )
        for sealed in files:
            row.objects.append(
                StoredObject(
                    id=sealed.object_id,
                    kind=sealed.kind,
                    object_key=object_key_for(sealed.object_id),
                    content_type=rendition.content_type
                    if rendition is not None and sealed.kind == PLAYBACK
                    else audio.content_type,
                    plaintext_size=sealed.facts.plaintext_size,
                    plaintext_sha256=sealed.facts.plaintext_sha256,
                    ciphertext_size=sealed.facts.ciphertext_size,
                    created_at=now,
                )
            )
        return row

    async def _complete(
        self,
        recording_id: uuid.UUID,
        files: list[_Sealed],
        share: KeyShare,
        recording: NewRecording,
        peaks: Peaks | None,
        actor: str,
        queue_rendition: bool,
        audio: AudioFacts,
    ) -> CaptureOutcome:
        keys = [object_key_for(sealed.object_id) for sealed in files]
        try:
            # The share first: the audio is never in the store without what opens it.
            share_version = await self._shares.put(share, tags=UNHELD_TAGS)
            versions = [
                await self._objects.put_file(key, sealed.path, tags=UNHELD_TAGS)
                for key, sealed in zip(keys, files, strict=True)
            ]
            rendition = audio.duration_s if queue_rendition else None
            await self._commit(
                recording_id,
                files,
                versions,
                (share, share_version),
                recording,
                peaks,
                actor,
                rendition,
            )
        except BaseException:
            # A put may have landed even if it reported failure; deleting is idempotent.
            await self._release_claim(recording_id, keys=[*keys, share_key_for(recording_id)])
            raise
        return CaptureOutcome(recording_id, recording.retention_deadline, created=True)

    async def _claim(self, row: Recording) -> bool:
        """Insert the pending row; False only when the source id was taken meanwhile."""
        try:
            async with self._database.transaction() as session:
                await RecordingRepository(session).add(row)
        except IntegrityError:
            # The source id was taken (the only unique value a new row can clash on: its
            # ids are fresh UUIDs); the caller looks again, a bounded number of times.
            return False
        return True

    async def _commit(
        self,
        recording_id: uuid.UUID,
        files: list[_Sealed],
        versions: list[str | None],
        stored_share: tuple[KeyShare, str | None],
        recording: NewRecording,
        peaks: Peaks | None,
        actor: str,
        rendition_audio_s: float | None,
    ) -> None:
        """``rendition_audio_s``: queue a rendition of that much audio with the recording."""
        share, share_version = stored_share
        # The database keeps each data key masked by the share: a copy of the database
        # opens nothing once the share is deleted from the store.
        wrapped = {
            sealed.object_id: await self._keys.wrap(
                share.mask(sealed.data_key, sealed.object_id),
                sealed.object_id,
                started_at=recording.started_at,
            )
            for sealed in files
        }
        version_of = {sealed.object_id: v for sealed, v in zip(files, versions, strict=True)}
        original = files[0]
        now = self._clock()
        async with self._database.transaction() as session:
            repository = RecordingRepository(session)
            row = await repository.get_for_update(recording_id)
            if row is None or row.state != RecordingState.PENDING:
                # Taken over as abandoned while this capture was uploading.
                raise CaptureInProgress(recording.source_recording_id)
            row.state = RecordingState.STORED
            row.stored_at = now
            row.key_share_version_id = share_version
            for stored in row.objects:
                stored.version_id = version_of[stored.id]
                key = wrapped[stored.id]
                session.add(
                    DataKey(
                        object_id=stored.id, kek_id=key.kek_id, wrapped=key.blob, created_at=now
                    )
                )
            if peaks is not None:
                session.add(
                    RecordingPeaks(
                        recording_id=recording_id,
                        per_second=peaks.per_second,
                        channels=peaks.channels,
                        data=peaks.data,
                    )
                )
            if rendition_audio_s is not None:
                RenditionQueue.queue(session, recording_id, rendition_audio_s, now)
            await repository.link_referrals(recording_id, recording.referrals, by=actor, at=now)
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="recording.captured",
                    recording_id=recording_id,
                    details={
                        "source_recording_id": recording.source_recording_id,
                        "bytes": original.facts.plaintext_size,
                        "sha256": original.facts.plaintext_sha256,
                    },
                ),
            )

    async def _release_claim(self, recording_id: uuid.UUID, *, keys: list[str]) -> None:
        # Best effort: if the database or store is down too, the reaper finishes the job.
        try:
            for key in keys:
                await self._objects.delete(key)
            async with self._database.transaction() as session:
                await RecordingRepository(session).remove_pending(recording_id)
        except (Unavailable, OSError):
            log.warning("could not release a failed capture; the reaper will", exc_info=True)

    async def record_discard(self, *, actor: str, source_recording_id: str, reason: str) -> None:
        """Audit that a delivery was refused without storing it (e.g. already past retention)."""
        async with self._database.transaction() as session:
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="recording.discarded",
                    outcome="deny",
                    details={"source_recording_id": source_recording_id, "reason": reason},
                ),
            )

    async def reap_abandoned_captures(
        self, *, older_than: timedelta | None = None, due_before: datetime | None = None
    ) -> int:
        """Remove captures that will never finish, and their objects; return how many.
        See ``CaptureReaper.reap``."""
        return await self._reaper.reap(older_than=older_than, due_before=due_before)
