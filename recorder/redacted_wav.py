"""The redacted copy of a recording: PCM WAV with what the redaction leaves out set to zero.

Why WAV of 16-bit PCM: a subject access copy goes to a member of the public, who must be
able to open it with whatever they have; every player and every operating system opens
it. Lossless, so nothing of the kept audio changes but its sample format (a lossy
original is decoded once, as for playback), and digital silence stays exact zeros, not
a codec's faint reconstruction of what was removed. About 1 MB per minute of 8 kHz
stereo; a copy is made for one request and not kept.

The header asks for RF64 only past 4 GiB (``rf64=auto``: a 25-hour call at 16 kHz
stereo), and no encoder tag (``bitexact``): the same redaction of the same recording
gives the same bytes and hash.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from typing import cast

import av
import av.audio.stream
import av.error
import numpy as np
import numpy.typing as npt

from recorder.redaction import Redaction
from recorder.rendition import Output

CONTENT_TYPE = "audio/wav"
_MUXER_OPTIONS = {"rf64": "auto", "fflags": "+bitexact"}


class RedactedWavWriter:
    """Takes the pass's frames (s16p, mono or stereo), silences what ``redaction`` says,
    and writes 16-bit PCM WAV at the source's rate to ``out``.

    InvalidRedaction at once, before any sample, if the redaction keeps a channel of a
    recording that has only one.
    """

    def __init__(
        self, out: Output, *, channels: int, source_rate: int, redaction: Redaction
    ) -> None:
        redaction.check_channels(channels)
        self._redaction = redaction
        self._rate = source_rate
        self._layout = "mono" if channels == 1 else "stereo"
        self._container = av.open(out, mode="w", format="wav", options=_MUXER_OPTIONS)
        stream = self._container.add_stream("pcm_s16le", rate=source_rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = self._layout
        self._stream = stream
        self._time_base = Fraction(1, source_rate)
        self._samples = 0

    @property
    def samples(self) -> int:
        """Samples per channel written so far."""
        return self._samples

    def add(self, frame: av.AudioFrame) -> None:
        """Redact and encode one frame; timestamps are renumbered, as for the rendition."""
        planes = cast("npt.NDArray[np.int16]", frame.to_ndarray()).copy()
        self._redaction.apply(planes, self._samples, self._rate)
        # PCM in WAV is interleaved: one row of channel-after-channel samples.
        packed = np.ascontiguousarray(planes.T).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(packed, format="s16", layout=self._layout)
        out.sample_rate = self._rate
        out.pts = self._samples
        out.time_base = self._time_base
        self._samples += planes.shape[1]
        for packet in self._stream.encode(out):
            self._container.mux(packet)

    def finish(self) -> None:
        """Flush and write the header's sizes."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abandon(self) -> None:
        """Close without caring about the output (the pass failed)."""
        with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
            self._container.close()
