"""Tests of the SGRC v1 object format: round trips, range reads and every kind of tampering."""

from __future__ import annotations

import array
import io
import itertools
import random
import uuid
import wave
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.crypto.decryptor import SegmentDecryptor
from storage.crypto.encryptor import SegmentEncryptor
from storage.crypto.file_reader import EncryptedFileReader
from storage.crypto.format import (
    HEADER_LENGTH,
    SEGMENT_CIPHERTEXT,
    SEGMENT_PLAINTEXT,
    TAG_LENGTH,
    ciphertext_length,
    new_data_key,
    plaintext_length,
)
from storage.crypto.verified_reader import StoredCiphertext, VerifiedObject
from storage.errors import IntegrityFailure

P = SEGMENT_PLAINTEXT
C = SEGMENT_CIPHERTEXT
Read = Callable[[int, int], bytes]


def _plaintext(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _encrypt(
    plaintext: bytes, dek: bytes, object_id: uuid.UUID, cuts: list[int] | None = None
) -> bytes:
    """Encrypt in one update, or in pieces split at ``cuts`` (sorted offsets)."""
    encryptor = SegmentEncryptor(dek, object_id)
    parts = [encryptor.header]
    bounds = [0, *(cuts or []), len(plaintext)]
    for start, end in itertools.pairwise(bounds):
        parts.append(encryptor.update(plaintext[start:end]))
    parts.append(encryptor.finalize())
    return b"".join(parts)


class _OneObject:
    """An object store holding one object, optionally logging the spans read from it."""

    def __init__(
        self, blob: bytes, log: list[tuple[int, int]] | None = None, read: Read | None = None
    ) -> None:
        self._blob = blob
        self._log = log
        self._read = read

    async def size(self, key: str) -> int:
        return len(self._blob)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        if self._log is not None:
            self._log.append((start, end))
        return self._read(start, end) if self._read is not None else self._blob[start:end]


def _open(blob: bytes, dek: bytes, object_id: uuid.UUID, length: int) -> SegmentDecryptor:
    return SegmentDecryptor(dek, object_id, blob[:HEADER_LENGTH], length)


async def _opened(
    blob: bytes,
    dek: bytes,
    object_id: uuid.UUID,
    length: int,
    *,
    log: list[tuple[int, int]] | None = None,
    read: Read | None = None,
) -> VerifiedObject:
    """The stored-object reader over ``blob``, trusting ``length`` as the recorded size."""
    return await StoredCiphertext(_OneObject(blob, log, read), "object", object_id, length).open(
        dek
    )


async def _check_final(blob: bytes, dek: bytes, object_id: uuid.UUID, length: int) -> None:
    """Open ``blob`` and check its final segment, as playback does before serving it."""
    await (await _opened(blob, dek, object_id, length)).check_final_segment()


async def _read_all(blob: bytes, dek: bytes, object_id: uuid.UUID, length: int) -> bytes:
    """Decode the way a server must: header, commitment and final segment before any byte."""
    opened = await _opened(blob, dek, object_id, length)
    await opened.check_final_segment()
    return await opened.read(0, opened.plaintext_length)


def _flip(blob: bytes, offset: int, mask: int = 0x01) -> bytes:
    changed = bytearray(blob)
    changed[offset] ^= mask
    return bytes(changed)


def _segment(blob: bytes, index: int) -> bytes:
    start = HEADER_LENGTH + index * C
    return blob[start : start + C]


DEK = new_data_key()
OBJECT_ID = uuid.UUID("0b5e4c1d-7a7e-4c53-9d0e-3f5a8a0c2b11")
THREE_AND_A_BIT = _plaintext(3 * P + 7, seed=1)
THREE_AND_A_BIT_CT = _encrypt(THREE_AND_A_BIT, DEK, OBJECT_ID)

SIZES = [0, 1, P - 1, P, P + 1, 3 * P, 3 * P + 7]


@pytest.mark.parametrize("size", SIZES)
async def test_plaintext_of_any_size_round_trips(size: int) -> None:
    plaintext = _plaintext(size, seed=size)
    blob = _encrypt(plaintext, DEK, OBJECT_ID)

    assert len(blob) == ciphertext_length(size)
    assert plaintext_length(len(blob)) == size
    assert await _read_all(blob, DEK, OBJECT_ID, len(blob)) == plaintext


@pytest.mark.parametrize(
    ("size", "segments"),
    [(0, 1), (1, 1), (P - 1, 1), (P, 1), (P + 1, 2), (3 * P, 3), (3 * P + 7, 4)],
)
def test_segment_count_follows_from_the_length_alone(size: int, segments: int) -> None:
    length = ciphertext_length(size)

    decryptor = SegmentDecryptor(DEK, OBJECT_ID, SegmentEncryptor(DEK, OBJECT_ID).header, length)

    assert decryptor.segment_count == segments
    assert decryptor.plaintext_length == size
    assert length == HEADER_LENGTH + size + TAG_LENGTH * segments


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=300_000),
    seed=st.integers(min_value=0, max_value=2**32),
    data=st.data(),
)
async def test_any_chunking_of_updates_decrypts_to_the_same_plaintext(
    size: int, seed: int, data: st.DataObject
) -> None:
    plaintext = _plaintext(size, seed)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=size), max_size=12)))

    blob = _encrypt(plaintext, DEK, OBJECT_ID, cuts)

    assert len(blob) == ciphertext_length(size)
    assert await _read_all(blob, DEK, OBJECT_ID, len(blob)) == plaintext


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=300_000),
    seed=st.integers(min_value=0, max_value=2**32),
    data=st.data(),
)
async def test_every_update_form_decrypts_to_the_same_plaintext(
    size: int, seed: int, data: st.DataObject
) -> None:
    plaintext = _plaintext(size, seed)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=size), max_size=12)))
    pieces = [plaintext[a:b] for a, b in itertools.pairwise([0, *cuts, size])]
    for form in ("update", "update_segments", "update_view"):
        encryptor = SegmentEncryptor(DEK, OBJECT_ID)
        sealed = [encryptor.header]
        for piece in pieces:
            result = getattr(encryptor, form)(piece)
            # A view must be copied out before the next call reuses its buffer.
            sealed.append(b"".join(result) if isinstance(result, list) else bytes(result))
        sealed.append(encryptor.finalize())
        blob = b"".join(sealed)
        assert len(blob) == ciphertext_length(size), form
        assert await _read_all(blob, DEK, OBJECT_ID, len(blob)) == plaintext, form


