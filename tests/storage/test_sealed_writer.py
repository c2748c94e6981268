"""The encrypting writer a muxer writes the rendition through: same bytes as a plain file,
never plaintext on disk, and a loud refusal to rewrite what is already sealed."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import EncryptedFileReader, SealedFileWriter
from storage.crypto.format import SEGMENT_PLAINTEXT


def opened(path: Path, writer: SealedFileWriter) -> bytes:
    sealed = writer.seal()
    with EncryptedFileReader(
        path, sealed.data_key, sealed.object_id, sealed.facts.ciphertext_size
    ) as reader:
        return reader.read()


# A muxer's pattern: stream writes, then seek back into the head to patch it, then on.
WRITES = st.lists(
    st.tuples(st.integers(0, 3 * SEGMENT_PLAINTEXT), st.integers(0, 600), st.booleans()),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(writes=WRITES)
def test_it_reads_back_exactly_what_a_plain_file_would_hold(
    writes: list[tuple[int, int, bool]],
) -> None:
    directory = Path(tempfile.gettempdir())
    path = directory / f"sealed-{os.urandom(6).hex()}.spool"
    model = io.BytesIO()
    writer = SealedFileWriter(path, "audio/webm")
    try:
        for length, patch_at, patch in writes:
            data = os.urandom(length)
            model.write(data)
            writer.write(data)
            if patch and model.tell() > 0:
                # Rewrite a few bytes of the first segment, as the WebM muxer does.
                spot = min(patch_at, model.tell() - 1, SEGMENT_PLAINTEXT - 8)
                end = model.tell()
                for target in (model, writer):
                    target.seek(spot)
                    target.write(b"PATCHED!"[: min(8, end - spot)])
                    target.seek(0, io.SEEK_END)
        plain = model.getvalue()
        assert opened(path, writer) == plain
        sealed = writer.seal()
        assert sealed.facts.plaintext_size == len(plain)
        if len(plain) > 64:
            assert plain[:64] not in path.read_bytes()
    finally:
        writer.close()
        path.unlink(missing_ok=True)


def test_rewriting_a_sealed_segment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.spool"
    writer = SealedFileWriter(path, "audio/webm")
    writer.write(bytes(3 * SEGMENT_PLAINTEXT + 10))
    writer.seek(SEGMENT_PLAINTEXT + 5)  # segment 1: sealed once segment 2 began
    with pytest.raises(OSError, match="sealed segment"):
        writer.write(b"x")
    with pytest.raises(OSError, match="outside"):
        writer.seek(10 * SEGMENT_PLAINTEXT)
    writer.close()


def test_an_unsealed_writer_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "r.spool"
    writer = SealedFileWriter(path, "audio/webm")
    writer.write(b"half a rendition")
    writer.close()
    assert not path.exists()


def test_the_key_is_never_in_the_representation(tmp_path: Path) -> None:
    writer = SealedFileWriter(tmp_path / "r.spool", "audio/webm")
    writer.write(b"abc")
    sealed = writer.seal()
    assert sealed.data_key.hex() not in repr(sealed)
    assert str(sealed.data_key) not in repr(sealed)
