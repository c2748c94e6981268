"""HTTP in and out for webhooks: turn requests into deliveries and results into JSON.

Statuses are chosen here, once, in the error middleware; nothing below knows HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from recorder.capture import PushCapture, PushDelivery
from recorder.errors import (
    InvalidMetadata,
    InvalidPart,
    MalformedUpload,
    NotMultipart,
    PayloadTooLarge,
    RecorderError,
    Unauthenticated,
    UndecodableAudio,
)
from storage import CaptureInProgress, Unavailable

log = logging.getLogger(__name__)

_READ_CHUNK = 1024 * 1024
RETRY_AFTER_S = 30

_STATUS: dict[type[RecorderError], tuple[int, str]] = {
    Unauthenticated: (401, "unauthenticated"),
    NotMultipart: (415, "unsupported_media_type"),
    PayloadTooLarge: (413, "payload_too_large"),
    MalformedUpload: (400, "malformed_body"),
    InvalidPart: (422, "invalid_part"),
    InvalidMetadata: (422, "invalid_metadata"),
    UndecodableAudio: (422, "undecodable_audio"),
}


def json_error(status: int, error: str, detail: str, **headers: str) -> web.Response:
    """The one error shape of the API: ``{"error": code, "detail": text}``."""
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


@web.middleware
async def webhook_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map refusals and outages to statuses; never a 500 for bad input, never str(exc) of SDKs."""
    try:
        return await handler(request)
    except RecorderError as exc:
        status, code = _STATUS[type(exc)]
        log.info("push refused", extra={"status": status, "error": code})
        return json_error(status, code, exc.detail)
    except (Unavailable, CaptureInProgress) as exc:
        log.warning("push deferred: %s", type(exc).__name__)
        return json_error(
            503,
            "unavailable",
            "storage is unavailable or the same recording is being stored; retry later",
            **{"Retry-After": str(RETRY_AFTER_S)},
        )


class PushHandler:
    """``POST /webhooks/push/{source}``: the generic signed push of a finished recording."""

    def __init__(self, capture: PushCapture) -> None:
        self._capture = capture

    async def post(self, request: web.Request) -> web.Response:
        """Answer 201 once durable, 200 for a duplicate or a discard."""
        result = await self._capture.capture(
            PushDelivery(
                source=request.match_info["source"],
                timestamp=request.headers.get("X-Callrec-Timestamp"),
                signature=request.headers.get("X-Callrec-Signature"),
                content_type=request.headers.get("Content-Type", ""),
                content_length=request.content_length,
                body=_chunks(request),
            )
        )
        if result.status == "discarded":
            return web.json_response({"status": "discarded", "reason": "past_retention"})
        if result.recording_id is None or result.retention_deadline is None:
            raise RuntimeError("a stored or duplicate result carries an id and a deadline")
        body = {
            "id": str(result.recording_id),
            "status": "stored",
            "retention_deadline": result.retention_deadline.isoformat().replace("+00:00", "Z"),
        }
        return web.json_response(body, status=201 if result.status == "stored" else 200)


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        yield chunk


def create_recorder_app(capture: PushCapture) -> web.Application:
    """The webhooks sub-application, mounted under ``/webhooks/``."""
    app = web.Application(middlewares=[webhook_errors])
    push = PushHandler(capture)
    app.router.add_post("/push/{source}", push.post)
    return app
