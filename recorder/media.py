"""One pass over the audio: prove it decodes, and make the rendition and peaks on the way.

Blocking (FFmpeg does the work); it runs in a worker process (see workers.py). The
file is read through a file object, so it can be decrypted as it is read and is never
whole in memory. This module and the writers it feeds (rendition.py, redacted_wav.py) are
the only ones that import PyAV for whole files; the SIPREC media side decodes packet by
packet (siprec/codecs.py, a G.722 or Opus decoder per stream, in the service process,
since a 20 ms packet decodes in microseconds).

What is refused (``UndecodableAudio``, answered 422) is only what holds no usable audio.
A file that decodes in part is kept, with what was wrong listed as problems: a partial
recording is still evidence, and a PBX does not resend after a 4xx.

The check pass (no rendition) is the same pass made cheaper: samples already in the kept
form skip the resampler, and WAV's PCM is read in large packets. Whatever such a pass
finds that could depend on where packets are cut is decided again in FFmpeg's own packets,
so both passes report the same for the same file.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import IO, cast

import av
import av.audio.plane
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer

from recorder.decode_budget import MAX_SECONDS, DecodeBudget
from recorder.errors import UndecodableAudio
from recorder.formats import CONTENT_TYPES, NOT_AUDIO, sniff_format, wav_declared_seconds
from recorder.peaks import PeakBuilder
from recorder.rendition import FrameWriter, MakeFrameWriter, OpusWebmWriter, Output
from storage import Peaks

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000
# How much shorter than its header says a stream may decode before it counts as cut
# short: a lossy stream's last packet rarely ends on the exact declared sample.
_SHORTFALL_S = 0.5
_SHORTFALL_RATIO = 0.01
# A timestamp jump longer than this is a hole in the recording.
_GAP_S = 0.1
# Enough of the start of a file to find a WAV header's data chunk behind other chunks.
_HEAD_BYTES = 4096
# FFmpeg's own probing reads at most this much before the first packet.
_PROBE_OPTIONS = {"probesize": str(1 << 20), "analyzeduration": "5000000"}
# FFmpeg's WAV demuxer cuts PCM into packets of about a tenth of a second (512 samples at
# 8 kHz), and each costs a few Python calls here: the check pass asks it (its ``max_size``
# option) for packets this large instead, 65 s of 8 kHz 16-bit mono each.
_CHECK_OPTIONS = {**_PROBE_OPTIONS, "max_size": str(1 << 20)}
# The layouts a frame may have and still be the kept audio as it is (no reordering or
# mixing to do): FFmpeg's own, or a count of channels in the default order.
_KEPT_LAYOUTS = {1: ("mono", "1 channels"), 2: ("stereo", "2 channels")}


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with audio that was kept anyway; ``detail`` is safe to show."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class MediaReport:
    """What the pass found; ``duration_s`` is what decodes, the playable length."""

    container: str
    codec: str
    content_type: str
    sample_rate: int
    channels: int
    duration_s: float
    declared_duration_s: float | None
    problems: tuple[Problem, ...]
    peaks: Peaks


def analyse(
    source: IO[bytes],
    *,
    max_channels: int,
    rendition: Output | None,
    max_seconds: float = MAX_SECONDS,
    writer: MakeFrameWriter = OpusWebmWriter,
) -> MediaReport:
    """Decode all of ``source``, writing the rendition to ``rendition``; raise if unusable.

    With no rendition, the pass only checks and measures (a probe, for the benchmark
    and for checking stored originals). ``writer`` makes what the rendition is: the
    browser's Opus by default, or a redacted copy.
    """
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    head = source.read(_HEAD_BYTES)
    demuxer = sniff_format(head[:16])
    if demuxer is None:
        raise UndecodableAudio(NOT_AUDIO)
    claimed = wav_declared_seconds(head) if demuxer == "wav" else None
    audio = _Input(source, size, demuxer, claimed, max_channels, max_seconds)
    if rendition is None and demuxer == "wav":
        # Whatever the large packets leave in doubt is decided below, in FFmpeg's packets.
        with contextlib.suppress(_PacketsMatter, UndecodableAudio):
            return _check_in_large_packets(audio)
    return _decode(audio, rendition, _PROBE_OPTIONS, writer=writer)


@dataclass(frozen=True, slots=True)
class _Input:
    """The file being analysed, and the limits it is held to."""

    file: IO[bytes]
    size: int
    demuxer: str
    claimed: float | None
    max_channels: int
    max_seconds: float


class _PacketsMatter(Exception):
    """What the check in large packets found might differ in FFmpeg's own packets."""


