"""Building real pushes for tests and the benchmark: WAV audio, multipart bodies, signatures."""

from __future__ import annotations

import io
import json
import math
import struct
import time
import wave
from collections.abc import Mapping
from typing import Any

from recorder import sign_push

SECRET = "pbx-secret-for-tests-0123456789"
BOUNDARY = "callrec-test-boundary-7f3a"


def make_wav(seconds: float, *, rate: int = 8000, channels: int = 1) -> bytes:
    """A PCM16 WAV of a 425 Hz tone: real, decodable, and recognisable in ciphertext checks."""
    frames = int(seconds * rate)
    samples = bytearray()
    for n in range(frames):
        value = int(12000 * math.sin(2 * math.pi * 425 * n / rate))
        samples += struct.pack("<h", value) * channels
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(samples))
    return buffer.getvalue()


def metadata(recording_id: str = "1732501234.5678", **fields: Any) -> dict[str, Any]:
    """Contract-shaped metadata for a call that started an hour ago."""
    started = time.gmtime(time.time() - 3600)
    ended = time.gmtime(time.time() - 3200)
    document: dict[str, Any] = {
        "recording_id": recording_id,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
        "ended_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", ended),
        "direction": "inbound",
        "from": "+441384000001",
        "to": "+441384812345",
        "agent": "staff-0421",
        "team": "mash-children",
        "referrals": ["MASH-2026-004211"],
    }
    document.update(fields)
    return document


def part(name: str, content: bytes, *, filename: str | None = None, content_type: str) -> bytes:
    """One multipart/form-data part, framed with the test boundary."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + content
        + b"\r\n"
    )


def push_body(
    meta: Mapping[str, Any] | bytes | None,
    audio: bytes | None,
    *,
    filename: str = "call.wav",
) -> bytes:
    """A push body with the given parts (None leaves a part out), closed properly."""
    body = b""
    if meta is not None:
        raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
        body += part("metadata", raw, content_type="application/json")
    if audio is not None:
        body += part("audio", audio, filename=filename, content_type="audio/wav")
    return body + f"--{BOUNDARY}--\r\n".encode()


def push_headers(
    body: bytes, *, secret: str = SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers of a correctly signed push of ``body``."""
    when = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "X-Callrec-Timestamp": str(when),
        "X-Callrec-Signature": sign_push(secret.encode(), when, body),
    }
