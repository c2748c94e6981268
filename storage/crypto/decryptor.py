"""SGRC decryption of any run of segments, with every check that can come first done first."""

from __future__ import annotations

import hmac
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.crypto.format import (
    ALG_AES256_GCM_HKDF_SHA256,
    COMMIT_INFO,
    ENC_INFO,
    HEADER,
    HEADER_LENGTH,
    MAGIC,
    NONCE_TAIL,
    SEGMENT_CIPHERTEXT,
    SEGMENT_LOG2,
    SEGMENT_PLAINTEXT,
    VERSION,
    check_dek,
    derive,
    layout,
)
from storage.errors import IntegrityFailure


class SegmentDecryptor:
    """Decrypts any run of segments of one object, checking everything it can up front.

    ``ciphertext_length`` must be the length recorded when the object was written, not
    the size the object store reports now: segment boundaries and which segment is final
    follow from it, so a store that truncates or extends an object cannot move them.
    """

    __slots__ = ("_aad", "_aead", "_ct_length", "_prefix", "_pt_length", "_segments")

    def __init__(
        self, dek: bytes, object_id: uuid.UUID, header: bytes, ciphertext_length: int
    ) -> None:
        check_dek(dek)
        header = bytes(header)
        if len(header) != HEADER_LENGTH:
            raise IntegrityFailure("object header has the wrong length")
        (magic, version, alg, seg_log2, reserved_a, salt, prefix, reserved_b, commitment) = (
            HEADER.unpack(header)
        )
        if magic != MAGIC:
            raise IntegrityFailure("object header magic is not SGRC")
        if version != VERSION:
            raise IntegrityFailure("unsupported object format version")
        if alg != ALG_AES256_GCM_HKDF_SHA256:
            raise IntegrityFailure("unsupported object algorithm")
        if seg_log2 != SEGMENT_LOG2:
            raise IntegrityFailure("unsupported object segment size")
        if reserved_a != 0 or reserved_b != 0:
            raise IntegrityFailure("object header reserved bytes are not zero")
        expected = derive(dek, salt, COMMIT_INFO, object_id)
        # A matching commitment proves this DEK and object id are the ones it was sealed with.
        if not hmac.compare_digest(expected, commitment):
            raise IntegrityFailure("object key commitment does not match")
        self._pt_length, self._segments = layout(ciphertext_length)
        self._ct_length = ciphertext_length
        self._prefix = prefix
        self._aad = header + object_id.bytes
        self._aead = AESGCM(derive(dek, salt, ENC_INFO, object_id))

    @property
    def plaintext_length(self) -> int:
        """Plaintext size implied by the trusted ciphertext length."""
        return self._pt_length

    @property
    def segment_count(self) -> int:
        """Number of segments, including the final one (which may be empty)."""
        return self._segments

    def ciphertext_span(self, first: int, last: int) -> tuple[int, int]:
        """Return the [start, end) byte offsets that hold segments first..last inclusive."""
        if not 0 <= first <= last < self._segments:
            raise ValueError(f"segments {first}..{last} outside 0..{self._segments - 1}")
        start = HEADER_LENGTH + first * SEGMENT_CIPHERTEXT
        end = min(HEADER_LENGTH + (last + 1) * SEGMENT_CIPHERTEXT, self._ct_length)
        return start, end

    def segments_for(self, start: int, end: int) -> tuple[int, int]:
        """Return the first and last segment index covering plaintext bytes [start, end)."""
        if not 0 <= start < end <= self._pt_length:
            raise ValueError(f"range [{start}, {end}) is empty or outside the plaintext")
        return start // SEGMENT_PLAINTEXT, (end - 1) // SEGMENT_PLAINTEXT

    def decrypt_segments(self, first: int, ciphertext: bytes | bytearray | memoryview) -> bytes:
        """Decrypt whole consecutive segments from ``first``; nothing is returned unless all verify.

        The ciphertext must be exactly the span of those segments, so a store that returns
        a short or overlong read is caught here rather than producing shifted plaintext.
        """
        view = memoryview(ciphertext)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if not 0 <= first < self._segments:
            raise ValueError(f"segment {first} outside 0..{self._segments - 1}")
        available = self._ct_length - (HEADER_LENGTH + first * SEGMENT_CIPHERTEXT)
        count = -(-len(view) // SEGMENT_CIPHERTEXT)
        expected = min(count * SEGMENT_CIPHERTEXT, available)
        if count == 0 or len(view) != expected:
            raise IntegrityFailure("ciphertext does not end on a segment boundary")
        final = self._segments - 1
        out: list[bytes] = []
        offset = 0
        for index in range(first, first + count):
            chunk = view[offset : offset + SEGMENT_CIPHERTEXT]
            offset += SEGMENT_CIPHERTEXT
            nonce = self._prefix + NONCE_TAIL.pack(index, 1 if index == final else 0)
            try:
                out.append(self._aead.decrypt(nonce, chunk, self._aad))
            except InvalidTag:
                raise IntegrityFailure(f"segment {index} failed authentication") from None
        return out[0] if len(out) == 1 else b"".join(out)
