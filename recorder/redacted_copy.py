"""A redacted copy of a stored recording, made on request and streamed, never kept.

The original's ciphertext is copied into the scratch directory (as for a rendition), a
media worker decodes it and writes the redacted WAV through the sealed writer beside it,
and the copy is read back, decrypting as it goes, in chunks the caller passes on (into a
subject access bundle). Plaintext exists only in the worker's memory and in the chunks
in flight; both files in scratch are ciphertext under keys held in memory, and both are
removed when the copy is closed. The stored original is only ever read.

Give it the service's spool directory as scratch: a process that dies mid-copy leaves its
files there, where the next start sweeps them away with the keys already gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recorder.media_jobs import EncryptedInput, Redacted
from recorder.redaction import Redaction
from storage import EncryptedFileReader, IntegrityFailure, NotStored, OriginalCopy, SealedFile

CHUNK_BYTES = 1024 * 1024
"""Plaintext handed out at a time: one thread hop each, and all that is in memory."""


class Originals(Protocol):
    """Where a recording's original comes from (storage's RenditionStore)."""

    async def copy_original(
        self, recording_id: uuid.UUID, directory: Path
    ) -> OriginalCopy | None: ...


class Redactor(Protocol):
    """Makes a redacted copy in a worker process (workers.MediaWorkers)."""

    async def redact(self, source: EncryptedInput, redaction: Redaction) -> Redacted: ...


@dataclass(frozen=True, slots=True)
class RedactedAudio:
    """An open redacted copy: what it is, and its plaintext as a stream of chunks.

    ``size`` and ``sha256`` are the plaintext's (what a bundle's manifest lists); they
    are known before the first byte is read. Readable only inside ``RedactedCopies.open``.
    """

    recording_id: uuid.UUID
    redaction: Redaction
    content_type: str
    size: int
    sha256: str
    sample_rate: int
    channels: int
    """The original's channels; the copy has as many (up to two, as playback does)."""
    duration_s: float
    sealed: SealedFile = field(repr=False)
    """The encrypted file in scratch, and its key (in memory only)."""

    async def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The plaintext WAV, ``chunk_bytes`` at a time, each segment authenticated as it is
        read; IntegrityFailure if what was read is not what was sealed."""
        sealed = self.sealed
        reader = await asyncio.to_thread(
            EncryptedFileReader,
            sealed.path,
            sealed.data_key,
            sealed.object_id,
            sealed.facts.ciphertext_size,
        )
        digest = hashlib.sha256()
        read = 0
        try:
            while chunk := await asyncio.to_thread(reader.read, chunk_bytes):
                digest.update(chunk)
                read += len(chunk)
                yield chunk
        finally:
            reader.close()
        if read != self.size or digest.hexdigest() != self.sha256:
            raise IntegrityFailure("the redacted copy read back differs from what was written")

    async def read_all(self) -> bytes:
        """The whole plaintext in memory: for tests and short calls only."""
        return b"".join([chunk async for chunk in self.chunks()])


class RedactedCopies:
    """Makes redacted copies of stored recordings in the media workers; see the module
    docstring for where the bytes are at each step."""

    def __init__(self, *, originals: Originals, media: Redactor, scratch_dir: Path) -> None:
        self._originals = originals
        self._media = media
        self._scratch = scratch_dir

    @asynccontextmanager
    async def open(
        self, recording_id: uuid.UUID, redaction: Redaction
    ) -> AsyncIterator[RedactedAudio]:
        """The redacted copy of the recording, readable until the block ends; its files
        are gone afterwards, however the block ends.

        Raises NotStored if the recording is not (or no longer) stored; InvalidRedaction
        if the redaction does not fit what decodes; UndecodableAudio, MediaWorkerLost,
        IntegrityFailure or the store's errors as a rendition would.
        """
        copy = await self._originals.copy_original(recording_id, self._scratch)
        if copy is None:
            raise NotStored(f"recording {recording_id} is not stored")
        try:
            source = EncryptedInput(copy.path, copy.object_id, copy.data_key, copy.ciphertext_size)
            redacted = await self._media.redact(source, redaction)
        finally:
            copy.path.unlink(missing_ok=True)
        sealed = redacted.sealed
        try:
            yield RedactedAudio(
                recording_id=recording_id,
                redaction=redaction,
                content_type=sealed.content_type,
                size=sealed.facts.plaintext_size,
                sha256=sealed.facts.plaintext_sha256,
                sample_rate=redacted.report.sample_rate,
                channels=redacted.report.channels,
                duration_s=redacted.report.duration_s,
                sealed=sealed,
            )
        finally:
            sealed.path.unlink(missing_ok=True)

    def open_chosen(
        self,
        recording_id: uuid.UUID,
        choice: Mapping[str, Any] | None,
        *,
        channels: int | None,
        duration_s: float | None,
    ) -> AbstractAsyncContextManager[RedactedAudio]:
        """``open`` with the redaction a DPO chose, as kept with the case (None: the
        whole recording), for callers that only know it as data; InvalidRedaction at
        once if it does not fit the recording's ``channels`` and ``duration_s``."""
        redaction = (
            Redaction(None)
            if choice is None
            else Redaction.from_choice(choice, channels=channels, duration_s=duration_s)
        )
        return self.open(recording_id, redaction)