def test_update_view_reuses_its_buffer_between_calls() -> None:
    encryptor = SegmentEncryptor(DEK, OBJECT_ID)
    first = encryptor.update_view(bytes(3 * SEGMENT_PLAINTEXT))
    copy = bytes(first)
    encryptor.update_view(b"\x01" * (3 * SEGMENT_PLAINTEXT))
    # The earlier view now shows the newer ciphertext: callers must write it out at once.
    assert bytes(first) != copy


def test_update_holds_back_a_full_segment_until_more_data_arrives() -> None:
    encryptor = SegmentEncryptor(DEK, OBJECT_ID)

    assert encryptor.update(b"") == b""
    assert encryptor.update(bytes(P)) == b""
    assert len(encryptor.update(b"x")) == C
    assert len(encryptor.finalize()) == 1 + TAG_LENGTH


async def test_mutating_a_buffer_after_update_does_not_change_what_is_encrypted() -> None:
    """Callers reuse read buffers; the held-back tail must be a copy, not a reference."""
    plaintext = _plaintext(P + 100, seed=7)
    buffer = bytearray(plaintext)
    encryptor = SegmentEncryptor(DEK, OBJECT_ID)
    parts = [encryptor.header, encryptor.update(buffer)]
    buffer[:] = bytes(len(buffer))
    parts.append(encryptor.finalize())
    blob = b"".join(parts)

    assert await _read_all(blob, DEK, OBJECT_ID, len(blob)) == plaintext


