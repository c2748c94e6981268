"""What a browser can play, and so what the playback link serves before a recording's
rendition is ready.

A recording is acknowledged once its original is stored; its Opus rendition follows
within seconds to minutes (queued work). Meanwhile, an original that every current
browser plays (Chromium, Firefox and Safari alike) is served by the playback link as it
is; any other (mu-law or A-law WAV, GSM, Ogg, AMR in MP4...) would only fail in the
player, so the link answers 503 with the rendition's expected wait instead, and the page
says the copy is being prepared and loads it when it is.
"""

from __future__ import annotations

from storage import CopyState, RecordingView

# (container, codec) as the capture's check names them (FFmpeg's names).
PLAYED_EVERYWHERE = frozenset(
    {
        ("wav", "pcm_s16le"),
        ("wav", "pcm_u8"),
        ("mp3", "mp3"),
        ("mp3", "mp3float"),
        ("flac", "flac"),
        ("mp4", "aac"),
        ("matroska", "opus"),
    }
)
SHORTEST_RETRY_S = 2
"""The least a client is told to wait before asking for a copy in preparation again."""


def plays_in_browsers(view: RecordingView) -> bool:
    """Whether the recording's original plays in every current browser as it is."""
    return (view.container, view.codec) in PLAYED_EVERYWHERE


def playback_serves(view: RecordingView) -> str | None:
    """What the playback link serves now: "rendition", "original", or None (it answers
    503 until the rendition being prepared is ready)."""
    copy = view.playback.state
    if copy == CopyState.READY:
        return "rendition"
    if copy == CopyState.PREPARING and not plays_in_browsers(view):
        return None
    # Preparing with a playable original, or never to be made (older recordings, or given
    # up): the original, as before renditions existed.
    return "original"


def retry_after_s(view: RecordingView) -> int:
    """Whole seconds to wait for a copy in preparation: its estimate, at least a little."""
    estimate = view.playback.ready_in_s or 0.0
    return max(SHORTEST_RETRY_S, int(estimate + 0.999))
