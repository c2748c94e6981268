"""The subject access bundle's layout: member names, tar framing and the signed manifest.

A bundle is an age-encrypted POSIX tar (pax format) whose members are the case's files
and, last, ``manifest.json``: every other member's name, size and SHA-256, signed with the
service's Ed25519 receipt key in the receipt scheme (``storage.ReceiptSigner``). The
writer and the verifier both read their rules from here, so they cannot disagree.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from storage import ReceiptSigner, rfc3339

FORMAT: Final = "callrec-sar-bundle"
FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"

BLOCK: Final = tarfile.BLOCKSIZE
RECORD: Final = tarfile.RECORDSIZE
MEMBER_MODE: Final = 0o600

_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_NAME = 255
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class BundleCase:
    """Which subject access case a bundle answers: the service's id and the DPO's reference."""

    id: str
    reference: str


@dataclass(frozen=True, slots=True)
class MemberDigest:
    """One member as the manifest lists it."""

    name: str
    size: int
    sha256: str


def member_name_problem(name: str) -> str | None:
    """Why ``name`` may not be a member's name, or None if it may.

    Relative, '/'-separated, each part starting with a letter or digit and made of
    letters, digits, '.', '_' and '-': so no absolute path, no '..', no hidden file, no
    backslash and nothing an unpacking tool could turn into a path outside its directory.
    """
    if not name or len(name) > _MAX_NAME:
        return f"a member name must be 1 to {_MAX_NAME} characters"
    if name.startswith("/"):
        return "an absolute member name"
    if not all(_COMPONENT.fullmatch(part) for part in name.split("/")):
        return "a member name with '..', an empty, hidden or unusual part"
    return None


def tar_header(name: str, size: int, mtime: datetime) -> bytes:
    """The pax header of a regular, owner-only file: no user or group names of this host."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime.timestamp())
    info.mode = MEMBER_MODE
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def tar_padding(size: int) -> bytes:
    """The zeros after ``size`` bytes of content, up to the next block."""
    return bytes(-size % BLOCK)


def tar_end(written: int) -> bytes:
    """The two zero blocks that end an archive, and zeros up to a whole record, as tar
    writes them (some readers expect whole records)."""
    end = 2 * BLOCK
    return bytes(end + (-(written + end) % RECORD))


def manifest_facts(
    case: BundleCase, created_at: datetime, members: Sequence[MemberDigest]
) -> dict[str, Any]:
    """What the manifest states, before the signer adds its key id and signature."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "case": {"id": case.id, "reference": case.reference},
        "created_at": rfc3339(created_at),
        "files": [
            {"name": member.name, "size": member.size, "sha256": member.sha256}
            for member in members
        ],
    }


def signed_manifest(
    case: BundleCase, created_at: datetime, members: Sequence[MemberDigest], signer: ReceiptSigner
) -> bytes:
    """``manifest.json``: the facts signed, as indented JSON for a person to read.

    The signature is over the canonical form (sorted keys, no whitespace), so the layout
    here is free; the verifier parses and re-canonicalises.
    """
    signed = signer.sign(manifest_facts(case, created_at, members))
    return (json.dumps(signed, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest as read back: its whole signed body, and the files it lists by name."""

    body: Mapping[str, Any]
    key_id: str
    files: Mapping[str, MemberDigest]
    case: BundleCase


def read_manifest(data: bytes) -> Manifest:
    """Parse ``manifest.json``; ValueError naming what is malformed (not the signature:
    that is checked against keys the caller trusts)."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("is not a JSON object")
    if body.get("format") != FORMAT or body.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"is not a {FORMAT} version {FORMAT_VERSION} manifest")
    key_id, case, listed = body.get("key_id"), body.get("case"), body.get("files")
    if not isinstance(key_id, str) or not isinstance(listed, list) or not isinstance(case, dict):
        raise ValueError("lacks its key id, case or file list")
    files: dict[str, MemberDigest] = {}
    for entry in listed:
        member = _listed_member(entry)
        if member.name in files:
            raise ValueError(f"lists {member.name} twice")
        files[member.name] = member
    return Manifest(
        body=body,
        key_id=key_id,
        files=files,
        case=BundleCase(str(case.get("id", "")), str(case.get("reference", ""))),
    )


def _listed_member(entry: object) -> MemberDigest:
    if not isinstance(entry, dict):
        raise ValueError("has a file entry that is not an object")
    name, size, digest = entry.get("name"), entry.get("size"), entry.get("sha256")
    if not isinstance(name, str) or member_name_problem(name) or name == MANIFEST_NAME:
        raise ValueError(f"lists a file with an unacceptable name {name!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"gives {name} no valid size")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
        raise ValueError(f"gives {name} no valid sha256")
    return MemberDigest(name, size, digest)