def _check_in_large_packets(audio: _Input) -> MediaReport:
    """The check pass over PCM in WAV, ``_CHECK_OPTIONS`` packets at a time.

    Only a clean report, or one of truncation (a count of samples), is kept. A coded
    stream, a refusal, a stretch that fails to demux or decode, a gap, or a packet ending
    in part of a sample raise: each is counted or placed by packet, or (a part sample
    fails only as a packet of its own) may exist in one packet cut and not another.
    """
    report = _decode(audio, None, _CHECK_OPTIONS, whole_samples=True)
    if any(problem.code != "truncated" for problem in report.problems):
        raise _PacketsMatter
    return report


def _decode(
    audio: _Input,
    rendition: Output | None,
    options: dict[str, str],
    *,
    writer: MakeFrameWriter = OpusWebmWriter,
    whole_samples: bool = False,
) -> MediaReport:
    """One pass over the file opened with ``options``; with ``whole_samples``, raise
    ``_PacketsMatter`` unless it is PCM and every packet holds whole samples."""
    audio.file.seek(0)
    try:
        container = av.open(audio.file, mode="r", format=audio.demuxer, options=options)
    except (av.error.FFmpegError, ValueError, EOFError, OSError):
        # No detail from FFmpeg: what it says about a hostile file is nobody's business.
        raise UndecodableAudio("the file is damaged beyond reading: no header decodes") from None
    with container:
        stream = _audio_stream(container, audio.max_channels)
        if whole_samples and not stream.codec_context.name.startswith("pcm_"):
            raise _PacketsMatter
        budget = DecodeBudget(audio.max_seconds, audio.size, audio.file)
        budget.check_declared(_declared_duration(container, stream))
        watch = _WholeSamples() if whole_samples else None
        return _Pass(container, stream, audio, budget, watch).run(rendition, writer)


