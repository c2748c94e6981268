"""Storing a received recording, however it arrived (pushed, or fetched from a platform):
check it in a media worker, then hand the original and its peaks to storage in one
durable step, with its rendition queued.

What a sender is promised on acknowledgement is durability: the original stored,
encrypted, and known to be usable audio. The browser rendition is not part of that
promise, so it is made afterwards (recorder/rendition_worker.py) and nobody waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from recorder.errors import UndecodableAudio
from recorder.media import MediaReport
from storage import AudioFacts, CaptureOutcome, EncryptedSpool, NewRecording, Peaks

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
        peaks: Peaks,
        queue_rendition: bool,
    ) -> CaptureOutcome: ...

    async def record_discard(
        self, *, actor: str, source_recording_id: str, reason: str
    ) -> None: ...


class MediaChecker(Protocol):
    """Decodes a finished spool to decide whether it is usable (workers.MediaWorkers)."""

    async def check(self, spool: EncryptedSpool) -> MediaReport: ...


class SpooledCapture:
    """Finished spool in, stored recording out; shared by every way recordings arrive."""

    def __init__(
        self,
        recordings: CaptureSink,
        media: MediaChecker,
        rendition_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._recordings = recordings
        self._media = media
        self._rendition_queued = rendition_queued

    async def store(
        self, spool: EncryptedSpool, recording: NewRecording, *, actor: str
    ) -> CaptureOutcome:
        """Check and store, with the rendition queued; UndecodableAudio, MediaWorkerLost or
        Unavailable if not.

        Idempotent per (source, source recording id), like ``store_capture``.
        """
        facts = await spool.finish()
        if facts.plaintext_size == 0:
            raise UndecodableAudio("the audio part is empty")
        report = await self._media.check(spool)
        outcome = await self._recordings.store_capture(
            spool,
            recording,
            audio_facts(report, recording.started_at, recording.ended_at),
            actor=actor,
            peaks=report.peaks,
            queue_rendition=True,
        )
        if outcome.created:
            self._rendition_queued()
        return outcome


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
