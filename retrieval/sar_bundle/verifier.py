"""Checking a subject access bundle offline: decrypt, read, hash, compare, check signature.

Nothing is extracted: the plaintext flows from age through a pipe into the tar reader and
each member through SHA-256, in memory only. The verdict names the first problem: whether
it opens, then the archive as it streams (names, types, repeats), then the manifest and
its signature, then each listed file against what was there.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, BinaryIO, Final

from retrieval.sar_bundle.age import Decryption, decrypt_into
from retrieval.sar_bundle.errors import BundleInvalid, BundleUnopenable
from retrieval.sar_bundle.format import (
    MANIFEST_NAME,
    BundleCase,
    Manifest,
    MemberDigest,
    member_name_problem,
    read_manifest,
)
from storage import KeyringError, public_key_id, verify_receipt

MANIFEST_LIMIT_BYTES: Final = 16 * 1024 * 1024
_READ_BYTES = 64 * 1024
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class BundleReport:
    """A bundle found intact: whose it is, what it holds, and which key signed it."""

    case: BundleCase
    created_at: str
    key_id: str
    files: int
    content_bytes: int
    manifest_sha256: str


def trusted_keys(files: list[bytes]) -> dict[str, bytes]:
    """The receipt public keys in ``files`` (each one or more PEM blocks, as
    ``callrec keys receipt-keys`` prints them) by the id the service gives them;
    BundleUnopenable naming a file without one, or with a block that is not Ed25519."""
    keys: dict[str, bytes] = {}
    for number, data in enumerate(files, start=1):
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise BundleUnopenable(f"public key file {number}: not a PEM public key")
        for pem in blocks:
            try:
                keys[public_key_id(pem)] = pem
            except KeyringError as exc:
                raise BundleUnopenable(f"public key file {number}: {exc}") from None
    return keys


def verify_bundle(
    source: BinaryIO,
    key: Decryption,
    public_keys: Mapping[str, bytes],
    *,
    progress: Callable[[int], None] | None = None,
) -> BundleReport:
    """Check the bundle read from ``source`` against its signed manifest.

    ``public_keys`` maps key ids to the PEM of receipt public keys trusted to sign
    (``trusted_keys``). Raises BundleUnopenable when ``key`` does not open it, and
    BundleInvalid naming the first problem; ``progress`` is told of each member read.
    """
    read_fd, write_fd = os.pipe()
    failures: list[BaseException] = []
    # Unbuffered: nothing is left to flush into a pipe whose reader may have stopped.
    pipe_in = open(write_fd, "wb", buffering=0)  # noqa: SIM115 (the worker closes it)

    def decrypt() -> None:
        try:
            decrypt_into(source, key, pipe_in)
        except BaseException as exc:  # handed to the reading thread below
            failures.append(exc)
        finally:
            pipe_in.close()

    worker = threading.Thread(target=decrypt, name="bundle decrypt", daemon=True)
    with open(read_fd, "rb") as plaintext:
        worker.start()
        try:
            found, manifest_bytes = _read_members(plaintext, progress)
            _drain_end(plaintext)
        except BaseException as exc:
            plaintext.close()  # the worker's next write fails, and it stops
            worker.join()
            if isinstance(exc, BundleInvalid):
                raise _first_of(failures) or exc from None
            raise
    worker.join()
    if failure := _first_of(failures):
        raise failure
    return _check_manifest(found, manifest_bytes, public_keys)


def _first_of(failures: list[BaseException]) -> BaseException | None:
    """The decryption's own failure (it explains an archive that ends early), not the
    broken pipe it meets when the reader has stopped."""
    for failure in failures:
        if not isinstance(failure, BrokenPipeError):
            return failure
    return None


def _read_members(
    plaintext: BinaryIO, progress: Callable[[int], None] | None
) -> tuple[dict[str, MemberDigest], bytes]:
    found: dict[str, MemberDigest] = {}
    manifest: bytes | None = None
    try:
        with tarfile.open(fileobj=plaintext, mode="r|") as archive:
            for info in archive:
                name = info.name
                if manifest is not None:
                    raise BundleInvalid(f"{name!r} comes after the manifest, which must be last")
                if problem := member_name_problem(name):
                    raise BundleInvalid(f"member {name!r} is refused: {problem}")
                if not info.isreg():
                    raise BundleInvalid(f"member {name} is not a regular file")
                if name in found:
                    raise BundleInvalid(f"member {name} appears twice")
                content = archive.extractfile(info)
                assert content is not None  # a regular file always has content
                if name == MANIFEST_NAME:
                    if info.size > MANIFEST_LIMIT_BYTES:
                        raise BundleInvalid(f"the manifest is {info.size} bytes, too large")
                    manifest = content.read()
                else:
                    found[name] = _digest(name, content)
                if progress is not None:
                    progress(1)
    except tarfile.TarError as exc:
        raise BundleInvalid(f"not a readable tar archive: {exc}") from None
    if manifest is None:
        raise BundleInvalid(f"no {MANIFEST_NAME} in the bundle")
    return found, manifest


def _digest(name: str, content: IO[bytes]) -> MemberDigest:
    digest = hashlib.sha256()
    size = 0
    while chunk := content.read(_READ_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return MemberDigest(name, size, digest.hexdigest())


def _drain_end(plaintext: BinaryIO) -> None:
    """Read to the end, so age authenticates the last chunk (a cut-short bundle is caught
    there); anything but tar's zero padding after the archive is refused."""
    while chunk := plaintext.read(_READ_BYTES):
        if chunk.strip(b"\0"):
            raise BundleInvalid("there is data after the end of the archive")


def _check_manifest(
    found: Mapping[str, MemberDigest], data: bytes, public_keys: Mapping[str, bytes]
) -> BundleReport:
    try:
        manifest = read_manifest(data)
    except ValueError as exc:
        raise BundleInvalid(f"the manifest {exc}") from None
    _check_signature(manifest, public_keys)
    for name, listed in manifest.files.items():
        present = found.get(name)
        if present is None:
            raise BundleInvalid(f"{name} is listed in the manifest but missing")
        if present.size != listed.size:
            raise BundleInvalid(f"{name} is {present.size} bytes, the manifest says {listed.size}")
        if present.sha256 != listed.sha256:
            raise BundleInvalid(
                f"{name} has sha256 {present.sha256}, the manifest says {listed.sha256}"
            )
    for name in found:
        if name not in manifest.files:
            raise BundleInvalid(f"{name} is in the bundle but not in the manifest")
    return BundleReport(
        case=manifest.case,
        created_at=str(manifest.body.get("created_at", "")),
        key_id=manifest.key_id,
        files=len(found),
        content_bytes=sum(member.size for member in found.values()),
        manifest_sha256=hashlib.sha256(data).hexdigest(),
    )


def _check_signature(manifest: Manifest, public_keys: Mapping[str, bytes]) -> None:
    pem = public_keys.get(manifest.key_id)
    if pem is None:
        raise BundleInvalid(
            f"the manifest is signed by key {manifest.key_id}, which is not among the "
            f"public keys given ({', '.join(sorted(public_keys)) or 'none'})"
        )
    if not verify_receipt(manifest.body, pem):
        raise BundleInvalid(
            f"the manifest's signature by key {manifest.key_id} does not verify: "
            "it was altered after signing, or forged"
        )
