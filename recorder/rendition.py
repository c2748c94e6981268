"""The playback rendition: Opus in WebM, the one compact format every current browser plays.

Why this format (measured figures in docs/performance.md):
- Browsers: Chromium and Firefox play Opus in WebM and in Ogg; Safari plays WebM/Opus
  since Safari 15 and Ogg/Opus only in recent releases. Telephony codecs (G.711, GSM)
  play nowhere reliably. MP3 plays everywhere too.
- Size: 16 kbit/s per channel is transparent for narrow-band speech; an hour of mono is
  about 8 MB, against 14 MB of MP3 at the 32 kbit/s speech needs.
- Speed: PyAV's wheel encodes an hour of mono to Opus in about 15 s on one core, 1.6x
  faster than Debian's ffmpeg command line; its MP3 encoder takes as long, but is 4x
  slower than that command line's (an older, slower LAME is bundled).
WebM costs about 11% more bytes than Ogg; Safari is why it is paid.

Two channels stay two channels (caller and staff can be heard apart): phase inversion,
which Opus uses to widen a stereo image, is turned off so one channel never leaks into
the other.
"""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction
from typing import IO, Protocol

import av
import av.audio.stream

# Where a rendition can be written: a file, or an encrypting writer.
Output = io.RawIOBase | IO[bytes]


class FrameWriter(Protocol):
    """Where the decode pass (media.py) sends the audio it decoded: normalised frames,
    s16p, mono or stereo, at the source's rate, in order."""

    def add(self, frame: av.AudioFrame) -> None: ...

    def finish(self) -> None: ...

    def abandon(self) -> None: ...


class MakeFrameWriter(Protocol):
    """Opens a FrameWriter on ``out`` once the pass knows the channels and rate."""

    def __call__(self, out: Output, *, channels: int, source_rate: int) -> FrameWriter: ...


CONTENT_TYPE = "audio/webm"
BITS_PER_CHANNEL = 16_000
# Input rates libopus takes as they are; any other rate is resampled to the next one up.
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def opus_rate(source_rate: int) -> int:
    """The encoder rate for a source rate: the same if Opus takes it, else the next above."""
    for rate in _OPUS_RATES:
        if source_rate <= rate:
            return rate
    return _OPUS_RATES[-1]


class OpusWebmWriter:
    """Encodes normalised frames (s16p, mono or stereo) into a WebM file object."""

    def __init__(self, out: Output, *, channels: int, source_rate: int) -> None:
        layout = "mono" if channels == 1 else "stereo"
        self._container = av.open(out, mode="w", format="webm")
        stream = self._container.add_stream("libopus", rate=opus_rate(source_rate))
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = layout
        stream.bit_rate = BITS_PER_CHANNEL * (1 if channels == 1 else 2)
        stream.codec_context.options = {"application": "voip", "apply_phase_inv": "0"}
        self._stream = stream
        self._time_base = Fraction(1, source_rate)
        self._samples = 0

    def add(self, frame: av.AudioFrame) -> None:
        """Encode one frame; timestamps are renumbered so the rendition has no holes."""
        frame.pts = self._samples
        frame.time_base = self._time_base
        self._samples += frame.samples
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def finish(self) -> None:
        """Flush the encoder and write the index and duration."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abandon(self) -> None:
        """Close without caring about the output (the capture failed)."""
        with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
            self._container.close()
