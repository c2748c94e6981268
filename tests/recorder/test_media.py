"""The media pass: every telephony format decodes to the right facts, a rendition and peaks;
what holds no audio is refused with its reason; what decodes in part is kept and flagged."""

from __future__ import annotations

import io
import os
import re
import struct
import wave
from typing import Any

import av
import av.video.stream
import numpy as np
import pytest

from recorder.errors import UndecodableAudio
from recorder.media import MediaReport, analyse
from tests.audio_factory import BY_NAME, DECODER, DEMUXER, FORMATS, Format, decode, make_audio

SECONDS = 6.0
CASES = [
    pytest.param(spec, channels, id=f"{spec.name}-{channels}ch")
    for spec in FORMATS
    for channels in (1, 2)
    if not (spec.codec == "gsm_ms" and channels == 2)  # GSM 6.10 is mono only
]


def run(data: bytes, *, max_channels: int = 2) -> tuple[MediaReport, bytes]:
    rendition = io.BytesIO()
    report = analyse(io.BytesIO(data), max_channels=max_channels, rendition=rendition)
    return report, rendition.getvalue()


@pytest.mark.parametrize(("spec", "channels"), CASES)
def test_each_format_is_probed_exactly_and_gets_a_rendition_and_peaks(
    spec: Format, channels: int
) -> None:
    report, rendition = run(make_audio(spec, SECONDS, channels))

    assert report.container == DEMUXER.get(spec.container, spec.container)
    assert report.codec.startswith(DECODER.get(spec.codec, spec.codec))
    assert (report.sample_rate, report.channels) == (spec.rate, channels)
    assert report.duration_s == pytest.approx(SECONDS, rel=0.01)
    assert report.problems == ()

    played = decode(rendition)
    assert (played.container, played.codec) == ("matroska,webm", "opus")
    assert played.channels == channels
    assert played.seconds == pytest.approx(SECONDS, rel=0.01)

    assert report.peaks.channels == channels
    assert report.peaks.per_second == 20
    assert report.peaks.buckets == pytest.approx(SECONDS * 20, abs=1)


def test_two_channels_stay_apart_in_the_rendition() -> None:
    # Caller on one side, staff on the other: the tone on each channel only, never both.
    _, rendition = run(make_audio(BY_NAME["pcm-wav"], 9.0, channels=2))
    samples = decode(rendition).samples
    third = samples.shape[1] // 3
    margin = third // 10

    def level(channel: int, part: int) -> float:
        stretch = samples[channel, part * third + margin : (part + 1) * third - margin]
        return float(np.sqrt(np.mean(stretch**2)))

    # First third: the 425 Hz tone on the first channel, silence on the second.
    assert level(0, 0) > 0.2
    assert level(1, 0) < 0.002
    # Middle third: the other way round.
    assert level(0, 1) < 0.002
    assert level(1, 1) > 0.2


def test_peaks_follow_the_signal_on_each_channel() -> None:
    report, _ = run(make_audio(BY_NAME["pcm-wav"], 9.0, channels=2))
    signed = np.frombuffer(report.peaks.data, dtype=np.int8).reshape(-1, 2, 2)
    first, second = signed[:, 0, :], signed[:, 1, :]
    loud, quiet = slice(5, 55), slice(65, 115)  # well inside the first and middle thirds
    assert first[loud, 1].min() > 40
    assert first[loud, 0].max() < -40
    assert np.abs(first[quiet]).max() <= 1
    assert np.abs(second[loud]).max() <= 1
    assert second[quiet, 1].min() > 40


def _video_only() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as output:
        stream = output.add_stream("mpeg4", rate=10)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def _wav_with_data_size(data: bytes, size: int) -> bytes:
    """The same WAV with its data chunk claiming ``size`` bytes."""
    at = data.index(b"data")
    return data[: at + 4] + struct.pack("<I", size) + data[at + 8 :]


def _channels(count: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(count)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(bytes(2 * count * 8000))
    return buffer.getvalue()


def _rate(data: bytes, rate: int) -> bytes:
    return data[:24] + struct.pack("<I", rate) + data[28:]


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(13) + os.urandom(400)


WAV = make_audio(BY_NAME["pcm-wav"], 2.0)
NO_AUDIO = {
    "random-bytes": (os.urandom(8000), "not audio"),
    "text": (b"Call notes: nothing to see here.\n" * 200, "not audio"),
    "image": (_png(), "not audio"),
    "video-only": (_video_only(), "no audio stream"),
    "zero-length-stream": (make_audio(BY_NAME["flac"], 0.0), "empty (zero duration)"),
    "wav-header-no-data": (_wav_with_data_size(WAV, 0)[: WAV.index(b"data") + 8], "zero duration"),
    "nine-channels": (_channels(9), "9 channels: at most 2"),
    "absurd-sample-rate": (_rate(_channels(1), 2_000_000), "sample rate 2000000 Hz"),
}


@pytest.mark.parametrize(("data", "reason"), NO_AUDIO.values(), ids=NO_AUDIO.keys())
def test_what_holds_no_usable_audio_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UndecodableAudio, match=re.escape(reason)):
        run(data)


def test_the_channel_limit_is_configurable() -> None:
    report, _ = run(_channels(4), max_channels=4)
    assert report.channels == 4
    with pytest.raises(UndecodableAudio, match="4 channels: at most 2"):
        run(_channels(4))


