"""Two participants' PCM laid side by side as a two-channel WAV, written into the
encrypted spool as it comes: no plaintext on disk, and only a bounded stretch in memory.

The spool is append-only (each segment is sealed as soon as it is full), so the WAV
header cannot be patched once the length is known. It is written first with all-ones
sizes, which is what streaming writers do and what FFmpeg reads as "until the end of the
file"; ``recorder.formats.wav_declared_seconds`` already treats it as no claim.

Always two channels, even while (or if ever) only one participant is heard: the header
goes out before the call's end, a re-INVITE may add the second stream at any time, and a
fixed layout means channel 0 is always participant A and channel 1 participant B. A
silent channel of 16-bit PCM costs what the other does; the call is still evidence of
who spoke when.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import numpy as np

from recorder.siprec.codecs import Pcm
from storage import EncryptedSpool

CHANNELS = 2
_SAMPLE_BYTES = 2
_UNKNOWN_SIZE = 0xFFFFFFFF
DEFAULT_MAX_SKEW_S = 1.0
CONTENT_TYPE = "audio/wav"


def streaming_wav_header(sample_rate: int, channels: int = CHANNELS) -> bytes:
    """A 44-byte PCM WAV header whose RIFF and data sizes say "unknown" (all ones)."""
    block = channels * _SAMPLE_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", _UNKNOWN_SIZE)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", _UNKNOWN_SIZE)
    )


class TwoChannelRecording:
    """The call's timeline: channels are filled by position, interleaved and spooled.

    Position 0 is the moment the recording was opened (``clock`` then); positions count
    samples at ``sample_rate``. Audio placed where something was already written is
    dropped (counted in ``overwritten_samples``): that stretch was given up as silence.
    A channel that falls more than ``max_skew_s`` behind the other is padded with
    silence, which bounds what is held to about that much audio per channel.
    """

    def __init__(
        self,
        spool: EncryptedSpool,
        sample_rate: int,
        *,
        max_skew_s: float = DEFAULT_MAX_SKEW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self._rate = sample_rate
        self._max_skew = int(max_skew_s * sample_rate)
        self._clock = clock
        self._opened_at = clock()
        self._pending: list[Pcm] = [np.zeros(0, dtype=np.int16) for _ in range(CHANNELS)]
        self._written = 0  # frames already handed to the spool
        self._header_sent = False
        self.overwritten_samples = 0

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def frames_written(self) -> int:
        """Frames (one sample per channel) handed to the spool so far."""
        return self._written

    def position_now(self) -> int:
        """Where the timeline stands by the clock: samples since the recording opened."""
        return int((self._clock() - self._opened_at) * self._rate)

    def put(self, channel: int, position: int, pcm: Pcm) -> None:
        """Place ``pcm`` on ``channel`` from ``position``; what lies before it stays silent."""
        offset = position - self._written
        if offset < 0:
            skipped = min(-offset, len(pcm))
            self.overwritten_samples += skipped
            pcm = pcm[skipped:]
            offset = 0
        if not len(pcm):
            return
        held = self._pending[channel]
        if offset >= len(held):
            gap = np.zeros(offset - len(held), dtype=np.int16)
            self._pending[channel] = np.concatenate((held, gap, pcm))
        else:
            end = offset + len(pcm)
            self._pending[channel] = np.concatenate((held[:offset], pcm, held[end:]))

    def take_ready(self, *, final: bool = False) -> bytes:
        """The interleaved frames both channels have reached (all of them when ``final``),
        the WAV header first the first time; they leave memory here."""
        lead = max(len(held) for held in self._pending)
        ready = lead if final else max(min(len(h) for h in self._pending), lead - self._max_skew)
        out = b"" if self._header_sent else streaming_wav_header(self._rate)
        self._header_sent = True
        if ready <= 0:
            return out
        frames = np.zeros((ready, CHANNELS), dtype="<i2")
        for channel, held in enumerate(self._pending):
            count = min(ready, len(held))
            frames[:count, channel] = held[:count]
            self._pending[channel] = held[count:]
        self._written += ready
        return out + frames.tobytes()

    async def flush(self, *, final: bool = False) -> None:
        """Hand what is ready to the spool (encrypted off the event loop)."""
        data = self.take_ready(final=final)
        if data:
            await self.spool.write(data)