async def test_update_accepts_memoryviews_of_any_item_size_as_raw_bytes() -> None:
    words = array.array("H", range(40_000))
    encryptor = SegmentEncryptor(DEK, OBJECT_ID)
    blob = encryptor.header + encryptor.update(memoryview(words)) + encryptor.finalize()

    assert await _read_all(blob, DEK, OBJECT_ID, len(blob)) == words.tobytes()


def test_encryptor_refuses_use_after_finalize() -> None:
    encryptor = SegmentEncryptor(DEK, OBJECT_ID)
    encryptor.finalize()

    with pytest.raises(ValueError, match="finalized"):
        encryptor.update(b"more")
    with pytest.raises(ValueError, match="finalized"):
        encryptor.finalize()


def test_every_object_gets_a_fresh_salt_and_nonce_prefix() -> None:
    first = SegmentEncryptor(DEK, OBJECT_ID).header
    second = SegmentEncryptor(DEK, OBJECT_ID).header

    assert first[:8] == second[:8] == b"SGRC\x01\x01\x10\x00"
    assert first[8:40] != second[8:40]
    assert first[40:47] != second[40:47]
    assert first[47] == second[47] == 0


def test_data_keys_are_32_random_bytes() -> None:
    assert len(new_data_key()) == 32
    assert new_data_key() != new_data_key()


def test_a_data_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SegmentEncryptor(DEK[:16], OBJECT_ID)


@pytest.mark.parametrize(
    "length",
    [
        0,
        HEADER_LENGTH,
        HEADER_LENGTH + TAG_LENGTH - 1,
        HEADER_LENGTH + C + 1,
        HEADER_LENGTH + C + TAG_LENGTH,
        HEADER_LENGTH + 2 * C + 5,
    ],
)
def test_impossible_ciphertext_lengths_are_rejected(length: int) -> None:
    with pytest.raises(IntegrityFailure):
        plaintext_length(length)


def test_negative_plaintext_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        ciphertext_length(-1)


def test_segment_and_span_mapping_matches_the_layout() -> None:
    decryptor = _open(THREE_AND_A_BIT_CT, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT))

    assert decryptor.segments_for(0, 1) == (0, 0)
    assert decryptor.segments_for(P - 1, P + 1) == (0, 1)
    assert decryptor.segments_for(P, 2 * P) == (1, 1)
    assert decryptor.segments_for(3 * P, 3 * P + 7) == (3, 3)
    assert decryptor.ciphertext_span(0, 0) == (HEADER_LENGTH, HEADER_LENGTH + C)
    assert decryptor.ciphertext_span(1, 2) == (HEADER_LENGTH + C, HEADER_LENGTH + 3 * C)
    assert decryptor.ciphertext_span(3, 3) == (HEADER_LENGTH + 3 * C, len(THREE_AND_A_BIT_CT))
    with pytest.raises(ValueError, match="outside"):
        decryptor.ciphertext_span(2, 4)
    with pytest.raises(ValueError, match="outside"):
        decryptor.segments_for(0, 3 * P + 8)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
async def test_any_range_decrypts_correctly_reading_only_its_segments(data: st.DataObject) -> None:
    size = len(THREE_AND_A_BIT)
    start = data.draw(st.integers(min_value=0, max_value=size), label="start")
    end = data.draw(st.integers(min_value=start, max_value=size), label="end")
    log: list[tuple[int, int]] = []
    opened = await _opened(THREE_AND_A_BIT_CT, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT), log=log)
    del log[:]  # the header read

    got = await opened.read(start, end)

    assert got == THREE_AND_A_BIT[start:end]
    if start == end:
        assert log == []
    else:
        first, last = start // P, (end - 1) // P
        span_end = min(HEADER_LENGTH + (last + 1) * C, len(THREE_AND_A_BIT_CT))
        assert log == [(HEADER_LENGTH + first * C, span_end)]


