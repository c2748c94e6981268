"""RTP payloads to 16-bit PCM: G.711 by table, G.722 and Opus through PyAV (FFmpeg).

G.711 is a lookup (``audioop`` is deprecated, and gone from Python 3.13); the wideband
codecs keep state between packets, so each stream has its own decoder. Every decoder can
hand its PCM on at another rate (the recording's): G.711 beside a wideband stream is
brought up to 16 kHz, Opus (decoded at 48 kHz by libopus) down to it.
"""

from __future__ import annotations

from typing import Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler

from recorder.siprec.sdp import Codec

Pcm = npt.NDArray[np.int16]
NARROWBAND_HZ = 8_000
WIDEBAND_HZ = 16_000
_OPUS_HZ = 48_000


class UndecodablePayload(ValueError):
    """A payload the codec refused; the receiver counts it and leaves silence in its place."""


def _mu_law_table() -> Pcm:
    # ITU-T G.711: codes are stored inverted; magnitude = ((mantissa << 3) + bias) << exp.
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + 0x84) << exponent
    sample = magnitude - 0x84
    return np.where(code & 0x80, -sample, sample).astype(np.int16)


def _a_law_table() -> Pcm:
    # ITU-T G.711: even bits inverted; a set sign bit is positive, unlike mu-law.
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


MU_LAW: Pcm = _mu_law_table()
A_LAW: Pcm = _a_law_table()


class PcmDecoder(Protocol):
    """One stream's decoder: payloads in, PCM at ``sample_rate`` out."""

    @property
    def sample_rate(self) -> int: ...

    def decode(self, payload: bytes) -> Pcm: ...


class _G711:
    def __init__(self, table: Pcm) -> None:
        self._table = table

    @property
    def sample_rate(self) -> int:
        return NARROWBAND_HZ

    def decode(self, payload: bytes) -> Pcm:
        return self._table[np.frombuffer(payload, dtype=np.uint8)]


class _FFmpegDecoder:
    """A PyAV decoder for a stateful codec, its output as mono s16 at ``rate``."""

    def __init__(self, name: str, decoded_rate: int, rate: int) -> None:
        context = av.codec.CodecContext.create(name, "r")
        assert isinstance(context, AudioCodecContext)
        context.sample_rate = decoded_rate
        context.layout = "mono"
        self._context = context
        self._rate = rate
        self._resampler = AudioResampler(format="s16", layout="mono", rate=rate)

    @property
    def sample_rate(self) -> int:
        return self._rate

    def decode(self, payload: bytes) -> Pcm:
        try:
            frames = self._context.decode(av.Packet(payload))
            pieces = [
                out.to_ndarray().reshape(-1)
                for frame in frames
                for out in self._resampler.resample(frame)
            ]
        except (av.error.FFmpegError, ValueError) as exc:
            raise UndecodablePayload(type(exc).__name__) from None
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(pieces).astype(np.int16, copy=False)


class _Resampled:
    """A fixed-rate decoder's PCM brought to another rate by FFmpeg's resampler, which
    keeps its filter's state from packet to packet."""

    def __init__(self, inner: PcmDecoder, rate: int) -> None:
        self._inner = inner
        self._rate = rate
        self._resampler = AudioResampler(format="s16", layout="mono", rate=rate)

    @property
    def sample_rate(self) -> int:
        return self._rate

    def decode(self, payload: bytes) -> Pcm:
        pcm = self._inner.decode(payload)
        if not len(pcm):
            return pcm
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._inner.sample_rate
        pieces = [out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame)]
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(pieces).astype(np.int16, copy=False)


def natural_rate(codec: Codec) -> int:
    """The audio rate a codec carries (not its RTP clock: G.722's is 8 kHz for 16 kHz)."""
    name = codec.name.upper()
    if name in ("PCMU", "PCMA"):
        return NARROWBAND_HZ
    if name in ("G722", "OPUS"):
        return WIDEBAND_HZ  # Opus is kept at wideband: speech, and a third of 48 kHz's size
    raise ValueError(f"no decoder for {codec.name}")


def recording_rate(codecs: list[Codec]) -> int:
    """The rate a recording of these streams is written at: the widest any of them carries."""
    return max((natural_rate(codec) for codec in codecs), default=NARROWBAND_HZ)


def decoder_for(codec: Codec, rate: int) -> PcmDecoder:
    """A fresh decoder for one stream of ``codec``, its PCM at ``rate`` Hz.

    ValueError for a codec without one (the SDP answer only accepts these four).
    """
    name = codec.name.upper()
    if name in ("PCMU", "PCMA"):
        g711 = _G711(MU_LAW if name == "PCMU" else A_LAW)
        return g711 if rate == NARROWBAND_HZ else _Resampled(g711, rate)
    if name == "G722":
        return _FFmpegDecoder("g722", WIDEBAND_HZ, rate)
    if name == "OPUS":
        return _FFmpegDecoder("libopus", _OPUS_HZ, rate)
    raise ValueError(f"no decoder for {codec.name}")
