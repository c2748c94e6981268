"""HTTP in and out for webhooks: turn requests into deliveries and results into JSON.

Statuses are chosen here, once, in the error middleware; nothing below knows HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from recorder.callbacks import hang_up_refused
from recorder.capture import PushCapture, PushDelivery, PushResult
from recorder.errors import (
    BodyStalled,
    Busy,
    InvalidMetadata,
    InvalidPart,
    MalformedUpload,
    NotMultipart,
    PayloadTooLarge,
    RecorderError,
    SenderHungUp,
    ShuttingDown,
    Unauthenticated,
    UndecodableAudio,
)
from recorder.senders import SenderAllowList, SenderNotAllowed
from recorder.telnyx import TelnyxCallbacks
from recorder.twilio import TwilioCallbacks
from recorder.vonage import VonageCallbacks
from storage import PAST_RETENTION, CaptureInProgress, Unavailable, rfc3339

log = logging.getLogger(__name__)

_READ_CHUNK = 1024 * 1024
RETRY_AFTER_S = 30
# A sender that goes quiet this long is holding a capture slot and a spool file for
# nothing (one that crawls is cut sooner, by the capture's pace: recorder/pace.py).
BODY_IDLE_TIMEOUT_S = 30.0

_STOPPING = "the service is shutting down; retry, another replica will answer"

_STATUS: dict[type[RecorderError], tuple[int, str]] = {
    Unauthenticated: (401, "unauthenticated"),
    # Written to a closed connection: the status is for the log, which says who hung up.
    SenderHungUp: (400, "sender_hung_up"),
    SenderNotAllowed: (403, "forbidden"),
    NotMultipart: (415, "unsupported_media_type"),
    BodyStalled: (408, "request_timeout"),
    PayloadTooLarge: (413, "payload_too_large"),
    MalformedUpload: (400, "malformed_body"),
    InvalidPart: (422, "invalid_part"),
    InvalidMetadata: (422, "invalid_metadata"),
    UndecodableAudio: (422, "undecodable_audio"),
}


def _webhook_of(request: web.Request) -> str:
    """Which webhook a request came to: ``push`` or the provider's name (from the route)."""
    if "source" in request.match_info:
        return "push"
    return request.path.rstrip("/").rsplit("/", 1)[-1][:16] or "webhook"


def json_error(status: int, error: str, detail: str, **headers: str) -> web.Response:
    """The one error shape of the API: ``{"error": code, "detail": text}``."""
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


@web.middleware
async def webhook_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map refusals and outages to statuses; never a 500 for bad input, never str(exc) of SDKs."""
    try:
        return await handler(request)
    except Busy as exc:
        code = "shutting_down" if isinstance(exc, ShuttingDown) else "busy"
        response = json_error(503, code, exc.detail, **{"Retry-After": "5"})
    except RecorderError as exc:
        status, code = next(_STATUS[kind] for kind in type(exc).__mro__ if kind in _STATUS)
        webhook = _webhook_of(request)
        log.info(
            "push refused" if webhook == "push" else f"{webhook} callback refused",
            extra={"webhook": webhook, "status": status, "error": code},
        )
        response = json_error(status, code, exc.detail)
    except (Unavailable, CaptureInProgress) as exc:
        log.warning("push deferred: %s", type(exc).__name__)
        response = json_error(
            503,
            "unavailable",
            "storage is unavailable or the same recording is being stored; retry later",
            **{"Retry-After": str(RETRY_AFTER_S)},
        )
    if not request.content.is_eof():
        # Refused before the body was read: close rather than read (and perhaps
        # decompress) gigabytes only to keep the connection alive.
        response.force_close()
    return response


def sender_check(senders: SenderAllowList) -> Middleware:
    """Middleware refusing a sender outside its webhook's allow-list, before its body."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = senders.peer(request.remote, request.headers.get("X-Forwarded-For"))
        senders.check(_webhook_of(request), request.match_info.get("source"), peer)
        return await handler(request)

    return check