async def test_final_segment_check_reads_only_the_final_segment() -> None:
    log: list[tuple[int, int]] = []
    opened = await _opened(THREE_AND_A_BIT_CT, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT), log=log)
    del log[:]  # the header read

    await opened.check_final_segment()

    assert log == [(HEADER_LENGTH + 3 * C, len(THREE_AND_A_BIT_CT))]


# --- tampering -------------------------------------------------------------------------


async def test_truncation_at_a_segment_boundary_is_caught_by_the_final_segment_check() -> None:
    """The first segments are intact, so an early range still reads; only the check catches it."""
    truncated = THREE_AND_A_BIT_CT[: HEADER_LENGTH + 2 * C]
    opened = await _opened(truncated, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT))

    assert await opened.read(0, 10) == THREE_AND_A_BIT[:10]
    with pytest.raises(IntegrityFailure):
        await opened.check_final_segment()


async def test_truncation_at_a_segment_boundary_fails_even_with_the_store_reported_length() -> None:
    """The last flag in the nonce: a former middle segment cannot pass as the final one."""
    truncated = THREE_AND_A_BIT_CT[: HEADER_LENGTH + 2 * C]

    with pytest.raises(IntegrityFailure):
        await _read_all(truncated, DEK, OBJECT_ID, len(truncated))


def test_truncated_object_is_rejected_by_the_file_reader_before_any_byte(tmp_path: Path) -> None:
    path = tmp_path / "object"
    path.write_bytes(THREE_AND_A_BIT_CT[: HEADER_LENGTH + 2 * C])

    with pytest.raises(IntegrityFailure):
        EncryptedFileReader(path, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT))


def test_file_reader_checks_the_final_segment_on_open(tmp_path: Path) -> None:
    """Same size as recorded, early bytes intact: only the final-segment check can object."""
    path = tmp_path / "object"
    path.write_bytes(_flip(THREE_AND_A_BIT_CT, len(THREE_AND_A_BIT_CT) - 1))

    with pytest.raises(IntegrityFailure, match="segment 3"):
        EncryptedFileReader(path, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT))


async def test_truncation_mid_segment_is_rejected() -> None:
    truncated = THREE_AND_A_BIT_CT[: HEADER_LENGTH + C + 100]
    opened = await _opened(truncated, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT))

    with pytest.raises(IntegrityFailure):
        await opened.check_final_segment()
    with pytest.raises(IntegrityFailure):
        await opened.read(P, P + 10)
    with pytest.raises(IntegrityFailure):
        await _read_all(truncated, DEK, OBJECT_ID, len(truncated))


async def test_reordered_segments_are_rejected() -> None:
    blob = THREE_AND_A_BIT_CT
    swapped = (
        blob[:HEADER_LENGTH] + _segment(blob, 1) + _segment(blob, 0) + blob[HEADER_LENGTH + 2 * C :]
    )
    opened = await _opened(swapped, DEK, OBJECT_ID, len(swapped))

    with pytest.raises(IntegrityFailure):
        await opened.read(0, 10)
    with pytest.raises(IntegrityFailure):
        await opened.read(P, P + 10)


def _splice(donor: bytes, index: int) -> bytes:
    start = HEADER_LENGTH + index * C
    return THREE_AND_A_BIT_CT[:start] + _segment(donor, index) + THREE_AND_A_BIT_CT[start + C :]


async def test_a_segment_spliced_from_another_object_under_the_same_key_is_rejected() -> None:
    donor = _encrypt(THREE_AND_A_BIT, DEK, uuid.uuid4())
    spliced = _splice(donor, 1)
    opened = await _opened(spliced, DEK, OBJECT_ID, len(spliced))

    assert await opened.read(0, 10) == THREE_AND_A_BIT[:10]
    with pytest.raises(IntegrityFailure):
        await opened.read(P, P + 10)


