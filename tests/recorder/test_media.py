"""Probing audio: formats PBXs send are accepted with the right facts; anything else is not."""

from __future__ import annotations

import io
import math
import struct

import av
import av.audio.stream
import pytest

from recorder.errors import UndecodableAudio
from recorder.media import probe_audio
from tests.push_support import make_wav


def encode(container: str, codec: str, seconds: float, rate: int, layout: str = "mono") -> bytes:
    """Real compressed audio, made with the same FFmpeg the service probes with."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.audio.stream.AudioStream)
        samples = int(seconds * rate)
        frame_size = 1152 if codec == "libmp3lame" else 960 if codec == "libopus" else 1024
        channels = 1 if layout == "mono" else 2
        for start in range(0, samples, frame_size):
            count = min(frame_size, samples - start)
            tone = [math.sin(2 * math.pi * 425 * (start + n) / rate) * 0.4 for n in range(count)]
            planes = [tone] * channels
            frame = av.AudioFrame(format="fltp", layout=layout, samples=count)
            for plane, values in zip(frame.planes, planes, strict=True):
                plane.update(b"".join(_f32(v) for v in values))
            frame.rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def _f32(value: float) -> bytes:
    return struct.pack("<f", value)


@pytest.mark.parametrize(
    ("rate", "channels", "seconds"), [(8000, 1, 3.0), (16000, 2, 1.5), (48000, 2, 0.25)]
)
def test_wav_facts_are_exact(rate: int, channels: int, seconds: float) -> None:
    facts = probe_audio(io.BytesIO(make_wav(seconds, rate=rate, channels=channels)))
    assert (facts.container, facts.codec, facts.content_type) == ("wav", "pcm_s16le", "audio/wav")
    assert (facts.sample_rate, facts.channels) == (rate, channels)
    assert facts.duration_s == pytest.approx(seconds, abs=0.001)


@pytest.mark.parametrize(
    ("container", "codec", "rate", "content_type"),
    [
        ("mp3", "libmp3lame", 16000, "audio/mpeg"),
        ("ogg", "libopus", 48000, "audio/ogg"),
        ("flac", "flac", 8000, "audio/flac"),
    ],
)
def test_compressed_telephony_formats_are_accepted(
    container: str, codec: str, rate: int, content_type: str
) -> None:
    facts = probe_audio(io.BytesIO(encode(container, codec, 4.0, rate)))
    assert facts.content_type == content_type
    assert facts.sample_rate == rate
    assert facts.channels == 1
    assert facts.duration_s == pytest.approx(4.0, abs=0.1)


def test_a_wav_cut_short_reports_the_length_it_really_has() -> None:
    whole = make_wav(10)
    # The header still claims ten seconds; only four seconds of samples arrived.
    cut = whole[: 44 + 4 * 8000 * 2]
    facts = probe_audio(io.BytesIO(cut))
    assert facts.duration_s == pytest.approx(4.0, abs=0.05)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not audio at all\n" * 100,
        bytes(range(256)) * 64,
        make_wav(1)[:44],
        b"%PDF-1.7\n" + bytes(4096),
    ],
    ids=["empty", "text", "noise", "header-only-wav", "pdf"],
)
def test_what_is_not_decodable_audio_is_refused(payload: bytes) -> None:
    with pytest.raises(UndecodableAudio):
        probe_audio(io.BytesIO(payload))


def test_a_video_container_without_audio_is_refused() -> None:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as output:
        stream = output.add_stream("ffv1", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        frame = av.VideoFrame(16, 16, "yuv420p")
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    with pytest.raises(UndecodableAudio, match="no audio stream"):
        probe_audio(io.BytesIO(buffer.getvalue()))
