"""The SGRC v1 segmented encryption format for stored recordings; not key storage or wrapping."""

from __future__ import annotations

import hmac
import io
import os
import struct
import uuid
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import IntegrityFailure

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrOrBytesPath, WriteableBuffer

__all__ = [
    "HEADER_LENGTH",
    "SEGMENT_CIPHERTEXT",
    "SEGMENT_PLAINTEXT",
    "TAG_LENGTH",
    "EncryptedFileReader",
    "SegmentDecryptor",
    "SegmentEncryptor",
    "ciphertext_length",
    "new_data_key",
    "plaintext_length",
]

HEADER_LENGTH: Final = 80
TAG_LENGTH: Final = 16
_SEGMENT_LOG2: Final = 16
SEGMENT_PLAINTEXT: Final = 1 << _SEGMENT_LOG2
SEGMENT_CIPHERTEXT: Final = SEGMENT_PLAINTEXT + TAG_LENGTH

_MAGIC: Final = b"SGRC"
_VERSION: Final = 0x01
_ALG_AES256_GCM_HKDF_SHA256: Final = 0x01
_KEY_LENGTH: Final = 32
_SALT_LENGTH: Final = 32
_NONCE_PREFIX_LENGTH: Final = 7
# The nonce carries the segment index as a uint32, so this bounds an object at 256 TiB.
_MAX_SEGMENTS: Final = 1 << 32

_COMMIT_INFO: Final = b"sgrc/v1 commit\0"
_ENC_INFO: Final = b"sgrc/v1 enc\0"

# magic, version, alg, seg_log2, reserved, salt, nonce prefix, reserved, commitment
_HEADER: Final = struct.Struct(">4sBBBB32s7sB32s")
assert _HEADER.size == HEADER_LENGTH
_NONCE_TAIL: Final = struct.Struct(">IB")


def new_data_key() -> bytes:
    """Return a fresh data-encryption key; every object gets its own and none is ever reused."""
    return os.urandom(_KEY_LENGTH)