async def test_a_segment_spliced_from_another_object_under_another_key_is_rejected() -> None:
    donor = _encrypt(THREE_AND_A_BIT, new_data_key(), OBJECT_ID)
    spliced = _splice(donor, 1)
    opened = await _opened(spliced, DEK, OBJECT_ID, len(spliced))

    with pytest.raises(IntegrityFailure):
        await opened.read(P, P + 10)


HEADER_FIELDS = {
    "magic": 0,
    "version": 4,
    "alg": 5,
    "seg_log2": 6,
    "reserved-7": 7,
    "salt": 8,
    "salt-end": 39,
    "nonce-prefix": 40,
    "nonce-prefix-end": 46,
    "reserved-47": 47,
    "commitment": 48,
    "commitment-end": 79,
}


@pytest.mark.parametrize("offset", HEADER_FIELDS.values(), ids=HEADER_FIELDS.keys())
async def test_a_bit_flip_in_any_header_field_is_rejected(offset: int) -> None:
    flipped = _flip(THREE_AND_A_BIT_CT, offset)

    with pytest.raises(IntegrityFailure):
        await _read_all(flipped, DEK, OBJECT_ID, len(flipped))


@pytest.mark.parametrize(
    "offset",
    [offset for name, offset in HEADER_FIELDS.items() if not name.startswith("nonce")],
    ids=[name for name in HEADER_FIELDS if not name.startswith("nonce")],
)
def test_header_fields_other_than_the_nonce_prefix_fail_before_any_fetch(offset: int) -> None:
    """Parsing and the commitment catch these; the nonce prefix is left to the AEAD."""
    flipped = _flip(THREE_AND_A_BIT_CT, offset)

    with pytest.raises(IntegrityFailure):
        _open(flipped, DEK, OBJECT_ID, len(flipped))


async def test_a_bit_flip_anywhere_in_the_header_is_rejected_before_any_segment_is_read() -> None:
    """The nonce prefix is not in the commitment, but it is in every segment's AAD and nonce."""
    for offset in range(HEADER_LENGTH):
        flipped = _flip(THREE_AND_A_BIT_CT, offset, 0x80)
        with pytest.raises(IntegrityFailure):
            await _check_final(flipped, DEK, OBJECT_ID, len(flipped))


def test_header_problems_are_reported_without_key_material() -> None:
    flipped = _flip(THREE_AND_A_BIT_CT, 60)

    with pytest.raises(IntegrityFailure) as caught:
        _open(flipped, DEK, OBJECT_ID, len(flipped))

    message = str(caught.value)
    assert "commitment" in message
    assert DEK.hex() not in message
    assert flipped[48:80].hex() not in message


def test_a_header_of_the_wrong_length_is_rejected() -> None:
    with pytest.raises(IntegrityFailure, match="header"):
        SegmentDecryptor(DEK, OBJECT_ID, THREE_AND_A_BIT_CT[:79], len(THREE_AND_A_BIT_CT))


async def test_a_bit_flip_in_a_segment_body_is_rejected() -> None:
    flipped = _flip(THREE_AND_A_BIT_CT, HEADER_LENGTH + C + 1000)
    opened = await _opened(flipped, DEK, OBJECT_ID, len(flipped))

    assert await opened.read(0, P) == THREE_AND_A_BIT[:P]
    with pytest.raises(IntegrityFailure, match="segment 1"):
        await opened.read(P, 2 * P)


async def test_a_bit_flip_in_a_tag_is_rejected() -> None:
    flipped = _flip(THREE_AND_A_BIT_CT, HEADER_LENGTH + C - 1)
    opened = await _opened(flipped, DEK, OBJECT_ID, len(flipped))

    with pytest.raises(IntegrityFailure, match="segment 0"):
        await opened.read(0, 1)


async def test_no_plaintext_is_returned_when_a_later_segment_in_the_range_fails() -> None:
    flipped = _flip(THREE_AND_A_BIT_CT, HEADER_LENGTH + 2 * C + 5)
    opened = await _opened(flipped, DEK, OBJECT_ID, len(flipped))

    with pytest.raises(IntegrityFailure, match="segment 2"):
        await opened.read(0, 3 * P)


