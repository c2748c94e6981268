"""The work a media worker process does, and what it sends back: a capture's check, a
queued rendition, or a redacted copy for a subject access request.

Kept apart from workers.py so a worker process imports only this (PyAV, numpy and the
storage crypto), never aiohttp or the service. Everything here crosses a process
boundary by pickling: the data key of the input goes to the worker, the data key of
a new rendition comes back; both live only in memory and in the pipe between.
"""

from __future__ import annotations

import functools
import io
import os
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from recorder import redacted_wav
from recorder.media import MediaReport, analyse
from recorder.redaction import Redaction
from recorder.rendition import CONTENT_TYPE
from storage import EncryptedFileReader, SealedFile, SealedFileWriter

# PyAV asks for small reads; this much is decrypted at a time beneath them.
_READ_BUFFER = 256 * 1024


@dataclass(frozen=True, slots=True)
class EncryptedInput:
    """An encrypted file on local disk (a spool, or a copy of a stored original) and what
    opens it."""

    path: Path
    object_id: uuid.UUID
    data_key: bytes
    ciphertext_size: int

    def __repr__(self) -> str:
        return f"EncryptedInput({self.object_id}, {self.path})"

    def open(self) -> EncryptedFileReader:
        return EncryptedFileReader(self.path, self.data_key, self.object_id, self.ciphertext_size)


@dataclass(frozen=True, slots=True)
class CheckJob:
    """Decode a capture to decide whether it is usable, and draw its peaks: what the sender
    waits for."""

    source: EncryptedInput
    max_channels: int

    def run(self) -> MediaReport:
        """The report; UndecodableAudio if the file holds no usable audio."""
        with self.source.open() as plaintext:
            return analyse(
                io.BufferedReader(plaintext, _READ_BUFFER),
                max_channels=self.max_channels,
                rendition=None,
            )


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendition made, and the CPU seconds the worker process spent making it.

    CPU, not wall time, because the rendition workers run niced beneath the captures a
    sender waits on: their wall time measures how often they were made to wait, their
    CPU time what the encode costs, which is what a core-hour of capacity buys.
    """

    sealed: SealedFile
    cpu_s: float


@dataclass(frozen=True, slots=True)
class RenderJob:
    """Make the encrypted browser rendition of a stored original: queued work, no sender
    waiting."""

    source: EncryptedInput
    rendition_path: Path
    rendition_object_id: uuid.UUID
    max_channels: int

    def run(self) -> Rendered:
        """The sealed rendition at ``rendition_path``; UndecodableAudio if it cannot be made."""
        started = time.process_time()
        with self.source.open() as plaintext:
            writer = SealedFileWriter(
                self.rendition_path, CONTENT_TYPE, object_id=self.rendition_object_id
            )
            try:
                analyse(
                    io.BufferedReader(plaintext, _READ_BUFFER),
                    max_channels=self.max_channels,
                    rendition=writer,
                )
                return Rendered(writer.seal(), time.process_time() - started)
            finally:
                writer.close()


@dataclass(frozen=True, slots=True)
class Redacted:
    """A redacted copy made: the sealed WAV, what decoded (rate, channels, length), and the
    CPU seconds it took."""

    sealed: SealedFile
    report: MediaReport
    cpu_s: float


@dataclass(frozen=True, slots=True)
class RedactJob:
    """Make the encrypted, redacted WAV copy of a stored original (subject access).

    The same decode pass as a rendition's, so the copy's samples sit on the timeline the
    DPO chose the muted stretches on, under the same decompression-bomb limits.
    """

    source: EncryptedInput
    redaction: Redaction
    output_path: Path
    max_channels: int

    def run(self) -> Redacted:
        """The sealed copy at ``output_path``; InvalidRedaction if the redaction does not
        fit the recording, UndecodableAudio if it cannot be decoded."""
        started = time.process_time()
        with self.source.open() as plaintext:
            writer = SealedFileWriter(self.output_path, redacted_wav.CONTENT_TYPE)
            try:
                report = analyse(
                    io.BufferedReader(plaintext, _READ_BUFFER),
                    max_channels=self.max_channels,
                    rendition=writer,
                    writer=functools.partial(
                        redacted_wav.RedactedWavWriter, redaction=self.redaction
                    ),
                )
                # The pass mixes more than two channels down to two, which is no longer
                # the caller's and the staff's side apart.
                self.redaction.check_channels(report.channels)
                return Redacted(writer.seal(), report, time.process_time() - started)
            finally:
                writer.close()


MediaJob = CheckJob | RenderJob | RedactJob


def serve_jobs(pipe: Connection, niceness: int = 0) -> None:
    """A worker process's life: run each job that comes down the pipe, send back its result.

    The answer is ``("ok", result)`` or ``("error", exception)``; ``None`` is a ping,
    answered with ``None``. The process ends when the service closes its end.
    ``niceness`` lowers the process's CPU priority: renditions, which nobody waits for,
    yield the cores to captures a sender is waiting on.
    """
    if niceness:
        os.nice(niceness)
    while True:
        try:
            job = pipe.recv()
        except (EOFError, OSError):
            return
        if job is None:
            pipe.send(None)
            continue
        answer: tuple[str, Any]
        try:
            answer = ("ok", job.run())
        except Exception as exc:  # whatever it was, the service decides what to answer
            answer = ("error", exc)
        try:
            pipe.send(answer)
        except Exception:  # an exception that does not pickle
            pipe.send(("error", RuntimeError(type(answer[1]).__name__)))