def _audio_stream(container: InputContainer, max_channels: int) -> AudioStream:
    if not container.streams.audio:
        raise UndecodableAudio("the file has no audio stream")
    stream = container.streams.audio[0]
    context = stream.codec_context
    if context is None:
        # FFmpeg has no decoder for what the header names (a WAV of 0 bits per sample).
        raise UndecodableAudio("the audio stream's encoding is not one that can be decoded")
    rate = int(context.sample_rate or 0)
    channels = int(context.layout.nb_channels) if context.layout else 0
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UndecodableAudio(
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if channels < 1:
        raise UndecodableAudio("the audio stream declares no channels")
    if channels > max_channels:
        raise UndecodableAudio(f"{channels} channels: at most {max_channels} are accepted")
    return stream


class _WholeSamples:
    """Holds every packet to whole samples: each decodes to one per the same number of
    bytes, as PCM does unless a packet ends in part of one (which a large packet decodes
    without complaint, and a packet of its own does not)."""

    def __init__(self) -> None:
        self._bytes_per_sample: int | None = None

    def note(self, size: int, samples: int) -> None:
        if not samples or size % samples:
            raise _PacketsMatter
        if self._bytes_per_sample is None:
            self._bytes_per_sample = size // samples
        elif size // samples != self._bytes_per_sample:
            raise _PacketsMatter


class _Pass:
    """The decode loop and what it counts."""

    def __init__(
        self,
        container: InputContainer,
        stream: AudioStream,
        audio: _Input,
        budget: DecodeBudget,
        watch: _WholeSamples | None,
    ) -> None:
        context = stream.codec_context
        self._claimed = audio.claimed
        self._container = container
        self._stream = stream
        self._demuxer = audio.demuxer
        self._watch = watch
        self._codec = context.name
        self._rate = int(context.sample_rate)
        self._channels = int(context.layout.nb_channels)
        kept = 1 if self._channels == 1 else 2
        self._resampler = AudioResampler(
            format="s16p", layout="mono" if kept == 1 else "stereo", rate=self._rate
        )
        self._peaks = PeakBuilder(kept, self._rate)
        self._kept_channels = kept
        self._budget = budget
        self._samples = 0
        self._packets = 0
        self._bad_packets = 0
        self._bad_seconds = 0.0
        self._gap_seconds = 0.0
        self._gaps = 0
        self._next_pts: float | None = None
        self._broke_at: float | None = None

    def run(self, rendition: Output | None, make_writer: MakeFrameWriter) -> MediaReport:
        writer = None
        if rendition is not None:
            writer = make_writer(rendition, channels=self._kept_channels, source_rate=self._rate)
        try:
            self._decode_all(writer)
            if self._samples == 0:
                raise UndecodableAudio(
                    "no audio could be decoded from the file"
                    if self._packets
                    else "the audio stream is empty (zero duration)"
                )
            if writer is not None:
                writer.finish()
        except BaseException:
            if writer is not None:
                writer.abandon()
            raise
        duration = self._samples / self._rate
        declared = _declared_duration(self._container, self._stream)
        if self._claimed is not None and (declared is None or self._claimed > declared):
            declared = self._claimed
        return MediaReport(
            container=self._demuxer,
            codec=self._codec,
            content_type=CONTENT_TYPES[self._demuxer],
            sample_rate=self._rate,
            channels=self._channels,
            duration_s=round(duration, 3),
            declared_duration_s=None if declared is None else round(declared, 3),
            problems=self._problems(duration, declared),
            peaks=self._peaks.finish(),
        )

    def _decode_all(self, writer: FrameWriter | None) -> None:
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.FFmpegError, ValueError, EOFError, OSError):
                self._broke_at = self._samples / self._rate
                break
            if packet.size:
                self._packets += 1
                self._budget.note_packet(packet.pos, packet.size)
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError):
                self._bad_packets += 1
                if packet.duration and packet.time_base:
                    self._bad_seconds += float(packet.duration * packet.time_base)
                continue
            for frame in frames:
                self._take(frame, writer)
            if self._watch is not None and packet.size:
                self._watch.note(packet.size, sum(frame.samples for frame in frames))
        if self._broke_at is not None:
            # The demuxer's closing empty packet never came: flush the decoder here.
            try:
                for frame in self._stream.codec_context.decode(None):
                    self._take(frame, writer)
            except (av.error.FFmpegError, ValueError):
                self._bad_packets += 1

    def _take(self, frame: av.AudioFrame, writer: FrameWriter | None) -> None:
        self._note_gap(frame)
        if writer is None:
            for samples in self._kept_samples(frame):
                self._count(samples)
            return
        for normal in self._resampler.resample(frame):
            self._count(_int16_array(normal))
            writer.add(normal)

    def _kept_samples(self, frame: av.AudioFrame) -> list[npt.NDArray[np.int16]]:
        """The frame as the kept channels of int16, without copying when it already is
        (the check pass: nothing is encoded, so no normalised frame is needed)."""
        if frame.format.name in ("s16", "s16p") and frame.layout.name in _KEPT_LAYOUTS.get(
            self._kept_channels, ()
        ):
            return [_int16_planes(frame)]
        return [_int16_array(normal) for normal in self._resampler.resample(frame)]

    def _count(self, samples: npt.NDArray[np.int16]) -> None:
        self._samples += samples.shape[1]
        self._budget.check_decoded(self._samples / self._rate)
        self._peaks.add(samples)

    def _note_gap(self, frame: av.AudioFrame) -> None:
        if frame.pts is None or frame.time_base is None or not frame.sample_rate:
            return
        start = float(frame.pts * frame.time_base)
        if self._next_pts is not None and start - self._next_pts > _GAP_S:
            self._gaps += 1
            self._gap_seconds += start - self._next_pts
        self._next_pts = start + frame.samples / frame.sample_rate

    def _problems(self, duration: float, declared: float | None) -> tuple[Problem, ...]:
        found: list[Problem] = []
        if self._broke_at is not None:
            found.append(
                Problem(
                    "damaged_container",
                    f"the file's structure breaks off at {self._broke_at:.1f} s",
                )
            )
        if self._bad_packets:
            found.append(
                Problem(
                    "undecodable_stretch",
                    f"{self._bad_packets} packets did not decode"
                    + (f" (about {self._bad_seconds:.1f} s)" if self._bad_seconds else ""),
                )
            )
        if self._gaps:
            found.append(
                Problem(
                    "gap", f"{self._gaps} holes in the timing, {self._gap_seconds:.1f} s in all"
                )
            )
        if declared is not None and declared - duration > max(
            _SHORTFALL_S, declared * _SHORTFALL_RATIO
        ):
            found.append(
                Problem(
                    "truncated",
                    f"the header declares {declared:.1f} s but {duration:.1f} s decode",
                )
            )
        return tuple(found)


def _int16_array(normal: av.AudioFrame) -> npt.NDArray[np.int16]:
    """A normalised (s16p) frame's samples, (channels, samples)."""
    return cast("npt.NDArray[np.int16]", normal.to_ndarray())


def _int16_planes(frame: av.AudioFrame) -> npt.NDArray[np.int16]:
    """An s16 or s16p frame's samples, (channels, samples): a view of one channel's
    memory, or one copy of two."""
    count, channels = frame.samples, frame.layout.nb_channels
    if frame.format.is_planar:
        planes = [_int16_view(plane, count) for plane in frame.planes]
        return planes[0][None, :] if channels == 1 else np.stack(planes)
    # Interleaved: one copy to planar, or every reduction over it strides (~20x slower).
    interleaved = _int16_view(frame.planes[0], count * channels)
    return np.ascontiguousarray(interleaved.reshape(count, channels).T)


def _int16_view(plane: av.audio.plane.AudioPlane, count: int) -> npt.NDArray[np.int16]:
    # The plane's buffer may be padded beyond its samples: ``count`` says where they end.
    return np.frombuffer(memoryview(plane), dtype=np.int16, count=count)


def _declared_duration(container: InputContainer, stream: AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None
