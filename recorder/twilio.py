"""Twilio's recording status callback: check it, and queue the fetch before answering.

``POST /webhooks/twilio`` with Twilio's form fields, signed with ``X-Twilio-Signature``
over ``CALLREC_PUBLIC_URL`` + the raw path and query + the sorted fields. The query may
carry ``referral``, ``team`` and ``agent`` (set on the callback URL when the recording is
started). ``completed`` queues a fetch of ``RecordingUrl`` (only from the configured
origin) and is answered 200 once the job is committed; ``absent`` and ``failed`` are
recorded and nothing is fetched; ``in-progress`` is acknowledged.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from recorder.callbacks import Intake, call_labels
from recorder.errors import InvalidMetadata, Unauthenticated
from recorder.fetch_worker import DELETE_URL
from recorder.signatures import TWILIO_REFUSAL
from recorder.twilio_signature import TwilioSignature
from storage import whole_number

PROVIDER = "twilio"
_SID = re.compile(r"[A-Za-z0-9-]{2,64}")
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class TwilioAccount:
    """The account whose callbacks are accepted, and how its recordings are fetched."""

    account_sid: str
    signature: TwilioSignature
    media_format: str = "wav"  # or "mp3": the extension asked of RecordingUrl
    delete_after_store: bool = True


class TwilioCallbacks:
    """Checks and queues Twilio recording callbacks."""

    def __init__(self, *, account: TwilioAccount, intake: Intake, public_url: str | None) -> None:
        self._account = account
        self._intake = intake
        self._public_url = public_url

    async def post(self, request: web.Request) -> web.Response:
        """200 once queued (or recorded); 401 unsigned, 413/415/422 for what is not a callback."""
        body = await self._intake.read_body(request, _FORM)
        try:
            fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise Unauthenticated(TWILIO_REFUSAL) from None
        base = self._public_url or f"{request.scheme}://{request.host}"
        # The URL as Twilio called it: the raw path and query, not a re-encoded one.
        url = base + request.raw_path
        signature = request.headers.get("X-Twilio-Signature")
        if not self._account.signature.valid(url, fields, signature):
            raise Unauthenticated(TWILIO_REFUSAL)
        form = dict(fields)
        if form.get("AccountSid") != self._account.account_sid:
            raise Unauthenticated(TWILIO_REFUSAL)
        status = form.get("RecordingStatus", "")
        sid = form.get("RecordingSid", "")
        if not _SID.fullmatch(sid):
            raise InvalidMetadata("RecordingSid is missing or malformed")
        if status in ("absent", "failed"):
            return await self._intake.not_recorded(
                sid, status, error_code=form.get("ErrorCode", "")[:16]
            )
        if status != "completed":
            return web.json_response({"status": "ignored"})
        recording_url = form.get("RecordingUrl", "")
        if not self._intake.url_allowed(recording_url):
            await self._intake.refuse_url(
                sid, "RecordingUrl is not on the configured Twilio origin"
            )
        details = _details(form, request.query)
        if self._account.delete_after_store:
            details[DELETE_URL] = f"{recording_url}.json"
        media_url = f"{recording_url}.{self._account.media_format}"
        return await self._intake.queue(sid, media_url, details)


def _details(form: dict[str, str], query: Any) -> dict[str, Any]:
    """What the callback says about the call, kept for the capture; checked, never trusted."""
    details: dict[str, Any] = {"call_sid": form.get("CallSid", "")[:64]}
    started = _rfc2822(form.get("RecordingStartTime"))
    if started is not None:
        details["started_at"] = started.isoformat()
    duration = whole_number(form.get("RecordingDuration"))
    if duration is not None and duration <= 24 * 3600:
        details["duration_s"] = duration
    channels = form.get("RecordingChannels", "")
    if channels in ("1", "2"):
        details["channels"] = int(channels)
    return details | call_labels(query)


def _rfc2822(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)
