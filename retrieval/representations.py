"""How the API shows a recording, its holds and its peaks as JSON.

Times are written as storage writes them (RFC 3339, UTC, with a ``Z``); the OpenAPI
document's schemas describe these shapes and a test checks real answers against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from retrieval.auth import Principal
from retrieval.browsers import playback_serves
from retrieval.policy import may_manage_holds
from storage import HoldView, Peaks, RecordingView, in_force, rfc3339

PEAK_SCALE = 127
"""Peaks are written as -PEAK_SCALE..PEAK_SCALE of full scale."""


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def recording_json(view: RecordingView, principal: Principal, now: datetime) -> dict[str, Any]:
    """A recording as the API shows it; hold reasons only to those who manage holds."""
    return {
        "id": str(view.id),
        "status": view.state,
        "source": view.source,
        "source_recording_id": view.source_recording_id,
        "started_at": _moment(view.started_at),
        "ended_at": _moment(view.ended_at),
        "direction": view.direction,
        "from": view.from_number,
        "to": view.to_number,
        "agent": view.agent,
        "team": view.team,
        "referrals": list(view.referrals),
        "audio": {
            "container": view.container,
            "codec": view.codec,
            "sample_rate": view.sample_rate,
            "channels": view.channels,
            "duration_s": view.duration_s,
            "declared_duration_s": view.declared_duration_s,
            # Kept although damaged: what was wrong, for whoever relies on it as evidence.
            "complete": not view.audio_problems,
            "problems": [{"code": code, "detail": detail} for code, detail in view.audio_problems],
        },
        "playback": {
            # The browser rendition: ready, preparing (after capture), failed, or none.
            "copy": view.playback.state,
            "serves": playback_serves(view),
            "ready_in_s": view.playback.ready_in_s,
        },
        "retention_deadline": _moment(view.retention_deadline),
        "holds": [
            {
                "type": hold.kind,
                "review_by": _moment(hold.review_by),
                "placed_at": _moment(hold.placed_at),
                **(
                    {"reason": hold.reason, "placed_by": hold.placed_by}
                    if may_manage_holds(principal)
                    else {}
                ),
            }
            for hold in in_force(view.holds, now)
        ],
        "extra": view.extra,
    }


def hold_json(hold: HoldView) -> dict[str, Any]:
    """A hold as shown to the person who placed or renewed it."""
    return {
        "type": hold.kind,
        "reason": hold.reason,
        "review_by": _moment(hold.review_by),
        "placed_by": hold.placed_by,
        "placed_at": _moment(hold.placed_at),
    }


def peaks_json(view: RecordingView, found: Peaks | None) -> dict[str, Any]:
    """Per channel, min and max per time bucket; ``not_computed`` for older recordings."""
    if found is None:
        return {"id": str(view.id), "status": "not_computed", "peaks": []}
    channels = [found.channel(index) for index in range(found.channels)]
    return {
        "id": str(view.id),
        "status": "ready",
        "per_second": found.per_second,
        "buckets": found.buckets,
        "duration_s": view.duration_s,
        "scale": PEAK_SCALE,
        "peaks": [{"min": low, "max": high} for low, high in channels],
    }