def test_a_wrong_data_key_is_rejected_by_the_commitment() -> None:
    with pytest.raises(IntegrityFailure, match="commitment"):
        _open(THREE_AND_A_BIT_CT, new_data_key(), OBJECT_ID, len(THREE_AND_A_BIT_CT))


def test_a_wrong_object_id_is_rejected_by_the_commitment() -> None:
    with pytest.raises(IntegrityFailure, match="commitment"):
        _open(THREE_AND_A_BIT_CT, DEK, uuid.uuid4(), len(THREE_AND_A_BIT_CT))


async def test_a_store_read_longer_than_the_requested_span_is_refused() -> None:
    """Even when the extra bytes are genuine segments: a store ignoring ranges is broken."""

    def overlong(start: int, end: int) -> bytes:
        # Honest for the header, so it is the segment read that is refused.
        return THREE_AND_A_BIT_CT[start : end + (C if start else 0)]

    opened = await _opened(
        THREE_AND_A_BIT_CT, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT), read=overlong
    )
    with pytest.raises(IntegrityFailure, match="wrong length"):
        await opened.read(0, 10)


def test_ciphertext_that_is_not_whole_segments_is_reported_as_such() -> None:
    """A short read should read as a length problem to whoever gets paged, not a forgery."""
    decryptor = _open(THREE_AND_A_BIT_CT, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT))

    with pytest.raises(IntegrityFailure, match="segment boundary"):
        decryptor.decrypt_segments(0, _segment(THREE_AND_A_BIT_CT, 0)[:-1])
    with pytest.raises(IntegrityFailure, match="segment boundary"):
        decryptor.decrypt_segments(3, THREE_AND_A_BIT_CT[HEADER_LENGTH + 3 * C :] + b"extra")
    with pytest.raises(IntegrityFailure, match="segment boundary"):
        decryptor.decrypt_segments(1, b"")


def test_segments_decrypted_under_the_wrong_index_are_rejected() -> None:
    decryptor = _open(THREE_AND_A_BIT_CT, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT))

    with pytest.raises(IntegrityFailure):
        decryptor.decrypt_segments(0, _segment(THREE_AND_A_BIT_CT, 1))


async def test_appended_garbage_is_rejected(tmp_path: Path) -> None:
    """Garbage past the trusted length is never read, so the reads cannot notice it.

    What catches it: the file reader compares the file size with the trusted length;
    a store read that returns more than the span asked for is refused; and a decoder
    that believed the store-reported length would look for the final segment in the
    garbage and fail there.
    """
    garbage = THREE_AND_A_BIT_CT + _segment(THREE_AND_A_BIT_CT, 0)
    trusted = len(THREE_AND_A_BIT_CT)
    path = tmp_path / "object"
    path.write_bytes(garbage)

    with pytest.raises(IntegrityFailure, match="size"):
        EncryptedFileReader(path, DEK, OBJECT_ID, trusted)

    def to_the_end(start: int, end: int) -> bytes:
        # Honest for the header, so it is the final segment's read that is refused.
        return garbage[start:] if start else garbage[:end]

    opened = await _opened(garbage, DEK, OBJECT_ID, trusted, read=to_the_end)
    with pytest.raises(IntegrityFailure, match="wrong length"):
        await opened.check_final_segment()

    with pytest.raises(IntegrityFailure):
        await _read_all(garbage, DEK, OBJECT_ID, len(garbage))


# --- EncryptedFileReader ------------------------------------------------------------------

_OPS = st.one_of(
    st.tuples(st.just("read"), st.integers(min_value=-1, max_value=3 * P)),
    st.tuples(st.just("readinto"), st.integers(min_value=0, max_value=2 * P)),
    st.tuples(st.just("seek_set"), st.integers(min_value=0, max_value=4 * P + 100)),
    st.tuples(st.just("seek_cur"), st.integers(min_value=-2 * P, max_value=2 * P)),
    st.tuples(st.just("seek_end"), st.integers(min_value=-4 * P, max_value=100)),
    st.tuples(st.just("tell"), st.just(0)),
)


