"""Streaming reader of the push body: a small ``metadata`` part in memory, ``audio`` passed on.

The multipart framing is parsed by python-multipart as raw chunks arrive, so an upload of
any size needs only a chunk's worth of memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from recorder.errors import (
    InvalidMetadata,
    InvalidPart,
    MalformedUpload,
    NotMultipart,
    PayloadTooLarge,
    UndecodableAudio,
)

PARTS = ("metadata", "audio")
# The filename is never used, but one that names a path, or hides control characters,
# is a hostile sender, not a careless one: any single plain name is fine.
_PATH_LIKE = re.compile(r"[/\\\x00-\x1f\x7f]")
# A legitimate two-part body holds the delimiter twice after its opening line. Bodies
# full of delimiters that are not real part boundaries are refused early: parsing them
# costs the parser a hundred times more than parsing audio.
MAX_DELIMITERS = 4


@dataclass(frozen=True, slots=True)
class PushForm:
    """What the body held once fully read: the metadata bytes (the audio went to the spool)."""

    metadata: bytes


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary; NotMultipart unless the type is multipart/form-data."""
    try:
        media_type, options = parse_options_header(content_type)
    except UnicodeError:
        raise NotMultipart("the Content-Type header is not plain ASCII") from None
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise NotMultipart("the body must be multipart/form-data with a boundary")
    if len(boundary) > 200:
        raise NotMultipart("the multipart boundary is longer than 200 bytes")
    return boundary


class PushFormReader:
    """Feed raw body chunks; get back the audio bytes found in each, then the metadata."""

    def __init__(self, boundary: bytes, *, max_metadata_bytes: int) -> None:
        self._max_metadata = max_metadata_bytes
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_end": self._on_end,
            },
        )
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._current: str | None = None
        self._seen: set[str] = set()
        self._metadata = bytearray()
        self._audio: list[bytes | memoryview] = []
        self._delimiter = b"\r\n--" + boundary
        self._delimiters = 0
        self._tail = b""
        self._ended = False
        self._error: Exception | None = None

    def feed(self, chunk: bytes) -> list[bytes | memoryview]:
        """Parse one raw chunk; return the audio bytes it carried (possibly none)."""
        self._count_delimiters(chunk)
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise MalformedUpload("the multipart body is malformed") from None
        if self._error is not None:
            raise self._error
        audio, self._audio = self._audio, []
        return audio

    def finish(self) -> PushForm:
        """Check the body ended properly and held both parts; return the metadata."""
        if not self._ended:
            raise MalformedUpload("the multipart body ended before its closing boundary")
        if "metadata" not in self._seen:
            raise InvalidMetadata("the body has no 'metadata' part")
        if "audio" not in self._seen:
            raise UndecodableAudio("the body has no 'audio' part")
        return PushForm(bytes(self._metadata))

    def _count_delimiters(self, chunk: bytes) -> None:
        # bytes.count runs in C; the look at the seam catches a delimiter split across
        # two chunks (the seam is shorter than two delimiters, so nothing counts twice).
        width = len(self._delimiter) - 1
        seam = self._tail + chunk[:width]
        self._delimiters += chunk.count(self._delimiter) + seam.count(self._delimiter)
        self._tail = chunk[-width:] if len(chunk) >= width else (self._tail + chunk)[-width:]
        if self._delimiters > MAX_DELIMITERS:
            raise MalformedUpload("the body holds more part boundaries than a push has")

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._current = None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name", b"").decode("latin-1")
        if disposition != b"form-data" or name not in PARTS:
            self._fail(InvalidPart(f"unexpected part {name[:40]!r}: only metadata and audio"))
            return
        if name in self._seen:
            self._fail(InvalidPart(f"the {name!r} part appears more than once"))
            return
        self._seen.add(name)
        self._current = name
        if name == "audio":
            filename = options.get(b"filename")
            if filename is not None:
                label = filename.decode("utf-8", errors="replace")
                if _PATH_LIKE.search(label) or label in {"", ".", ".."} or len(filename) > 255:
                    self._fail(InvalidPart("the audio filename must be a plain file name"))
                    return

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current == "audio":
            # A slice of the received chunk, kept by reference: bytes cannot change.
            self._audio.append(memoryview(data)[start:end])
        elif self._current == "metadata":
            if len(self._metadata) + (end - start) > self._max_metadata:
                self._fail(PayloadTooLarge(f"metadata is over {self._max_metadata} bytes"))
                return
            self._metadata += data[start:end]

    def _on_end(self) -> None:
        self._ended = True

    def _fail(self, error: Exception) -> None:
        # Callbacks cannot raise through the parser cleanly; remember the first error and
        # ignore the rest of the part until feed() raises it.
        if self._error is None:
            self._error = error
        self._current = None