class PushHandler:
    """``POST /webhooks/push/{source}``: the generic signed push of a finished recording."""

    def __init__(
        self, capture: PushCapture, *, stop_receiving: asyncio.Event, stop_storing: asyncio.Event
    ) -> None:
        self._capture = capture
        self._stop_receiving = stop_receiving
        self._stop_storing = stop_storing

    async def post(self, request: web.Request) -> web.Response:
        """Answer 201 once durable, 200 for a duplicate or a discard."""
        result = await self._capture_unless_stopped(
            PushDelivery(
                source=request.match_info["source"],
                timestamp=request.headers.get("X-Callrec-Timestamp"),
                signature=request.headers.get("X-Callrec-Signature"),
                preauth=request.headers.get("X-Callrec-Preauth"),
                content_type=request.headers.get("Content-Type", ""),
                content_encoding=request.headers.get("Content-Encoding"),
                content_length=request.content_length,
                body=_chunks(request, self._stop_receiving),
                arrived=lambda: (request.content.total_bytes, request.content.is_eof()),
            )
        )
        if result.status == "discarded":
            return web.json_response({"status": "discarded", "reason": PAST_RETENTION})
        body = {
            "id": str(result.recording_id),
            "status": "stored",
            "retention_deadline": _rfc3339_utc(result.retention_deadline),
        }
        return web.json_response(body, status=201 if result.status == "stored" else 200)

    async def _capture_unless_stopped(self, delivery: PushDelivery) -> PushResult:
        """The capture's result; ShuttingDown if the process stops before it is stored.

        Given up, the capture is cancelled and waited for: storage removes what it began
        (objects, the pending row) on the way out, so a 503 leaves nothing half-stored.
        """
        capture = asyncio.ensure_future(self._capture.capture(delivery))
        stopping = asyncio.ensure_future(self._stop_storing.wait())
        try:
            await asyncio.wait((capture, stopping), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            capture.cancel()
            raise
        finally:
            stopping.cancel()
        if not capture.done():
            capture.cancel()
            await asyncio.wait((capture,))
        if capture.cancelled():
            raise ShuttingDown(_STOPPING)
        return capture.result()  # stored after all, or the capture's own refusal


def _rfc3339_utc(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


async def _chunks(request: web.Request, stop_receiving: asyncio.Event) -> AsyncIterator[bytes]:
    """The raw body, as it arrives; BodyStalled when the sender stops, and ShuttingDown
    when the process stops receiving before the body is complete."""
    while True:
        chunk = await _next_chunk(request, stop_receiving)
        if not chunk:
            return
        yield chunk


async def _next_chunk(request: web.Request, stop_receiving: asyncio.Event) -> bytes:
    """The next piece of the body, whichever comes first of it, the idle timeout and the
    signal to stop receiving (bytes that did arrive win over the signal)."""
    if stop_receiving.is_set():
        raise ShuttingDown(_STOPPING)
    # What is already received is returned at once; only an empty buffer is waited on.
    buffered = await hang_up_refused(_buffered(request))
    if buffered:
        return buffered
    reading = asyncio.ensure_future(request.content.read(_READ_CHUNK))
    stopping = asyncio.ensure_future(stop_receiving.wait())
    try:
        done, _ = await asyncio.wait(
            (reading, stopping), timeout=BODY_IDLE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopping.cancel()
        if not reading.done():
            reading.cancel()
        elif not reading.cancelled():
            reading.exception()  # seen, so one this returns before awaiting is not logged
    if reading in done:
        return await hang_up_refused(reading)
    if stopping in done:
        raise ShuttingDown(_STOPPING)
    raise BodyStalled(f"no body bytes arrived for {BODY_IDLE_TIMEOUT_S:.0f} s")


async def _buffered(request: web.Request) -> bytes:
    """Body bytes received and not yet read, up to _READ_CHUNK; empty if none (or the end)."""
    return request.content.read_nowait(_READ_CHUNK)


def create_recorder_app(
    capture: PushCapture,
    *,
    twilio: TwilioCallbacks | None = None,
    telnyx: TelnyxCallbacks | None = None,
    vonage: VonageCallbacks | None = None,
    stop_receiving: asyncio.Event | None = None,
    stop_storing: asyncio.Event | None = None,
    senders: SenderAllowList | None = None,
) -> web.Application:
    """The webhooks sub-application, mounted under ``/webhooks/``.

    ``/twilio``, ``/telnyx`` and ``/vonage`` answer 404 unless that provider is configured.
    The process stopping sets ``stop_receiving`` (pushes whose body is still arriving are
    answered 503 with Retry-After; those received go on being stored), then
    ``stop_storing`` (captures still storing are given up and answered the same way).
    ``senders`` refuses, with 403 before the body is read, addresses outside a webhook's
    allow-list.
    """
    app = web.Application(middlewares=[webhook_errors, sender_check(senders or SenderAllowList())])
    push = PushHandler(
        capture,
        stop_receiving=stop_receiving or asyncio.Event(),
        stop_storing=stop_storing or asyncio.Event(),
    )
    app.router.add_post("/push/{source}", push.post)
    if twilio is not None:
        app.router.add_post("/twilio", twilio.post)
    if telnyx is not None:
        app.router.add_post("/telnyx", telnyx.post)
    if vonage is not None:
        app.router.add_post("/vonage", vonage.post)
    return app