def _corrupt_middle(data: bytes) -> bytes:
    damaged = bytearray(data)
    start = len(damaged) // 3
    damaged[start : start + 3000] = bytes(range(256)) * 11 + bytes(184)
    return bytes(damaged)


MP3 = make_audio(BY_NAME["mp3"], 20.0)
OGG = make_audio(BY_NAME["ogg-opus"], 20.0)
DAMAGED = {
    # A header promising an hour over five seconds of samples.
    "hour-header-over-5s": (
        _wav_with_data_size(make_audio(BY_NAME["pcm-wav"], 5.0), 3600 * 8000 * 2),
        5.0,
        {"truncated"},
    ),
    "mp3-cut-mid-frame": (MP3[: len(MP3) // 2 + 7], 10.0, {"truncated"}),
    "mp3-corrupt-stretch": (_corrupt_middle(MP3), 19.2, {"undecodable_stretch", "truncated"}),
    "ogg-corrupt-stretch": (_corrupt_middle(OGG), 18.0, {"gap", "truncated"}),
}


@pytest.mark.parametrize(("data", "playable", "codes"), DAMAGED.values(), ids=DAMAGED.keys())
def test_audio_that_decodes_in_part_is_kept_flagged_and_plays_that_part(
    data: bytes, playable: float, codes: set[str]
) -> None:
    report, rendition = run(data)
    assert {problem.code for problem in report.problems} == codes
    assert report.duration_s == pytest.approx(playable, abs=0.3)
    assert report.declared_duration_s is not None
    assert report.declared_duration_s > report.duration_s
    assert decode(rendition).seconds == pytest.approx(report.duration_s, rel=0.01)


def test_the_header_claim_is_reported_beside_what_decodes() -> None:
    report, _ = run(DAMAGED["hour-header-over-5s"][0])
    assert report.declared_duration_s == 3600.0
    (problem,) = report.problems
    assert problem.detail == "the header declares 3600.0 s but 5.0 s decode"


def test_audio_that_decodes_to_more_than_any_call_is_refused() -> None:
    # A few kilobytes of FLAC silence can unpack to hours; the cap (25 hours in service,
    # 3.6 seconds here) stops the decoding there.
    report, _ = run(make_audio(BY_NAME["flac"], 6.0))
    assert report.duration_s == 6.0
    with pytest.raises(UndecodableAudio, match=re.escape("more than 0.001 hours")):
        analyse(
            io.BytesIO(make_audio(BY_NAME["flac"], 6.0)),
            max_channels=2,
            rendition=io.BytesIO(),
            max_seconds=3.6,
        )


def check(data: bytes) -> MediaReport:
    """The check pass: no rendition, so WAV's PCM is read in large packets."""
    return analyse(io.BytesIO(data), max_channels=2, rendition=None)


@pytest.mark.parametrize(("spec", "channels"), CASES)
def test_the_check_pass_reports_what_the_rendition_pass_reports(
    spec: Format, channels: int
) -> None:
    data = make_audio(spec, SECONDS, channels)
    assert check(data) == run(data)[0]


def _ending_in_part_of_a_sample(samples: int) -> bytes:
    """Two-channel PCM whose data chunk holds ``samples`` and then half of one more."""
    wav = make_audio(BY_NAME["pcm-wav"], samples / 8000 + 1, channels=2)
    start = wav.index(b"data") + 8
    size = samples * 4 + 2
    return _wav_with_data_size(wav[: start + size], size)


# Each spans several of the check's packets (a megabyte each).
LONG_WAVS = {
    "whole": (make_audio(BY_NAME["pcm-wav"], 70.0, channels=2), set()),
    "header-claims-an-hour": (
        _wav_with_data_size(make_audio(BY_NAME["mulaw-wav"], 150.0), 3600 * 8000),
        {"truncated"},
    ),
    # FFmpeg's own packets (512 samples at 8 kHz) leave the half sample alone in the last
    # one, which does not decode; in a large packet it would pass unnoticed.
    "half-a-sample-at-the-end": (_ending_in_part_of_a_sample(600 * 512), {"undecodable_stretch"}),
}


@pytest.mark.parametrize(("data", "codes"), LONG_WAVS.values(), ids=LONG_WAVS.keys())
def test_the_check_pass_over_a_long_wav_reports_what_the_rendition_pass_reports(
    data: bytes, codes: set[str]
) -> None:
    report = check(data)
    assert {problem.code for problem in report.problems} == codes
    assert report == run(data)[0]


class _FailingAfter(io.RawIOBase):
    """A file that fails to read past ``limit`` bytes, as a damaged spool does."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__()
        self._data, self._limit, self._position = data, limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = offset + (len(self._data) if whence == io.SEEK_END else 0)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._limit:
            raise OSError("unreadable")
        chunk = self._data[self._position : min(self._limit, self._position + len(buffer))]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)


STOPS_READING = make_audio(BY_NAME["pcm-wav"], 150.0)  # 2.4 MB


# Within the check's first packet, read while the file is opened, and in its second.
@pytest.mark.parametrize("limit", [480_001, 1_680_001])
def test_a_file_that_stops_reading_breaks_off_where_the_rendition_pass_says(limit: int) -> None:
    data = STOPS_READING

    def source() -> io.BufferedReader:
        return io.BufferedReader(_FailingAfter(data, limit))

    report = analyse(source(), max_channels=2, rendition=None)

    assert {problem.code for problem in report.problems} == {"damaged_container", "truncated"}
    assert report == analyse(source(), max_channels=2, rendition=io.BytesIO())
