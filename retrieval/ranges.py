"""HTTP Range requests (RFC 9110 §14) over a recording of known size."""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.errors import RetrievalError

# More ranges than this in one request is not a player seeking: it is the "Apache
# Killer" shape (CVE-2011-3192), and it is refused.
MAX_RANGES = 8
_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")


class RangeNotSatisfiable(RetrievalError):
    """No byte of the requested range exists, or the request lists too many ranges."""

    def __init__(self, detail: str, size: int) -> None:
        super().__init__(detail)
        self.size = size


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes [start, end) of the recording."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """How many bytes the range holds."""
        return self.end - self.start

    def content_range(self, size: int) -> str:
        """The ``Content-Range`` value for this range of a ``size``-byte recording."""
        return f"bytes {self.start}-{self.end - 1}/{size}"


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, or None for the whole recording.

    A malformed header is ignored, as RFC 9110 allows, and several ranges are answered
    with the whole recording (also allowed). RangeNotSatisfiable for a range that
    starts past the end, or for an abusive list of ranges.
    """
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        return None
    parts = specs.split(",")
    if len(parts) > MAX_RANGES:
        raise RangeNotSatisfiable(f"at most {MAX_RANGES} ranges may be asked for", size)
    parsed = [_SPEC.fullmatch(part) for part in parts]
    if any(match is None for match in parsed):
        return None
    if len(parts) > 1:
        return None
    match = parsed[0]
    assert match is not None  # checked above; narrows the type
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable("the range holds no byte of the recording", size)
        return ByteRange(max(0, size - count), size)
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable("the range starts past the end of the recording", size)
    return ByteRange(start, end)
