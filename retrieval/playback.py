"""``POST /recordings/{id}/grants`` and ``GET|HEAD /play/{grant}``: HTTP around listening.

Audit before serve: the grant, with its reason, is in the trail before its link exists,
and every range is on the record before its first byte leaves (see retrieval.listening,
which makes every decision about a play; this module reads the request and writes the
answer, Range semantics included).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Final

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.errors import (
    AnswerBrokenOff,
    BadRequest,
    Forbidden,
    IntegrityProblem,
    Unprocessable,
)
from retrieval.grants import Grant, GrantSigner, check_reason
from retrieval.listening import Hearing, Listening
from retrieval.middleware import principal_of
from retrieval.parsing import json_object, recording_id_from
from retrieval.policy import purposes_for
from retrieval.ranges import ByteRange, requested_range
from storage import AuditRecord, IntegrityFailure, ObjectMissing, rfc3339

_GRANT_SHAPE = '{"purpose": ..., "reason": ...}'
GRANT_PARAMETER: Final = "grant"
"""The play route's path parameter: the grant itself, which is all it takes to listen."""
CAPABILITY_PARAMETERS: Final = frozenset({GRANT_PARAMETER})
"""Path parameters whose value is a permission: logs show a digest of them, never them."""
VARIANTS = ("playback", "original")
"""What ``?variant=`` may ask for: the browser rendition (default) or the original file."""


class PlaybackHandlers:
    """Grants for a stated purpose and reason, and the audio they open."""

    def __init__(
        self,
        *,
        access: RecordingAccess,
        listening: Listening,
        signer: GrantSigner,
        grant_lifetime: timedelta,
        public_url: str | None,
    ) -> None:
        self._access = access
        self._listening = listening
        self._signer = signer
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
            expires_at=self._access.clock() + self._lifetime,
        )
        await self._access.audit.record(
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
            "expires_at": rfc3339(grant.expires_at),
        }
        return web.json_response(body, status=201)

    async def play(self, request: web.Request) -> web.StreamResponse:
        """The recording's audio, whole or one range, for the holder of a valid grant."""
        variant = request.query.get("variant", VARIANTS[0])
        if variant not in VARIANTS:
            raise BadRequest("variant is playback or original")
        token = request.match_info[GRANT_PARAMETER]
        hearing = await self._listening.open(
            principal_of(request), token, download=variant == "original"
        )
        info = hearing.audio.info
        asked = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range != info.etag:
            asked = None  # the client holds another version: send it all
        byte_range = requested_range(asked, info.size)
        span = byte_range or ByteRange(0, info.size)
        response = web.StreamResponse(status=206 if byte_range else 200)
        response.headers.update(_audio_headers(hearing, span))
        if byte_range is not None:
            response.headers["Content-Range"] = byte_range.content_range(info.size)
        if request.method == "HEAD":
            await response.prepare(request)
            return response
        await self._listening.hear(hearing, span.start, span.end)
        pieces = hearing.audio.stream(span.start, span.end)
        try:
            # The first piece is read before the headers go: a range whose audio fails
            # its checks at once is still answered with a plain 500.
            piece = await anext(pieces, b"")
        except (IntegrityFailure, ObjectMissing):
            await self._listening.broken_off(hearing, span.start, span.end, 0)
            raise IntegrityProblem("the stored recording failed its integrity checks") from None
        await response.prepare(request)
        sent = 0
        try:
            while piece:
                await response.write(piece)
                sent += len(piece)
                piece = await anext(pieces, b"")
        except (IntegrityFailure, ObjectMissing):
            # Headers and some audio are out: no second answer can follow. The connection
            # is dropped (see config.app's request context), so a player sees a cut, never
            # an error page spliced into the audio or a body that never ends.
            await self._listening.broken_off(hearing, span.start, span.end, sent)
            raise AnswerBrokenOff("the stored recording failed its checks mid-answer") from None
        await response.write_eof()
        return response


def _audio_headers(hearing: Hearing, span: ByteRange) -> dict[str, str]:
    info = hearing.audio.info
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": info.etag,
        "Content-Type": info.content_type,
        "Content-Length": str(span.length),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if hearing.download:
        extension = file_extension(info.content_type)
        headers["Content-Disposition"] = (
            f'attachment; filename="{hearing.recording.id}.{extension}"'
        )
    return headers


# The extension people and players expect for each media type a recording is stored as:
# the subtype is not it ("audio/mpeg" is an .mp3, "audio/basic" an .au).
FILE_EXTENSIONS: Final = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/flac": "flac",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
    "audio/basic": "au",
}


def file_extension(content_type: str) -> str:
    """The file name extension for a download of this media type (``bin`` if unknown)."""
    return FILE_EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "bin")


async def _purpose_and_reason(request: web.Request) -> tuple[str, str]:
    body = await json_object(request, _GRANT_SHAPE)
    if not isinstance(body.get("purpose"), str):
        raise Unprocessable(f"send JSON: {_GRANT_SHAPE}")
    try:
        reason = check_reason(body.get("reason"))
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    return body["purpose"], reason
