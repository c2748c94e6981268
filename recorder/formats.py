"""Which containers the service accepts, recognised by their first bytes.

FFmpeg left to guess would try every demuxer it has, some of which open other files
(concat) or follow playlists; a file is only ever opened with the one demuxer its
magic bytes name.
"""

from __future__ import annotations

# Containers telephony platforms and PBXs produce, and the media type of each.
CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "matroska": "audio/webm",
    "mp4": "audio/mp4",
    "au": "audio/basic",
}
NOT_AUDIO = "not audio: the file is not WAV, MP3, Ogg, FLAC, WebM/Matroska, MP4 or AU"


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


def wav_declared_seconds(head: bytes) -> float | None:
    """The length a WAV header claims, from its data chunk's size; None if it claims none.

    FFmpeg trims a WAV's data size to the file's real size, so a header promising an
    hour over five seconds of samples looks whole through it; the claim is read here.
    """
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    byte_rate = 0
    position = 12
    while position + 8 <= len(head):
        chunk, size = (
            head[position : position + 4],
            int.from_bytes(head[position + 4 : position + 8], "little"),
        )
        if chunk == b"fmt " and size >= 16 and position + 20 <= len(head):
            byte_rate = int.from_bytes(head[position + 16 : position + 20], "little")
        elif chunk == b"data":
            # 0 and all-ones are what streaming writers put before they know the size.
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None
            return size / byte_rate
        position += 8 + size + (size & 1)
    return None
