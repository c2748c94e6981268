"""The SGRC v1 segmented encryption format: its header, layout and key derivation.

Writing and reading live beside it (encryptor, decryptor, file_reader); key storage and
wrapping live in ``storage.keys``.
"""

from __future__ import annotations

import os
import struct
import uuid
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import IntegrityFailure

HEADER_LENGTH: Final = 80
TAG_LENGTH: Final = 16
SEGMENT_LOG2: Final = 16
SEGMENT_PLAINTEXT: Final = 1 << SEGMENT_LOG2
SEGMENT_CIPHERTEXT: Final = SEGMENT_PLAINTEXT + TAG_LENGTH

MAGIC: Final = b"SGRC"
VERSION: Final = 0x01
ALG_AES256_GCM_HKDF_SHA256: Final = 0x01
KEY_LENGTH: Final = 32
SALT_LENGTH: Final = 32
NONCE_PREFIX_LENGTH: Final = 7
# The nonce carries the segment index as a uint32, so this bounds an object at 256 TiB.
MAX_SEGMENTS: Final = 1 << 32

COMMIT_INFO: Final = b"sgrc/v1 commit\0"
ENC_INFO: Final = b"sgrc/v1 enc\0"

# magic, version, alg, seg_log2, reserved, salt, nonce prefix, reserved, commitment
HEADER: Final = struct.Struct(">4sBBBB32s7sB32s")
assert HEADER.size == HEADER_LENGTH
NONCE_TAIL: Final = struct.Struct(">IB")


def new_data_key() -> bytes:
    """Return a fresh data-encryption key; every object gets its own and none is ever reused."""
    return os.urandom(KEY_LENGTH)


def ciphertext_length(plaintext_length: int) -> int:
    """Return the stored size of an object, so callers can record and check it up front."""
    if plaintext_length < 0:
        raise ValueError("plaintext length cannot be negative")
    # Empty plaintext still gets one (empty) final segment so that truncation stays detectable.
    segments = max(1, -(-plaintext_length // SEGMENT_PLAINTEXT))
    return HEADER_LENGTH + plaintext_length + TAG_LENGTH * segments


def plaintext_length(ciphertext_length: int) -> int:
    """Return the plaintext size behind a stored size, refusing sizes the encoder never makes."""
    return layout(ciphertext_length)[0]


def layout(ciphertext_length: int) -> tuple[int, int]:
    """Return (plaintext length, segment count) or raise if no encoder output has this size."""
    body = ciphertext_length - HEADER_LENGTH
    if body < TAG_LENGTH:
        raise IntegrityFailure("ciphertext too short to hold a header and one segment")
    segments = -(-body // SEGMENT_CIPHERTEXT)
    final = body - (segments - 1) * SEGMENT_CIPHERTEXT
    # The final segment holds 1..P plaintext bytes, or 0 only when it is the only segment.
    if final < TAG_LENGTH or (final == TAG_LENGTH and segments > 1):
        raise IntegrityFailure("ciphertext length cannot end on a whole segment")
    if segments > MAX_SEGMENTS:
        raise IntegrityFailure("ciphertext length exceeds the segment counter")
    return body - TAG_LENGTH * segments, segments


def derive(dek: bytes, salt: bytes, info: bytes, object_id: uuid.UUID) -> bytes:
    """One key from the data key, bound to this object and to its purpose (``info``)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info + object_id.bytes)
    return hkdf.derive(dek)


def check_dek(dek: bytes) -> None:
    """Refuse a data key of the wrong size before any key is derived from it."""
    if len(dek) != KEY_LENGTH:
        raise ValueError("a data key is exactly 32 bytes")
