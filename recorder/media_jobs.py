"""The work a media worker process does for one capture, and what it sends back.

Kept apart from workers.py so a worker process imports only this (PyAV, numpy and the
storage crypto), never aiohttp or the service. Everything here crosses a process
boundary by pickling: the data key of the spool goes to the worker, the data key of
the new rendition comes back; both live only in memory and in the pipe between.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from recorder.media import MediaReport, analyse
from recorder.rendition import CONTENT_TYPE
from storage import EncryptedFileReader, SealedFile, SealedFileWriter

# PyAV asks for small reads; this much is decrypted at a time beneath them.
_READ_BUFFER = 256 * 1024


@dataclass(frozen=True, slots=True)
class MediaJob:
    """Where the encrypted spool is, how to read it, and where to write the rendition."""

    spool_path: Path
    object_id: uuid.UUID
    data_key: bytes
    ciphertext_size: int
    rendition_path: Path
    max_channels: int

    def __repr__(self) -> str:
        return f"MediaJob({self.object_id}, {self.spool_path})"


@dataclass(frozen=True, slots=True)
class MediaResult:
    """The report and the sealed rendition, ready for storing."""

    report: MediaReport
    rendition: SealedFile


def run_media_job(job: MediaJob) -> MediaResult:
    """Decode the spool, write the encrypted rendition; raise UndecodableAudio if unusable."""
    with EncryptedFileReader(
        job.spool_path, job.data_key, job.object_id, job.ciphertext_size
    ) as plaintext:
        source = io.BufferedReader(plaintext, _READ_BUFFER)
        writer = SealedFileWriter(job.rendition_path, CONTENT_TYPE)
        try:
            report = analyse(source, max_channels=job.max_channels, rendition=writer)
            sealed = writer.seal()
        finally:
            writer.close()
    return MediaResult(report, sealed)


def serve_jobs(pipe: Connection) -> None:
    """A worker process's life: run each job that comes down the pipe, send back its result.

    The answer is ``("ok", result)`` or ``("error", exception)``; ``None`` is a ping,
    answered with ``None``. The process ends when the service closes its end.
    """
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
            answer = ("ok", run_media_job(job))
        except Exception as exc:  # whatever it was, the service decides what to answer
            answer = ("error", exc)
        try:
            pipe.send(answer)
        except Exception:  # an exception that does not pickle
            pipe.send(("error", RuntimeError(type(answer[1]).__name__)))
