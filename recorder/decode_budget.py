"""How much audio a file may decode to, so a decompression bomb is refused early.

The one definition of the limit, for every pass over a file (see media.py); it knows
nothing of FFmpeg, only seconds decoded and bytes read.
"""

from __future__ import annotations

from typing import IO

from recorder.errors import UndecodableAudio

# No call is longer (metadata refuses longer ones); a small file that decodes to more
# is a decompression bomb, stopped before it keeps a worker busy for hours.
MAX_SECONDS = 25 * 3600
# The fewest bytes a second of a real call takes, in any format the service accepts:
# 2 kbit/s. The thriftiest telephony codecs are well above it (AMR-NB 4.75, G.723.1 5.3,
# Opus 6, G.729 8, GSM 13 kbit/s; MP3 frames never fall under 8 kbit/s). Only a lossless
# file of digital silence, or a stream that sends almost nothing, gets under it: ten hours
# of silence fit in 6 MB of FLAC, and would hold a worker for minutes to render nothing.
MIN_BYTES_PER_SECOND = 250
# Audio allowed beyond that rate at any point, so a call that starts with a few minutes
# of digital silence (a line open before anyone speaks) is not mistaken for a bomb. Not
# more: a bomb is refused only after this much audio plus what its bytes hold has been
# decoded and rendered, about 8 s of work for a FLAC of silence in its smallest frames.
FREE_SECONDS = 180.0


class DecodeBudget:
    """How much audio a file may decode to: never more than ``max_seconds``, and never
    more than its bytes can hold at ``MIN_BYTES_PER_SECOND`` (plus ``FREE_SECONDS``).

    Checked on what the header declares before anything is decoded, so a bomb that says
    what it is goes in milliseconds, and again as each frame decodes, against the bytes
    read so far, so one that hides its length goes within seconds of work.
    """

    def __init__(self, max_seconds: float, size: int, source: IO[bytes]) -> None:
        self._max_seconds = max_seconds
        self._size = size
        self._source = source
        self._read = 0

    def check_declared(self, declared: float | None) -> None:
        if declared is not None:
            self._check(declared, self._size)

    def note_packet(self, pos: int | None, size: int) -> None:
        """Count the bytes behind the audio: up to the end of the packet just demuxed
        (``pos`` is where it starts in the file, when the demuxer knows)."""
        if pos is not None and pos >= 0:
            self._read = max(self._read, pos + size)
        else:
            self._read = max(self._read, self._source.tell())

    def check_decoded(self, seconds: float) -> None:
        self._check(seconds, self._read)

    def _check(self, seconds: float, read: int) -> None:
        if seconds > self._max_seconds:
            raise UndecodableAudio(
                f"the audio lasts more than {self._max_seconds / 3600:g} hours: "
                "no call is that long"
            )
        if seconds > FREE_SECONDS + read / MIN_BYTES_PER_SECOND:
            raise UndecodableAudio(
                f"the audio lasts far longer than {read} bytes can hold "
                f"(at least {MIN_BYTES_PER_SECOND * 8 / 1000:g} kbit/s is expected of "
                "a recorded call): refused as a decompression bomb"
            )
