"""Storing a received recording, however it arrived (pushed, or fetched from a platform):
decode and render it in a media worker, then hand the original, the rendition and the
peaks to storage in one durable step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from recorder.errors import UndecodableAudio
from recorder.media import MediaReport
from recorder.media_jobs import MediaResult
from storage import AudioFacts, CaptureOutcome, EncryptedSpool, NewRecording, Peaks, SealedFile

# Audio this far from the call's length by its metadata is kept but flagged.
_MISMATCH_S = 10.0
_MISMATCH_RATIO = 0.1


class CaptureSink(Protocol):
    """What a capture needs from storage, and nothing more."""

    async def find_existing(
        self, source: str, source_recording_id: str
    ) -> CaptureOutcome | None: ...

    async def store_capture(
        self,
        spool: EncryptedSpool,
        recording: NewRecording,
        audio: AudioFacts,
        *,
        actor: str,
        rendition: SealedFile,
        peaks: Peaks,
    ) -> CaptureOutcome: ...

    async def record_discard(
        self, *, actor: str, source_recording_id: str, reason: str
    ) -> None: ...


class MediaProcessor(Protocol):
    """Decodes a finished spool and makes its rendition (workers.MediaWorkers)."""

    async def process(self, spool: EncryptedSpool) -> MediaResult: ...


class SpooledCapture:
    """Finished spool in, stored recording out; shared by every way recordings arrive."""

    def __init__(self, recordings: CaptureSink, media: MediaProcessor) -> None:
        self._recordings = recordings
        self._media = media

    async def store(
        self, spool: EncryptedSpool, recording: NewRecording, *, actor: str
    ) -> CaptureOutcome:
        """Decode, render and store; UndecodableAudio, MediaWorkerLost or Unavailable if not.

        Idempotent per (source, source recording id), like ``store_capture``.
        """
        facts = await spool.finish()
        if facts.plaintext_size == 0:
            raise UndecodableAudio("the audio part is empty")
        media = await self._media.process(spool)
        try:
            return await self._recordings.store_capture(
                spool,
                recording,
                audio_facts(media.report, recording.started_at, recording.ended_at),
                actor=actor,
                rendition=media.rendition,
                peaks=media.report.peaks,
            )
        finally:
            # Stored by now (a link or an upload), or not to be stored at all.
            media.rendition.path.unlink(missing_ok=True)


def audio_facts(report: MediaReport, started_at: datetime, ended_at: datetime | None) -> AudioFacts:
    """The facts to record: the report's, and whether the length fits the call's."""
    problems = [(problem.code, problem.detail) for problem in report.problems]
    if ended_at is not None:
        expected = (ended_at - started_at).total_seconds()
        if abs(report.duration_s - expected) > max(_MISMATCH_S, expected * _MISMATCH_RATIO):
            problems.append(
                (
                    "duration_mismatch",
                    f"the call lasted {expected:.0f} s by its metadata; "
                    f"the audio lasts {report.duration_s:.0f} s",
                )
            )
    return AudioFacts(
        container=report.container,
        codec=report.codec,
        sample_rate=report.sample_rate,
        channels=report.channels,
        duration_s=report.duration_s,
        content_type=report.content_type,
        declared_duration_s=report.declared_duration_s,
        problems=tuple(problems),
    )
