"""Writing a subject access bundle: entries in, one encrypted file out, streamed.

Each entry's bytes pass once: into the tar stream, through SHA-256, into age and on to
the sink. Nothing is buffered beyond a chunk (except for a passphrase, see ``age``), and
nothing is written anywhere but the sink, which only ever sees ciphertext.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from retrieval.sar_bundle.age import Encryption, ToPassphrase, encrypt_stream
from retrieval.sar_bundle.errors import BundleRefused
from retrieval.sar_bundle.format import (
    MANIFEST_NAME,
    BundleCase,
    MemberDigest,
    member_name_problem,
    signed_manifest,
    tar_end,
    tar_header,
    tar_padding,
)
from storage import ReceiptSigner, rfc3339


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One file of the bundle: its name, its exact size in bytes, and its content.

    ``content`` is iterated once, when the entry's turn comes, so audio can be opened and
    read lazily; yielding more or fewer than ``size`` bytes abandons the bundle.
    """

    name: str
    size: int
    content: AsyncIterable[bytes]


def bytes_entry(name: str, data: bytes) -> BundleEntry:
    """An entry whose content is already in memory (JSON, a short text)."""
    return BundleEntry(name, len(data), _once(data))


def json_entry(name: str, value: Any) -> BundleEntry:
    """An entry holding ``value`` as indented, sorted JSON, for a person to read."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return bytes_entry(name, text.encode())


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class BundleSink(Protocol):
    """Where the ciphertext goes: a file (``private_bundle_file``), an HTTP response
    (aiohttp's ``StreamResponse.write``), anything with an async ``write``."""

    async def write(self, data: bytes, /) -> None: ...


@dataclass(frozen=True, slots=True)
class BundleSummary:
    """What was written, for the audit trail: by hashes and sizes, never content."""

    case: BundleCase
    created_at: datetime
    key_id: str
    files: tuple[MemberDigest, ...]
    manifest_sha256: str
    ciphertext_sha256: str
    ciphertext_bytes: int
    encrypted_to: tuple[str, ...]
    """The age recipients (public keys), or ``("passphrase",)``."""

    def audit_details(self) -> dict[str, Any]:
        """The summary as audit details: which files (hashes), signed by which key, for
        whom. Not the case: the case's own audit record names it already."""
        return {
            "created_at": rfc3339(self.created_at),
            "key_id": self.key_id,
            "files": [
                {"name": file.name, "size": file.size, "sha256": file.sha256} for file in self.files
            ],
            "manifest_sha256": self.manifest_sha256,
            "ciphertext_sha256": self.ciphertext_sha256,
            "ciphertext_bytes": self.ciphertext_bytes,
            "encrypted_to": list(self.encrypted_to),
        }


async def write_bundle(
    entries: Iterable[BundleEntry] | AsyncIterable[BundleEntry],
    *,
    case: BundleCase,
    created_at: datetime,
    signer: ReceiptSigner,
    encryption: Encryption,
    sink: BundleSink,
) -> BundleSummary:
    """Write the bundle of ``entries`` (in their order), its signed manifest last,
    encrypted, to ``sink``; return what the audit trail records of it.

    Raises BundleRefused for a bad or repeated name, a size that does not match, or a
    passphrase bundle over its limit, and whatever an entry's content or the sink raises;
    the sink has then received an incomplete bundle, which its owner must discard.
    """
    tar = _TarStream(case, created_at, signer)
    ciphertext = hashlib.sha256()
    ciphertext_bytes = 0

    async def write(data: bytes) -> None:
        nonlocal ciphertext_bytes
        ciphertext.update(data)
        ciphertext_bytes += len(data)
        await sink.write(data)

    # Closed however encryption ends, so an entry's reader is never left suspended.
    async with aclosing(tar.stream(entries)) as plaintext:
        await encrypt_stream(plaintext, encryption, write)
    return BundleSummary(
        case=case,
        created_at=created_at,
        key_id=signer.key_id,
        files=tuple(tar.members),
        manifest_sha256=tar.manifest_sha256,
        ciphertext_sha256=ciphertext.hexdigest(),
        ciphertext_bytes=ciphertext_bytes,
        encrypted_to=(
            ("passphrase",) if isinstance(encryption, ToPassphrase) else encryption.recipients
        ),
    )


class _TarStream:
    """The tar bytes of the entries and the manifest, hashing each member as it passes."""

    def __init__(self, case: BundleCase, created_at: datetime, signer: ReceiptSigner) -> None:
        self._case = case
        self._created_at = created_at
        self._signer = signer
        self._written = 0
        self.members: list[MemberDigest] = []
        self.manifest_sha256 = ""

    async def stream(
        self, entries: Iterable[BundleEntry] | AsyncIterable[BundleEntry]
    ) -> AsyncGenerator[bytes, None]:
        names: set[str] = set()
        async for entry in _each(entries):
            problem = member_name_problem(entry.name)
            if problem is not None or entry.name == MANIFEST_NAME:
                raise BundleRefused(f"{entry.name!r}: {problem or 'the manifest name is taken'}")
            if entry.name in names:
                raise BundleRefused(f"{entry.name} is given twice")
            if entry.size < 0:
                raise BundleRefused(f"{entry.name} has a negative size")
            names.add(entry.name)
            digest = hashlib.sha256()
            yield self._count(tar_header(entry.name, entry.size, self._created_at))
            seen = 0
            async for chunk in entry.content:
                seen += len(chunk)
                if seen > entry.size:
                    raise BundleRefused(f"{entry.name} is longer than its {entry.size} bytes")
                digest.update(chunk)
                if chunk:
                    yield self._count(chunk)
            if seen != entry.size:
                raise BundleRefused(f"{entry.name} ended at {seen} of its {entry.size} bytes")
            yield self._count(tar_padding(entry.size))
            self.members.append(MemberDigest(entry.name, entry.size, digest.hexdigest()))
        manifest = signed_manifest(self._case, self._created_at, self.members, self._signer)
        self.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        yield self._count(tar_header(MANIFEST_NAME, len(manifest), self._created_at))
        yield self._count(manifest)
        yield self._count(tar_padding(len(manifest)))
        yield tar_end(self._written)

    def _count(self, data: bytes) -> bytes:
        self._written += len(data)
        return data


async def _each(
    entries: Iterable[BundleEntry] | AsyncIterable[BundleEntry],
) -> AsyncIterator[BundleEntry]:
    if isinstance(entries, AsyncIterable):
        async for entry in entries:
            yield entry
    else:
        for entry in entries:
            yield entry
