"""Benchmark inputs: long WAV files and signed push bodies written to disk, never held whole."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.push_support import BOUNDARY, metadata

_CHUNK = 1024 * 1024


def tone_second(rate: int, channels: int) -> bytes:
    """One second of a 425 Hz tone as PCM16 frames."""
    frames = bytearray()
    for n in range(rate):
        sample = struct.pack("<h", int(12000 * math.sin(2 * math.pi * 425 * n / rate)))
        frames += sample * channels
    return bytes(frames)


def wav_header(data_bytes: int, rate: int, channels: int) -> bytes:
    """A canonical 44-byte PCM16 WAV header for ``data_bytes`` of samples."""
    block_align = 2 * channels
    return b"".join(
        [
            b"RIFF",
            struct.pack("<I", 36 + data_bytes),
            b"WAVEfmt ",
            struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block_align, block_align, 16),
            b"data",
            struct.pack("<I", data_bytes),
        ]
    )


@dataclass(frozen=True)
class PushFile:
    """A push body on disk with the headers that sign it."""

    path: Path
    size: int
    audio_bytes: int
    headers: dict[str, str]


def write_push(
    path: Path,
    *,
    recording_id: str,
    seconds: int,
    rate: int,
    channels: int,
    secret: bytes,
    timestamp: int,
) -> PushFile:
    """Write a signed push of a ``seconds``-long WAV to ``path``, signing as it writes."""
    second = tone_second(rate, channels)
    block = second * max(1, _CHUNK // len(second))
    per_block = len(block) // len(second)

    def audio() -> Iterator[bytes]:
        yield wav_header(len(second) * seconds, rate, channels)
        remaining = seconds
        while remaining:
            count = min(remaining, per_block)
            yield block[: count * len(second)]
            remaining -= count

    meta = metadata(recording_id=recording_id)
    return _write_signed(path, meta, audio(), len(second) * seconds, secret, timestamp)


def write_push_of_file(
    path: Path, audio: Path, *, recording_id: str, seconds: int, secret: bytes, timestamp: int
) -> PushFile:
    """A signed push of an audio file already on disk, for a call of ``seconds``."""
    started = time.gmtime(time.time() - seconds - 600)
    ended = time.gmtime(time.time() - 600)
    meta = metadata(
        recording_id=recording_id,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
        ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", ended),
    )

    def chunks() -> Iterator[bytes]:
        with audio.open("rb") as reader:
            while chunk := reader.read(_CHUNK):
                yield chunk

    return _write_signed(path, meta, chunks(), audio.stat().st_size, secret, timestamp)


def _write_signed(
    path: Path,
    meta: dict[str, object],
    audio: Iterator[bytes],
    audio_bytes: int,
    secret: bytes,
    timestamp: int,
) -> PushFile:
    mac = hmac.new(secret, f"{timestamp}.".encode(), hashlib.sha256)
    size = 0
    with path.open("wb") as out:

        def emit(data: bytes) -> None:
            nonlocal size
            mac.update(data)
            out.write(data)
            size += len(data)

        emit(
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
                "Content-Type: application/json\r\n\r\n"
            ).encode()
            + json.dumps(meta).encode()
            + b"\r\n"
        )
        emit(
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; '
                'filename="call.wav"\r\nContent-Type: audio/wav\r\n\r\n'
            ).encode()
        )
        for chunk in audio:
            emit(chunk)
        emit(f"\r\n--{BOUNDARY}--\r\n".encode())
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "X-Callrec-Timestamp": str(timestamp),
        "X-Callrec-Signature": f"v1={mac.hexdigest()}",
    }
    return PushFile(path, size, audio_bytes, headers)


def seconds_for_bytes(target: int, rate: int, channels: int) -> int:
    """How many seconds of PCM16 audio make about ``target`` bytes."""
    return max(1, target // (2 * rate * channels))
