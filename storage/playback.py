"""Plaintext ranges of a stored recording, decrypted segment by segment for playback.

Opening checks everything that can be checked before a byte goes out: the stored size
against the size recorded at capture, the recording's key share against its recorded
digest, the header and key commitment, and the final segment (so a truncated object
never plays). Reads then fetch only the segments a range
needs, with one ranged read from the object store.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from storage.crypto.verified_reader import StoredCiphertext, VerifiedObject
from storage.db.catalog import RecordingCatalog, RecordingView
from storage.db.database import Database
from storage.db.models import Recording, RecordingState, StoredObject
from storage.errors import IntegrityFailure, ObjectMissing
from storage.keys.epochs import DataKeys
from storage.keys.key_shares import KeyShares, unmask
from storage.keys.keyring import WrappedKey
from storage.objects.store import ObjectStore
from storage.recordings import ORIGINAL, PLAYBACK


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a player needs to know before asking for bytes."""

    recording_id: uuid.UUID
    object_id: uuid.UUID
    content_type: str
    size: int
    etag: str


class OpenAudio:
    """One opened, verified object; read plaintext ranges from it."""

    def __init__(self, info: AudioInfo, verified: VerifiedObject) -> None:
        self.info = info
        self._verified = verified

    async def read(self, start: int, end: int) -> bytes:
        """Plaintext bytes [start, end); IntegrityFailure if any segment fails to verify."""
        if start >= end:
            return b""
        return await self._verified.read(start, end)

    def stream(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext [start, end) in pieces of about 1 MiB, never the whole range at once."""
        return self._verified.stream(start, end)


@dataclass(frozen=True, slots=True)
class _Opened:
    """An opened object, with what tells whether the store still holds what was verified."""

    opened_at: float
    audio: OpenAudio
    object_key: str
    fingerprint: str
    """The store's fingerprint of the object, taken before it was verified."""


@dataclass(slots=True)
class _Kept:
    """What the ranges of one recording reuse: its looked-up state and its opened objects."""

    view: RecordingView | None = None
    view_at: float = 0.0
    audio: dict[str, _Opened] = field(default_factory=dict)


class RecordingAudio:
    """Opens a stored object of a recording, its playback rendition or its original.

    A player asks for many ranges in a row, each of which must first be found playable
    and then read. This is the one place what those ranges reuse is kept, per recording:

    - the recording's state, deadline and holds, re-read at most every ``recheck_s``
      (2 s), so an erasure or a released hold is seen within it. The caller compares the
      deadline with its clock on every request, so the reuse never lets a recording play
      past it; without the reuse a 64 KiB range costs several times more.
    - its opened, verified objects, kept for ``keep_open_s`` so each range costs one
      ranged read, not a fresh open with its size, header and final-segment checks.
      Before each reuse the store's fingerprint of the object (one HEAD or stat) is
      compared with the one taken when it was verified: an object rewritten since (a
      flipped header, salt or key commitment) is opened and verified afresh, so it is
      refused at once rather than played from what was checked before.

    The caller checks the recording is still playable before every open, so a kept object
    never outlives the recording's right to be heard.
    """

    def __init__(
        self,
        database: Database,
        objects: ObjectStore,
        keys: DataKeys,
        *,
        clock: Callable[[], float] = time.monotonic,
        recheck_s: float = 2.0,
        keep_open_s: float = 60.0,
        max_kept: int = 256,
    ) -> None:
        self._database = database
        self._catalog = RecordingCatalog(database)
        self._objects = objects
        self._shares = KeyShares(objects)
        self._keys = keys
        self._clock = clock
        self._recheck_s = recheck_s
        self._keep_open_s = keep_open_s
        self._max_kept = max_kept
        self._kept: OrderedDict[uuid.UUID, _Kept] = OrderedDict()

    async def recording(self, recording_id: uuid.UUID) -> RecordingView | None:
        """What decides whether the recording may be played: state, deadline, holds."""
        now = self._clock()
        kept = self._kept.get(recording_id)
        if kept is not None and kept.view is not None and now - kept.view_at < self._recheck_s:
            self._kept.move_to_end(recording_id)
            return kept.view
        view = await self._catalog.get(recording_id)
        if view is None:
            self.forget(recording_id)
            return None
        kept = self._keep(recording_id)
        kept.view, kept.view_at = view, now
        return view

    async def open(self, recording_id: uuid.UUID, kind: str = PLAYBACK) -> OpenAudio | None:
        """The verified audio of a stored recording; None if there is none to play.

        ``kind`` is PLAYBACK (the browser rendition; a recording captured before
        renditions existed plays its original instead) or ORIGINAL. Raises
        IntegrityFailure when the object is missing, cut short, grown, or altered.
        """
        now = self._clock()
        kept = self._kept.get(recording_id)
        opened = kept.audio.pop(kind, None) if kept is not None else None
        fresh_enough = opened is not None and now - opened.opened_at < self._keep_open_s
        if opened is not None and fresh_enough and await self._unchanged(opened):
            self._keep(recording_id).audio[kind] = opened
            return opened.audio
        fresh = await self._open_verified(recording_id, kind, now)
        if fresh is None:
            return None
        self._keep(recording_id).audio[kind] = fresh
        return fresh.audio

    def forget(self, recording_id: uuid.UUID) -> None:
        """Drop what is kept of a recording (it is being deleted)."""
        self._kept.pop(recording_id, None)

    async def _unchanged(self, opened: _Opened) -> bool:
        """Whether the store still holds the object as it was when verified."""
        try:
            return await self._objects.fingerprint(opened.object_key) == opened.fingerprint
        except ObjectMissing:
            return False  # opened afresh, which names the object as missing

    def _keep(self, recording_id: uuid.UUID) -> _Kept:
        kept = self._kept.get(recording_id)
        if kept is None:
            kept = self._kept[recording_id] = _Kept()
        self._kept.move_to_end(recording_id)
        while len(self._kept) > self._max_kept:
            self._kept.popitem(last=False)
        return kept

    async def _open_verified(
        self, recording_id: uuid.UUID, kind: str, now: float
    ) -> _Opened | None:
        async with self._database.read() as session:
            found = (
                await session.execute(
                    select(StoredObject, Recording.key_share_digest)
                    .join(Recording, Recording.id == StoredObject.recording_id)
                    .where(
                        StoredObject.recording_id == recording_id,
                        Recording.state == RecordingState.STORED,
                    )
                )
            ).all()
            objects = {stored.kind: stored for stored, _ in found}
            stored = objects.get(kind) or (objects.get(ORIGINAL) if kind == PLAYBACK else None)
            if stored is None or stored.data_key is None:
                return None
            digest = found[0][1]
            wrapped = WrappedKey(stored.data_key.kek_id, stored.data_key.wrapped)
        ciphertext = StoredCiphertext(
            self._objects, stored.object_key, stored.id, stored.ciphertext_size
        )
        try:
            # Taken before the checks, so a change made while they run is seen next time.
            fingerprint = await self._objects.fingerprint(stored.object_key)
            # The share's one GET goes out beside the size check, not after it.
            _, share = await asyncio.gather(
                ciphertext.check_size(), self._shares.read(recording_id, digest)
            )
        except ObjectMissing:
            raise IntegrityFailure("the recording's object is missing from the store") from None
        data_key = unmask(await self._keys.unwrap(wrapped, stored.id), stored.id, share)
        verified = await ciphertext.open(data_key)
        await verified.check_final_segment()
        info = AudioInfo(
            recording_id=recording_id,
            object_id=stored.id,
            content_type=stored.content_type,
            size=verified.plaintext_length,
            # Strong: the object never changes, and a new format would be a new object.
            etag=f'"{stored.id.hex}-sgrc1"',
        )
        return _Opened(now, OpenAudio(info, verified), stored.object_key, fingerprint)
