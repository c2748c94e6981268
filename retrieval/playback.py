"""Grants and playback: ask to hear a recording (purpose and reason), then stream it.

Audit before serve: the grant, with its reason, is in the trail before its link exists,
and every range is in the trail before its first byte leaves. If the trail cannot be
written, nothing is served.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Protocol

from aiohttp import web

from retrieval.access import RecordingAccess, refuse_if_gone
from retrieval.auth import Principal
from retrieval.errors import BadRequest, Forbidden, IntegrityProblem, NotFound, Unprocessable
from retrieval.grants import Grant, GrantSigner, InvalidGrant, check_reason
from retrieval.handlers import json_object, principal_of, recording_id_from
from retrieval.journal import PlaybackJournal
from retrieval.policy import may_download_original, purposes_for
from retrieval.ranges import ByteRange, requested_range
from storage import (
    ORIGINAL,
    PLAYBACK,
    AuditRecord,
    IntegrityFailure,
    KeyringError,
    OpenAudio,
    RecordingView,
)

_GRANT_SHAPE = '{"purpose": ..., "reason": ...}'
# How long a playability lookup is reused by the ranges that follow it.
VIEW_TTL_S = 2.0


class AudioOpener(Protocol):
    """What playback needs from storage: a verified, readable recording."""

    async def open(self, recording_id: uuid.UUID, kind: str) -> OpenAudio | None: ...


class PlaybackHandlers:
    """``POST /recordings/{id}/grants`` and ``GET|HEAD /play/{grant}``."""

    def __init__(
        self,
        *,
        access: RecordingAccess,
        audio: AudioOpener,
        signer: GrantSigner,
        journal: PlaybackJournal,
        grant_lifetime: timedelta,
        public_url: str | None,
    ) -> None:
        self._access = access
        self._queries = access.queries
        self._audit = access.audit
        self._clock = access.clock
        self._audio = audio
        self._signer = signer
        self._journal = journal
        self._views: dict[uuid.UUID, tuple[float, RecordingView]] = {}
        self._lifetime = grant_lifetime
        self._public_url = public_url

    async def grant(self, request: web.Request) -> web.Response:
        """Issue a short-lived audio link for one stated purpose and reason."""
        principal = principal_of(request)
        view = await self._access.visible(principal, recording_id_from(request), "recording.grant")
        purpose, reason = await _purpose_and_reason(request)
        if purpose not in purposes_for(principal):
            await self._access.deny(principal, "recording.grant", view.id, "purpose", purpose)
            raise Forbidden(f"this role may not ask to hear recordings for {purpose!r}")
        grant = Grant(
            grant_id=uuid.uuid4(),
            recording_id=view.id,
            actor=principal.actor,
            purpose=purpose,
            expires_at=self._clock() + self._lifetime,
        )
        await self._audit.record(
            AuditRecord(
                actor=principal.actor,
                action="recording.grant",
                recording_id=view.id,
                purpose=purpose,
                details={
                    "grant": str(grant.grant_id),
                    "reason": reason,
                    "expires_at": grant.expires_at.isoformat(),
                },
            )
        )
        base = self._public_url or str(request.url.origin())
        body = {
            "audio_url": f"{base}/api/v1/play/{self._signer.issue(grant)}",
            "expires_at": grant.expires_at.isoformat().replace("+00:00", "Z"),
        }
        return web.json_response(body, status=201)

    async def play(self, request: web.Request) -> web.StreamResponse:
        """The recording's audio, whole or one range, for the holder of a valid grant."""
        principal = principal_of(request)
        variant = request.query.get("variant", "playback")
        if variant not in {"playback", "original"}:
            raise BadRequest("variant is playback or original")
        grant = await self._valid_grant(principal, request.match_info["grant"])
        download = variant == "original"
        if download and not may_download_original(principal):
            await self._access.deny(principal, "recording.download", grant.recording_id, "role")
            raise Forbidden("this role may play recordings but not download the original")
        view = await self._playable(grant.recording_id)
        try:
            audio = await self._audio.open(view.id, ORIGINAL if download else PLAYBACK)
        except (IntegrityFailure, KeyringError):
            await self._audit.record(
                AuditRecord(
                    actor=principal.actor,
                    action="recording.integrity_failure",
                    outcome="error",
                    recording_id=view.id,
                    details={"grant": str(grant.grant_id)},
                )
            )
            raise IntegrityProblem("the stored recording failed its integrity checks") from None
        if audio is None:
            raise NotFound("no such recording")
        info = audio.info
        asked = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range != info.etag:
            asked = None  # the client holds another version: send it all
        byte_range = requested_range(asked, info.size)
        span = byte_range or ByteRange(0, info.size)
        response = web.StreamResponse(status=206 if byte_range else 200)
        response.headers.update(
            {
                "Accept-Ranges": "bytes",
                "ETag": info.etag,
                "Content-Type": info.content_type,
                "Content-Length": str(span.length),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            }
        )
        if byte_range is not None:
            response.headers["Content-Range"] = byte_range.content_range(info.size)
        if download:
            extension = info.content_type.rpartition("/")[2].removeprefix("x-")
            response.headers["Content-Disposition"] = (
                f'attachment; filename="{view.id}.{extension}"'
            )
        if request.method == "HEAD":
            await response.prepare(request)
            return response
        seconds = _seconds(span, info.size, view.duration_s)
        if download:
            # Downloads are rare and each is its own act: audited one by one, before serving.
            await self._audit.record(
                AuditRecord(
                    actor=principal.actor,
                    action="recording.download",
                    recording_id=view.id,
                    purpose=grant.purpose,
                    details={"grant": str(grant.grant_id), "start": span.start, "end": span.end},
                )
            )
        else:
            # The session's first range is audited before its first byte (if that write
            # fails, nothing is served); the ranges are written in summary as it goes.
            await self._journal.start(
                grant.grant_id, actor=principal.actor, recording_id=view.id, purpose=grant.purpose
            )
            await self._journal.played(grant.grant_id, span.start, span.end, seconds)
        await response.prepare(request)
        async for chunk in audio.stream(span.start, span.end):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _playable(self, recording_id: uuid.UUID) -> RecordingView:
        """The recording, if it may still be played; looked up at most every VIEW_TTL_S.

        The deadline is compared with the clock on every request, so the cache never lets
        a recording play past it; an erasure is seen within VIEW_TTL_S.
        """
        now = time.monotonic()
        kept = self._views.get(recording_id)
        if kept is None or now - kept[0] >= VIEW_TTL_S:
            view = await self._queries.get(recording_id)
            if view is None:
                raise NotFound("no such recording")
            if len(self._views) > 1024:
                self._views.clear()
            self._views[recording_id] = (now, view)
            kept = (now, view)
        refuse_if_gone(kept[1], self._clock())
        return kept[1]

    async def _valid_grant(self, principal: Principal, token: str) -> Grant:
        try:
            grant = self._signer.open(token, now=self._clock())
        except InvalidGrant as exc:
            await self._access.deny(principal, "recording.play", None, "invalid_grant", exc.detail)
            raise
        if grant.actor != principal.actor:
            await self._access.deny(
                principal, "recording.play", grant.recording_id, "another_person"
            )
            raise InvalidGrant("the grant belongs to someone else")
        if grant.purpose not in purposes_for(principal):
            await self._access.deny(principal, "recording.play", grant.recording_id, "purpose")
            raise InvalidGrant("this role may no longer use the grant's purpose")
        return grant


async def _purpose_and_reason(request: web.Request) -> tuple[str, str]:
    body = await json_object(request, _GRANT_SHAPE)
    if not isinstance(body.get("purpose"), str):
        raise Unprocessable(f"send JSON: {_GRANT_SHAPE}")
    try:
        reason = check_reason(body.get("reason"))
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    return body["purpose"], reason


def _seconds(span: ByteRange, size: int, duration_s: float | None) -> tuple[float, float] | None:
    # Which seconds were heard, so an auditor need not do byte arithmetic; exact for
    # constant-rate audio (WAV), close for the rest.
    if not duration_s or not size:
        return None
    return (round(span.start / size * duration_s, 2), round(span.end / size * duration_s, 2))
