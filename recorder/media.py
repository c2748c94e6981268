"""Probing audio with PyAV: is it decodable audio, and what are its codec, rate, channels, length.

Blocking (FFmpeg does the work); callers use ``probe_audio`` through asyncio.to_thread.
This module is the only one that imports PyAV.
"""

from __future__ import annotations

from typing import BinaryIO

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer

from recorder.errors import UndecodableAudio
from storage import AudioFacts

# Containers telephony platforms and PBXs actually produce, recognised by their first
# bytes before FFmpeg sees the file: FFmpeg left to guess would try every demuxer it
# has, some of which open other files (concat) or follow playlists.
CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "matroska": "audio/webm",
    "mp4": "audio/mp4",
    "au": "audio/basic",
}
# Decoding this many packets proves the codec can read the stream.
_PACKETS_TO_DECODE = 50
# How far before the declared end the tail check starts, and how short of it a stream
# may end (the last packet of a lossy stream rarely ends on the exact declared sample).
_TAIL_S = 2.0
_END_TOLERANCE_S = 0.5


def sniff_format(head: bytes) -> str | None:
    """The FFmpeg demuxer for a file starting with ``head`` (16 bytes), or None."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b".snd":
        return "au"
    return None


def probe_audio(file: BinaryIO) -> AudioFacts:
    """Raise UndecodableAudio unless the file is decodable audio; return its facts.

    The format is recognised from the first bytes, then only that demuxer is used.
    Reads the start and the end, not the middle: the first packets are decoded, and the
    stream is checked to really run to the length its header declares. Only when there
    is no declared length, or the end is not where it should be, is the whole stream
    demuxed to find the true length, so an hour of audio probes in milliseconds.
    """
    demuxer = sniff_format(file.read(16))
    if demuxer is None:
        raise UndecodableAudio("not WAV, MP3, Ogg, FLAC, WebM/Matroska, MP4 or AU audio")
    file.seek(0)
    try:
        with av.open(file, mode="r", format=demuxer) as container:
            if not container.streams.audio:
                raise UndecodableAudio("the file has no audio stream")
            stream = container.streams.audio[0]
            if _decoded_frames(container, stream) == 0:
                raise UndecodableAudio("no audio frame could be decoded")
            declared = _declared_duration(container, stream)
            duration = None
            if declared is not None and _stream_reaches(container, stream, declared):
                duration = declared
            if duration is None:
                duration = _demuxed_duration(container, stream)
            codec = stream.codec_context
            return AudioFacts(
                container=demuxer,
                codec=codec.name,
                sample_rate=int(codec.sample_rate),
                channels=int(codec.layout.nb_channels),
                duration_s=round(duration, 3),
                content_type=CONTENT_TYPES[demuxer],
            )
    except UndecodableAudio:
        raise
    except (av.error.FFmpegError, ValueError, EOFError, OSError):
        # No detail from FFmpeg: what it says about a hostile file is nobody's business.
        raise UndecodableAudio("the audio does not decode") from None


def _decoded_frames(container: InputContainer, stream: AudioStream) -> int:
    frames = 0
    for index, packet in enumerate(container.demux(stream)):
        frames += len(packet.decode())
        if index + 1 >= _PACKETS_TO_DECODE:
            break
    return frames


def _declared_duration(container: InputContainer, stream: AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _stream_reaches(container: InputContainer, stream: AudioStream, declared: float) -> bool:
    """Seek near the declared end and check the packets really run up to it."""
    if stream.time_base is None or declared <= 0:
        return False
    target = max(0.0, declared - _TAIL_S)
    try:
        container.seek(int(target / stream.time_base), stream=stream, backward=True)
        end = _last_packet_end(container, stream)
    except (av.error.FFmpegError, ValueError, EOFError):
        return False
    return end is not None and end >= declared - _END_TOLERANCE_S


def _demuxed_duration(container: InputContainer, stream: AudioStream) -> float:
    container.seek(0, stream=stream)
    end = _last_packet_end(container, stream)
    if end is None:
        raise UndecodableAudio("the audio stream holds no packets")
    return end


def _last_packet_end(container: InputContainer, stream: AudioStream) -> float | None:
    end: float | None = None
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        finish = float((packet.pts + (packet.duration or 0)) * packet.time_base)
        end = finish if end is None else max(end, finish)
    return end
