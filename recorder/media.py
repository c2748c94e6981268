"""Probing audio with PyAV: is it decodable audio, and what are its codec, rate, channels, length.

Blocking (FFmpeg does the work); callers use ``probe_audio`` through asyncio.to_thread.
This module is the only one that imports PyAV.
"""

from __future__ import annotations

from typing import BinaryIO

import av
import av.error

from recorder.errors import UndecodableAudio
from storage import AudioFacts

# Containers telephony platforms and PBXs actually produce; anything else is refused
# rather than handed to every demuxer FFmpeg has.
CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "matroska,webm": "audio/webm",
    "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
    "au": "audio/basic",
}
# Decoding this many packets proves the codec can read the stream without paying for a
# full decode of an hour of audio; the rest is demuxed, which catches truncation.
_PACKETS_TO_DECODE = 50


def probe_audio(file: BinaryIO) -> AudioFacts:
    """Read the whole file once; raise UndecodableAudio unless it is decodable audio."""
    try:
        with av.open(file, mode="r") as container:
            format_name = container.format.name
            if format_name not in CONTENT_TYPES:
                raise UndecodableAudio(f"container {format_name!r} is not an accepted format")
            if not container.streams.audio:
                raise UndecodableAudio("the file has no audio stream")
            stream = container.streams.audio[0]
            decoded_frames = 0
            last_end = 0.0
            for index, packet in enumerate(container.demux(stream)):
                if packet.pts is not None and packet.duration and packet.time_base is not None:
                    last_end = max(
                        last_end, float((packet.pts + packet.duration) * packet.time_base)
                    )
                if index < _PACKETS_TO_DECODE:
                    decoded_frames += len(packet.decode())
            if decoded_frames == 0:
                raise UndecodableAudio("no audio frame could be decoded")
            codec = stream.codec_context
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None and stream.time_base is not None
                else last_end
            )
            return AudioFacts(
                container=format_name.split(",")[0],
                codec=codec.name,
                sample_rate=int(codec.sample_rate),
                channels=int(codec.layout.nb_channels),
                duration_s=round(max(duration, last_end), 3),
                content_type=CONTENT_TYPES[format_name],
            )
    except UndecodableAudio:
        raise
    except (av.error.FFmpegError, ValueError, EOFError, OSError) as exc:
        raise UndecodableAudio(f"the audio does not decode: {type(exc).__name__}") from None