def _apply(handle: io.RawIOBase | io.BytesIO, op: str, arg: int) -> object:
    if op == "read":
        return handle.read(arg)
    if op == "readinto":
        buffer = bytearray(arg)
        count = handle.readinto(buffer)
        return count, bytes(buffer)
    if op == "tell":
        return handle.tell()
    whence = {"seek_set": io.SEEK_SET, "seek_cur": io.SEEK_CUR, "seek_end": io.SEEK_END}[op]
    try:
        return handle.seek(arg, whence)
    except ValueError:
        return "ValueError"


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(_OPS, max_size=25))
def test_file_reader_behaves_like_bytesio_over_the_plaintext(ops: list[tuple[str, int]]) -> None:
    expected = io.BytesIO(THREE_AND_A_BIT)
    with EncryptedFileReader(
        io.BytesIO(THREE_AND_A_BIT_CT), DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT)
    ) as reader:
        for op, arg in ops:
            assert _apply(reader, op, arg) == _apply(expected, op, arg), (op, arg)
            assert reader.tell() == expected.tell()


def test_file_reader_is_a_readable_seekable_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "object"
    path.write_bytes(THREE_AND_A_BIT_CT)

    with EncryptedFileReader(path, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT)) as reader:
        assert reader.readable()
        assert reader.seekable()
        assert not reader.writable()
        assert reader.plaintext_length == len(THREE_AND_A_BIT)
        assert reader.read() == THREE_AND_A_BIT
        assert reader.read(10) == b""
        assert reader.seek(10**9) == 10**9
        assert reader.read(10) == b""
        assert reader.seek(-3, io.SEEK_END) == len(THREE_AND_A_BIT) - 3
        assert reader.read(-1) == THREE_AND_A_BIT[-3:]
        with pytest.raises(io.UnsupportedOperation):
            reader.write(b"x")
        with pytest.raises(ValueError, match="negative"):
            reader.seek(-1)
    assert reader.closed
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


def test_file_reader_over_an_empty_object_reads_nothing() -> None:
    blob = _encrypt(b"", DEK, OBJECT_ID)

    with EncryptedFileReader(io.BytesIO(blob), DEK, OBJECT_ID, len(blob)) as reader:
        assert reader.read() == b""
        assert reader.seek(0, io.SEEK_END) == 0


def test_file_reader_rejects_a_wrong_key_on_open() -> None:
    with pytest.raises(IntegrityFailure):
        EncryptedFileReader(
            io.BytesIO(THREE_AND_A_BIT_CT), new_data_key(), OBJECT_ID, len(THREE_AND_A_BIT_CT)
        )


def test_file_reader_leaves_a_borrowed_file_open_and_closes_its_own(tmp_path: Path) -> None:
    borrowed = io.BytesIO(THREE_AND_A_BIT_CT)
    EncryptedFileReader(borrowed, DEK, OBJECT_ID, len(THREE_AND_A_BIT_CT)).close()
    assert not borrowed.closed


def test_file_reader_serves_audio_to_pyav(tmp_path: Path) -> None:
    rate, seconds = 8000, 3
    samples = array.array("h", (((i * 37) % 2000) - 1000 for i in range(rate * seconds)))
    wav = io.BytesIO()
    with wave.open(wav, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    blob = _encrypt(wav.getvalue(), DEK, OBJECT_ID, cuts=[1000, 30_000])
    path = tmp_path / "call.sgrc"
    path.write_bytes(blob)

    decoded = bytearray()
    with (
        EncryptedFileReader(path, DEK, OBJECT_ID, len(blob)) as reader,
        av.open(reader, mode="r") as container,
    ):
        stream = container.streams.audio[0]
        assert stream.sample_rate == rate
        for frame in container.decode(stream):
            decoded += bytes(frame.planes[0])[: frame.samples * 2]

    assert bytes(decoded) == samples.tobytes()