def ciphertext_length(plaintext_length: int) -> int:
    """Return the stored size of an object, so callers can record and check it up front."""
    if plaintext_length < 0:
        raise ValueError("plaintext length cannot be negative")
    # Empty plaintext still gets one (empty) final segment so that truncation stays detectable.
    segments = max(1, -(-plaintext_length // SEGMENT_PLAINTEXT))
    return HEADER_LENGTH + plaintext_length + TAG_LENGTH * segments


def plaintext_length(ciphertext_length: int) -> int:
    """Return the plaintext size behind a stored size, refusing sizes the encoder never makes."""
    return _layout(ciphertext_length)[0]


def _layout(ciphertext_length: int) -> tuple[int, int]:
    """Return (plaintext length, segment count) or raise if no encoder output has this size."""
    body = ciphertext_length - HEADER_LENGTH
    if body < TAG_LENGTH:
        raise IntegrityFailure("ciphertext too short to hold a header and one segment")
    segments = -(-body // SEGMENT_CIPHERTEXT)
    final = body - (segments - 1) * SEGMENT_CIPHERTEXT
    # The final segment holds 1..P plaintext bytes, or 0 only when it is the only segment.
    if final < TAG_LENGTH or (final == TAG_LENGTH and segments > 1):
        raise IntegrityFailure("ciphertext length cannot end on a whole segment")
    if segments > _MAX_SEGMENTS:
        raise IntegrityFailure("ciphertext length exceeds the segment counter")
    return body - TAG_LENGTH * segments, segments


def _derive(dek: bytes, salt: bytes, info: bytes, object_id: uuid.UUID) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info + object_id.bytes)
    return hkdf.derive(dek)


def _check_dek(dek: bytes) -> None:
    if len(dek) != _KEY_LENGTH:
        raise ValueError("a data key is exactly 32 bytes")


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
        _check_dek(dek)
        salt = os.urandom(_SALT_LENGTH)
        self._prefix = os.urandom(_NONCE_PREFIX_LENGTH)
        commitment = _derive(dek, salt, _COMMIT_INFO, object_id)
        self._header = _HEADER.pack(
            _MAGIC,
            _VERSION,
            _ALG_AES256_GCM_HKDF_SHA256,
            _SEGMENT_LOG2,
            0,
            salt,
            self._prefix,
            0,
            commitment,
        )
        self._aad = self._header + object_id.bytes
        self._aead = AESGCM(_derive(dek, salt, _ENC_INFO, object_id))
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
        if index + whole + (1 if held else 0) >= _MAX_SEGMENTS:
            raise ValueError("object too large for the segment counter")
        prefix, pack = self._prefix, _NONCE_TAIL.pack
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
        if index in self._placed or not 0 <= index < _MAX_SEGMENTS:
            raise ValueError(f"segment {index} is already sealed or out of range")
        if len(plaintext) > SEGMENT_PLAINTEXT or (
            not final and len(plaintext) != SEGMENT_PLAINTEXT
        ):
            raise ValueError("only the final segment may be shorter than a whole segment")
        self._placed.add(index)
        nonce = self._prefix + _NONCE_TAIL.pack(index, 1 if final else 0)
        return self._aead.encrypt(nonce, bytes(plaintext), self._aad)

    def finalize(self) -> bytes:
        """Seal the held-back data as the final segment; the encryptor is spent afterwards."""
        if self._done or self._placed:
            raise ValueError("encryptor already finalized, or used through seal_at")
        self._done = True
        pinned = self._pinned
        final = pinned if pinned is not None else memoryview(self._scratch)[: self._fill]
        nonce = self._prefix + _NONCE_TAIL.pack(self._index, 1)
        self._index += 1
        sealed = self._aead.encrypt(nonce, final, self._aad)
        final.release()
        self._pinned = None
        self._scratch = bytearray()
        self._fill = 0
        return sealed


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
        _check_dek(dek)
        header = bytes(header)
        if len(header) != HEADER_LENGTH:
            raise IntegrityFailure("object header has the wrong length")
        (magic, version, alg, seg_log2, reserved_a, salt, prefix, reserved_b, commitment) = (
            _HEADER.unpack(header)
        )
        if magic != _MAGIC:
            raise IntegrityFailure("object header magic is not SGRC")
        if version != _VERSION:
            raise IntegrityFailure("unsupported object format version")
        if alg != _ALG_AES256_GCM_HKDF_SHA256:
            raise IntegrityFailure("unsupported object algorithm")
        if seg_log2 != _SEGMENT_LOG2:
            raise IntegrityFailure("unsupported object segment size")
        if reserved_a != 0 or reserved_b != 0:
            raise IntegrityFailure("object header reserved bytes are not zero")
        expected = _derive(dek, salt, _COMMIT_INFO, object_id)
        # A matching commitment proves this DEK and object id are the ones it was sealed with.
        if not hmac.compare_digest(expected, commitment):
            raise IntegrityFailure("object key commitment does not match")
        self._pt_length, self._segments = _layout(ciphertext_length)
        self._ct_length = ciphertext_length
        self._prefix = prefix
        self._aad = header + object_id.bytes
        self._aead = AESGCM(_derive(dek, salt, _ENC_INFO, object_id))

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
            nonce = self._prefix + _NONCE_TAIL.pack(index, 1 if index == final else 0)
            try:
                out.append(self._aead.decrypt(nonce, chunk, self._aad))
            except InvalidTag:
                raise IntegrityFailure(f"segment {index} failed authentication") from None
        return out[0] if len(out) == 1 else b"".join(out)

    def plaintext_range(self, start: int, end: int, fetch: Callable[[int, int], bytes]) -> bytes:
        """Return plaintext [start, end), fetching only the segments that cover it."""
        if not 0 <= start <= end <= self._pt_length:
            raise ValueError(f"range [{start}, {end}) outside 0..{self._pt_length}")
        if start == end:
            return b""
        first, last = self.segments_for(start, end)
        plain = self.decrypt_segments(first, self._fetch(fetch, first, last))
        base = first * SEGMENT_PLAINTEXT
        if start == base and end - base == len(plain):
            return plain
        return plain[start - base : end - base]

    def check_final_segment(self, fetch: Callable[[int, int], bytes]) -> None:
        """Verify the final segment, which is how truncation is caught before serving a byte.

        A truncated object still serves its early ranges correctly, so this check, not
        the reads themselves, is what stops a cut-short recording from going out.
        """
        final = self._segments - 1
        self.decrypt_segments(final, self._fetch(fetch, final, final))

    def _fetch(self, fetch: Callable[[int, int], bytes], first: int, last: int) -> bytes:
        start, end = self.ciphertext_span(first, last)
        data = fetch(start, end)
        # A store that ignores the range end is misbehaving; refuse it even if the
        # extra bytes happen to be genuine segments.
        if len(data) != end - start:
            raise IntegrityFailure("object store returned a read of the wrong length")
        return data


class EncryptedFileReader(io.RawIOBase):
    """A seekable read-only plaintext view of a local SGRC file, for code that wants a file.

    The header, the file size against the trusted length and the final segment are all
    checked on open, so a damaged file fails before any caller sees a byte of it.
    """

    def __init__(
        self,
        source: StrOrBytesPath | IO[bytes],
        dek: bytes,
        object_id: uuid.UUID,
        ciphertext_length: int,
    ) -> None:
        super().__init__()
        self._position = 0
        self._cache_index = -1
        self._cache = b""
        self._owns_file = False
        self._file: IO[bytes] | None = None
        try:
            if isinstance(source, str | bytes | os.PathLike):
                self._file = open(source, "rb", buffering=0)  # noqa: SIM115 - closed by close()
                self._owns_file = True
            else:
                self._file = source
            actual = self._file.seek(0, io.SEEK_END)
            # Any other size means this is not the file that was written. Checking it here
            # is what catches bytes appended past the end, which reads would never touch.
            if actual != ciphertext_length:
                raise IntegrityFailure("file size differs from the recorded ciphertext length")
            self._decryptor = SegmentDecryptor(
                dek, object_id, self._fetch(0, HEADER_LENGTH), ciphertext_length
            )
            # The final-segment check, done by hand so its plaintext can seed the cache.
            self._segment(self._decryptor.segment_count - 1)
        except BaseException:
            self.close()
            raise

    def _fetch(self, start: int, end: int) -> bytes:
        if self._file is None:
            raise ValueError("I/O operation on closed file")
        self._file.seek(start)
        wanted = end - start
        chunks: list[bytes] = []
        while wanted > 0:
            chunk = self._file.read(wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def _segment(self, index: int) -> bytes:
        if index != self._cache_index:
            span = self._decryptor.ciphertext_span(index, index)
            self._cache = self._decryptor.decrypt_segments(index, self._fetch(*span))
            self._cache_index = index
        return self._cache

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    @property
    def plaintext_length(self) -> int:
        """Size of the plaintext, as a file's size would be."""
        return self._decryptor.plaintext_length

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        self._check_open()
        return False

    def tell(self) -> int:
        self._check_open()
        return self._position

    def write(self, data: ReadableBuffer, /) -> int:
        raise io.UnsupportedOperation("encrypted objects are read-only")

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        """Move like ``io.BytesIO``: past the end is allowed, before the start is not."""
        self._check_open()
        if whence == io.SEEK_SET:
            if offset < 0:
                raise ValueError(f"negative seek value {offset}")
            target = offset
        elif whence == io.SEEK_CUR:
            target = max(0, self._position + offset)
        elif whence == io.SEEK_END:
            target = max(0, self._decryptor.plaintext_length + offset)
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        self._position = target
        return target

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Fill ``buffer`` as far as the plaintext allows, crossing segments as needed."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        size = self._decryptor.plaintext_length
        written = 0
        while written < len(view) and self._position < size:
            index, skip = divmod(self._position, SEGMENT_PLAINTEXT)
            segment = self._segment(index)
            take = min(len(segment) - skip, len(view) - written)
            view[written : written + take] = memoryview(segment)[skip : skip + take]
            written += take
            self._position += take
        return written

    def readall(self) -> bytes:
        self._check_open()
        remaining = max(0, self._decryptor.plaintext_length - self._position)
        out = bytearray(remaining)
        self.readinto(out)
        return bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._cache = b""
            if self._owns_file and self._file is not None:
                self._file.close()
            self._file = None
        super().close()
