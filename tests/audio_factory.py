"""Real audio in every format the service takes, made on the spot with PyAV.

Nothing binary is committed: each test makes the file it needs. The signal is a mix a
waveform and a decoder can be checked against: on the first channel a 425 Hz tone
(the UK ring tone's frequency) with quiet noise under it, then a stretch of silence,
then the tone again; on the second channel, when there is one, a 1 kHz tone during
the first channel's silence and silence elsewhere, so the two channels are told apart.

GSM 6.10 is the one exception: PyAV's wheel decodes it but has no encoder, so it is
encoded by Debian's ffmpeg (libgsm) from a WAV made here; tests that need it skip
without ffmpeg, and fail under CI.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.audio.stream
import numpy as np
import numpy.typing as npt

from tests.fixtures_db import skip_or_fail


@dataclass(frozen=True)
class Format:
    """One way recordings arrive: container, codec, and the rate telephony uses with it."""

    name: str
    container: str
    codec: str
    rate: int
    bit_rate: int | None = None

    @property
    def lossless(self) -> bool:
        return self.codec.startswith("pcm_") or self.codec == "flac"


FORMATS = (
    Format("mulaw-wav", "wav", "pcm_mulaw", 8000),
    Format("alaw-wav", "wav", "pcm_alaw", 8000),
    Format("pcm-wav", "wav", "pcm_s16le", 8000),
    Format("gsm-wav", "wav", "gsm_ms", 8000),
    Format("mp3", "mp3", "libmp3lame", 16000, 32000),
    Format("ogg-opus", "ogg", "libopus", 48000, 24000),
    Format("webm-opus", "webm", "libopus", 48000, 24000),
    Format("flac", "flac", "flac", 8000),
)
BY_NAME = {spec.name: spec for spec in FORMATS}
# What the service's probe reports for each format's decoder and container.
DECODER = {"libmp3lame": "mp3", "libopus": "opus"}
DEMUXER = {"webm": "matroska"}


def signal(seconds: float, rate: int, channels: int) -> npt.NDArray[np.int16]:
    """The test signal, planar int16, shaped (channels, samples)."""
    count = round(seconds * rate)
    t = np.arange(count) / rate
    third = count // 3
    rng = np.random.default_rng(425)
    first = 0.4 * np.sin(2 * np.pi * 425 * t) + 0.02 * rng.standard_normal(count)
    first[third : 2 * third] = 0.0
    planes = [first]
    if channels == 2:
        second = np.zeros(count)
        second[third : 2 * third] = 0.4 * np.sin(2 * np.pi * 1000 * t[third : 2 * third])
        planes.append(second)
    return (np.clip(np.stack(planes), -1, 1) * 32767).astype(np.int16)


def make_audio(spec: Format, seconds: float, channels: int = 1) -> bytes:
    """A file of ``spec`` holding ``seconds`` of the test signal."""
    if spec.codec == "gsm_ms":
        return _gsm_wav(seconds, channels)
    samples = signal(seconds, spec.rate, channels)
    return encode(spec.container, spec.codec, samples, spec.rate, bit_rate=spec.bit_rate)


def encode(
    container: str,
    codec: str,
    samples: npt.NDArray[np.int16],
    rate: int,
    *,
    bit_rate: int | None = None,
) -> bytes:
    """Encode planar int16 samples with PyAV into ``container``."""
    channels = samples.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = layout
        if bit_rate:
            stream.bit_rate = bit_rate
        step = rate // 10
        for start in range(0, samples.shape[1], step):
            chunk = np.ascontiguousarray(samples[:, start : start + step])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16p", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def _gsm_wav(seconds: float, channels: int) -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        skip_or_fail("GSM 6.10 fixtures need Debian's ffmpeg (apt-get install ffmpeg)")
        raise AssertionError("unreachable")
    if channels != 1:
        raise ValueError("GSM 6.10 is mono")
    source = encode("wav", "pcm_s16le", signal(seconds, 8000, 1), 8000)
    with tempfile.TemporaryDirectory() as directory:
        wav_in, wav_out = Path(directory, "in.wav"), Path(directory, "out.wav")
        wav_in.write_bytes(source)
        subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                str(wav_in),
                "-c:a",
                "libgsm_ms",
                str(wav_out),
            ],
            check=True,
        )
        return wav_out.read_bytes()


@dataclass(frozen=True)
class Decoded:
    """A whole file decoded: its format, rate and samples (channels, n) as float."""

    container: str
    codec: str
    rate: int
    samples: npt.NDArray[np.float32]

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def seconds(self) -> float:
        return float(self.samples.shape[1] / self.rate)


def decode(data: bytes) -> Decoded:
    """Decode all of ``data`` with PyAV."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.layout.nb_channels
        planes = []
        for frame in container.decode(stream):
            array = frame.to_ndarray()
            if not frame.format.is_planar:
                array = array.reshape(-1, channels).T
            planes.append(array.astype(np.float32))
        return Decoded(
            container.format.name,
            stream.codec_context.name,
            int(stream.codec_context.sample_rate),
            np.concatenate(planes, axis=1),
        )


def noisy_wav(seconds: float, *, rate: int = 8000, channels: int = 2) -> bytes:
    """Loud noise on every channel: the worst case for the encoder, the largest rendition."""
    rng = np.random.default_rng(7)
    samples = (rng.uniform(-0.5, 0.5, (channels, round(seconds * rate))) * 32767).astype(np.int16)
    return encode("wav", "pcm_s16le", samples, rate)


def slow_to_check_flac(seconds: float, *, rate: int = 8000) -> bytes:
    """Noise as FLAC in its smallest frames (16 samples): every frame is a step of the
    check's loop, so minutes of it keep a worker busy for seconds, long enough to kill it
    (7.5 minutes took 2.3 s to check here with PyAV 18; 2.5 minutes, under a second)."""
    rng = np.random.default_rng(11)
    samples = (rng.uniform(-0.5, 0.5, (1, round(seconds * rate))) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="flac") as output:
        stream = output.add_stream("flac", rate=rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = "mono"
        stream.codec_context.options = {"frame_size": "16"}
        frame = av.AudioFrame.from_ndarray(samples, format="s16p", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    return buffer.getvalue()


def silence_repeated(
    container: str, codec: str, rate: int, seconds: float, **options: str
) -> bytes:
    """``seconds`` of digital silence, made fast: one encoded packet of silence, muxed over
    and over with advancing timestamps (hours in a few seconds, where encoding them
    would take minutes). The shape of a decompression bomb: tiny for its length."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = "mono"
        stream.codec_context.options = options
        packets: list[av.Packet[av.audio.stream.AudioStream]] = []
        for second in range(2):  # the second second's packets are past any start-up
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, rate), dtype=np.int16), format="s16p", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, second * rate, Fraction(1, rate)
            packets = list(stream.encode(frame))
        model = packets[-1]
        assert model.duration
        assert model.time_base
        data, duration, time_base = bytes(model), model.duration, model.time_base
        for index in range(int(seconds / float(duration * time_base))):
            packet = av.Packet(data)
            packet.pts = packet.dts = index * duration
            packet.duration, packet.time_base, packet.stream = duration, time_base, stream
            output.mux(packet)
    return buffer.getvalue()
