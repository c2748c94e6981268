"""Streaming SGRC encryption: plaintext in, sealed segments out, never a whole recording held."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.crypto.format import (
    ALG_AES256_GCM_HKDF_SHA256,
    COMMIT_INFO,
    ENC_INFO,
    HEADER,
    MAGIC,
    MAX_SEGMENTS,
    NONCE_PREFIX_LENGTH,
    NONCE_TAIL,
    SALT_LENGTH,
    SEGMENT_CIPHERTEXT,
    SEGMENT_LOG2,
    SEGMENT_PLAINTEXT,
    TAG_LENGTH,
    VERSION,
    check_dek,
    derive,
)


class SegmentEncryptor:
    """Encrypts one object as a stream, so ingest never holds a whole recording in memory.

    Only whole segments leave ``update``; the last full segment is held back because
    whether it is final is part of its nonce, and that is unknown until more data
    arrives or ``finalize`` is called. Held-back ``bytes`` are kept by reference (they
    cannot change); data from a mutable buffer is copied into one reused segment-sized
    scratch buffer, since the caller may reuse its buffer as soon as ``update`` returns.
    """

    __slots__ = (
        "_aad",
        "_aead",
        "_done",
        "_fill",
        "_header",
        "_index",
        "_out",
        "_pinned",
        "_placed",
        "_prefix",
        "_scratch",
    )

    def __init__(self, dek: bytes, object_id: uuid.UUID) -> None:
        check_dek(dek)
        salt = os.urandom(SALT_LENGTH)
        self._prefix = os.urandom(NONCE_PREFIX_LENGTH)
        commitment = derive(dek, salt, COMMIT_INFO, object_id)
        self._header = HEADER.pack(
            MAGIC,
            VERSION,
            ALG_AES256_GCM_HKDF_SHA256,
            SEGMENT_LOG2,
            0,
            salt,
            self._prefix,
            0,
            commitment,
        )
        self._aad = self._header + object_id.bytes
        self._aead = AESGCM(derive(dek, salt, ENC_INFO, object_id))
        self._scratch = bytearray(SEGMENT_PLAINTEXT)
        self._out = bytearray()
        self._fill = 0
        self._pinned: memoryview | None = None
        self._index = 0
        self._done = False
        self._placed: set[int] = set()

    @property
    def header(self) -> bytes:
        """The 80 bytes that must precede the segments; they are also every segment's AAD."""
        return self._header

    def _hold(self, view: memoryview) -> None:
        """Keep ``view`` (1..P bytes) back as the start of the next segment."""
        if isinstance(view.obj, bytes):
            self._pinned = view
            self._fill = 0
        else:
            self._scratch[: len(view)] = view
            self._fill = len(view)
            self._pinned = None

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take more plaintext and return the ciphertext of the segments it completed."""
        segments = self.update_segments(data)
        if not segments:
            return b""
        return segments[0] if len(segments) == 1 else b"".join(segments)

    def update_segments(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Like ``update``, but one ``bytes`` per sealed segment (no joining copy)."""
        out: list[bytes] = []
        encrypt, aad = self._aead.encrypt, self._aad

        def seal(nonce: bytes, segment: memoryview | bytearray) -> None:
            out.append(encrypt(nonce, segment, aad))

        self._update(data, seal)
        return out

    def update_view(self, data: bytes | bytearray | memoryview) -> memoryview:
        """Like ``update``, but sealed into a buffer the encryptor reuses.

        The view is valid only until the next call. Ingest writes it to disk at once;
        reusing one buffer instead of allocating fresh memory for every segment is what
        keeps encryption close to the speed of AES-GCM itself.
        """
        most = (len(data) + SEGMENT_PLAINTEXT - 1) // SEGMENT_PLAINTEXT + 1
        if len(self._out) < most * SEGMENT_CIPHERTEXT:
            self._out = bytearray(most * SEGMENT_CIPHERTEXT)
        target = memoryview(self._out)
        encrypt_into, aad = self._aead.encrypt_into, self._aad
        filled = 0

        def seal(nonce: bytes, segment: memoryview | bytearray) -> None:
            nonlocal filled
            end = filled + len(segment) + TAG_LENGTH
            encrypt_into(nonce, segment, aad, target[filled:end])
            filled = end

        self._update(data, seal)
        return target[:filled]

    def _update(
        self,
        data: bytes | bytearray | memoryview,
        seal: Callable[[bytes, memoryview | bytearray], None],
    ) -> None:
        """Hand every segment that ``data`` completes to ``seal``, in order, with its nonce."""
        if self._done:
            raise ValueError("encryptor already finalized")
        if self._placed:
            raise ValueError("update cannot be mixed with seal_at")
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = len(view)
        pinned = self._pinned
        held = self._fill if pinned is None else len(pinned)
        space = SEGMENT_PLAINTEXT - held
        scratch = self._scratch
        if size <= space:
            # Nothing can be sealed yet: even a segment this fills might turn out to be final.
            if not held:
                if size:
                    self._hold(view)
            elif size:
                if pinned is not None:
                    scratch[:held] = pinned
                    self._pinned = None
                scratch[held : held + size] = view
                self._fill = held + size
            return
        # Data follows the held-back segment once it is full, so that segment is not final.
        offset = space if held else 0
        whole = (size - offset - 1) // SEGMENT_PLAINTEXT
        index = self._index
        if index + whole + (1 if held else 0) >= MAX_SEGMENTS:
            raise ValueError("object too large for the segment counter")
        prefix, pack = self._prefix, NONCE_TAIL.pack
        if held:
            segment: memoryview | bytearray
            if pinned is not None and not space:
                segment = pinned
            else:
                if pinned is not None:
                    scratch[:held] = pinned
                scratch[held:] = view[:space]
                segment = scratch
            seal(prefix + pack(index, 0), segment)
            index += 1
        # Sealed straight from the caller's memory: only the 1..P bytes kept back are
        # ever copied, and only when the caller's buffer is mutable. The scratch buffer
        # is sealed above before _hold below may refill it.
        for _ in range(whole):
            seal(prefix + pack(index, 0), view[offset : offset + SEGMENT_PLAINTEXT])
            index += 1
            offset += SEGMENT_PLAINTEXT
        self._index = index
        self._hold(view[offset:])

    def seal_at(self, index: int, plaintext: bytes | bytearray, *, final: bool) -> bytes:
        """Seal one whole segment at ``index``, for writers that place segments themselves.

        A muxer that patches its header after writing the rest needs segment 0 sealed
        last; this makes that possible without ``update``. Each index may be sealed once
        (a GCM nonce must never seal two plaintexts), and the two ways of encrypting one
        object cannot be mixed.
        """
        if self._index or self._fill or self._pinned is not None or self._done:
            raise ValueError("seal_at cannot be mixed with update or finalize")
        if index in self._placed or not 0 <= index < MAX_SEGMENTS:
            raise ValueError(f"segment {index} is already sealed or out of range")
        if len(plaintext) > SEGMENT_PLAINTEXT or (
            not final and len(plaintext) != SEGMENT_PLAINTEXT
        ):
            raise ValueError("only the final segment may be shorter than a whole segment")
        self._placed.add(index)
        nonce = self._prefix + NONCE_TAIL.pack(index, 1 if final else 0)
        return self._aead.encrypt(nonce, bytes(plaintext), self._aad)

    def finalize(self) -> bytes:
        """Seal the held-back data as the final segment; the encryptor is spent afterwards."""
        if self._done or self._placed:
            raise ValueError("encryptor already finalized, or used through seal_at")
        self._done = True
        pinned = self._pinned
        final = pinned if pinned is not None else memoryview(self._scratch)[: self._fill]
        nonce = self._prefix + NONCE_TAIL.pack(self._index, 1)
        self._index += 1
        sealed = self._aead.encrypt(nonce, final, self._aad)
        final.release()
        self._pinned = None
        self._scratch = bytearray()
        self._fill = 0
        return sealed
