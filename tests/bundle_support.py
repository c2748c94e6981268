"""Subject access bundles made in memory for tests, and the tools to damage them.

A bundle's members are authenticated by age, so a test that alters one must decrypt the
bundle, rebuild the tar as it wants, and encrypt it again: ``retar``. Nothing here writes
plaintext to disk.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyrage

from retrieval.sar_bundle import (
    BundleCase,
    BundleEntry,
    BundleSummary,
    Encryption,
    ToRecipients,
    bytes_entry,
    json_entry,
    write_bundle,
)
from storage import ReceiptSigner
from storage.keys.signing import signing_key_from_seed

CASE = BundleCase("5d0c6d1e-4a0e-4a86-9d43-1f1b8c1f7a10", "SAR-2026-0042")
CREATED_AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
AUDIO = b"RIFF" + bytes(range(256)) * 300
"""Stands in for a redacted WAV: the bundle does not look inside its members."""
AUDIO_NAME = "recordings/7b1e0c9a-0000-4000-8000-000000000001/audio.wav"


def new_signer() -> ReceiptSigner:
    """A receipt signer with a key of its own, as the service's is."""
    return ReceiptSigner(signing_key_from_seed(os.urandom(32)))


async def chunks_of(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """``data`` in chunks, as audio read from storage arrives."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def case_entries(audio: bytes = AUDIO) -> list[BundleEntry]:
    """A one-recording case: its audio streamed, its metadata, accesses and the case."""
    recording = AUDIO_NAME.rsplit("/", 1)[0]
    return [
        json_entry("case.json", {"reference": CASE.reference, "recordings": 1}),
        BundleEntry(AUDIO_NAME, len(audio), chunks_of(audio)),
        json_entry(f"{recording}/metadata.json", {"started_at": "2026-11-24T09:15:02Z"}),
        bytes_entry(f"{recording}/accesses.json", b'[{"purpose": "subject_access"}]\n'),
    ]


@dataclass
class MemorySink:
    """A sink keeping the ciphertext in memory."""

    data: bytearray = field(default_factory=bytearray)

    async def write(self, data: bytes, /) -> None:
        self.data += data


async def make_bundle(
    signer: ReceiptSigner,
    encryption: Encryption,
    entries: Iterable[BundleEntry] | AsyncIterable[BundleEntry] | None = None,
) -> tuple[bytes, BundleSummary]:
    """The ciphertext of a bundle of ``entries`` (by default ``case_entries()``)."""
    sink = MemorySink()
    summary = await write_bundle(
        case_entries() if entries is None else entries,
        case=CASE,
        created_at=CREATED_AT,
        signer=signer,
        encryption=encryption,
        sink=sink,
    )
    return bytes(sink.data), summary


def to_identity(identity: Any) -> ToRecipients:
    """Encryption to the public half of an age identity."""
    return ToRecipients((str(identity.to_public()),))


Member = tuple[tarfile.TarInfo, bytes]


def retar(
    ciphertext: bytes, identity: Any, change: Callable[[list[Member]], list[Member]]
) -> bytes:
    """The bundle with its members (in order, manifest last) changed by ``change``,
    encrypted again to ``identity``."""
    plaintext = pyrage.decrypt(ciphertext, [identity])
    members: list[Member] = []
    with tarfile.open(fileobj=io.BytesIO(plaintext), mode="r:") as archive:
        for info in archive.getmembers():
            content = archive.extractfile(info)
            members.append((info, content.read() if content is not None else b""))
    rebuilt = io.BytesIO()
    with tarfile.open(fileobj=rebuilt, mode="w:", format=tarfile.PAX_FORMAT) as archive:
        for info, data in change(members):
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return bytes(pyrage.encrypt(rebuilt.getvalue(), [identity.to_public()]))


def file_member(name: str, data: bytes) -> Member:
    """A regular file member, as an extra one slipped into a bundle."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    return info, data
