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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl

from aiohttp import web

from recorder.errors import InvalidMetadata, NotMultipart, PayloadTooLarge, Unauthenticated
from recorder.signatures import REFUSAL
from recorder.twilio_signature import TwilioSignature
from storage import AuditRecord, QueuedFetch

PROVIDER = "twilio"
MAX_CALLBACK_BYTES = 64 * 1024
_SID = re.compile(r"[A-Za-z0-9-]{2,64}")
_REFERRAL = re.compile(r"[A-Za-z0-9/_.-]{1,64}")
_LABEL = re.compile(r"[A-Za-z0-9._ -]{1,128}")
_FORM = "application/x-www-form-urlencoded"


class FetchJobs(Protocol):
    """Where a callback's fetch is queued (storage's FetchQueue)."""

    async def enqueue(
        self, *, provider: str, external_id: str, url: str, details: dict[str, Any], actor: str
    ) -> QueuedFetch: ...


class CallbackAudit(Protocol):
    """Where a callback that needs no fetch is recorded."""

    async def record(self, record: AuditRecord) -> None: ...


@dataclass(frozen=True)
class TwilioAccount:
    """The account whose callbacks are accepted, and the media origin its URLs must use."""

    account_sid: str
    signature: TwilioSignature
    api_base: str


class TwilioCallbacks:
    """Checks and queues Twilio recording callbacks."""

    def __init__(
        self,
        *,
        account: TwilioAccount,
        jobs: FetchJobs,
        audit: CallbackAudit,
        url_allowed: Callable[[str], bool],
        public_url: str | None,
        wake: Callable[[], None],
    ) -> None:
        self._account = account
        self._jobs = jobs
        self._audit = audit
        self._url_allowed = url_allowed
        self._public_url = public_url
        self._wake = wake

    async def post(self, request: web.Request) -> web.Response:
        """200 once queued (or recorded); 401 unsigned, 413/415/422 for what is not a callback."""
        if request.content_type != _FORM:
            raise NotMultipart(f"a Twilio callback is {_FORM}")
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BYTES:
            raise PayloadTooLarge(f"a callback is at most {MAX_CALLBACK_BYTES} bytes")
        body = await request.content.read(MAX_CALLBACK_BYTES + 1)
        if len(body) > MAX_CALLBACK_BYTES:
            raise PayloadTooLarge(f"a callback is at most {MAX_CALLBACK_BYTES} bytes")
        try:
            fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise Unauthenticated(REFUSAL) from None
        base = self._public_url or f"{request.scheme}://{request.host}"
        # The URL as Twilio called it: the raw path and query, not a re-encoded one.
        url = base + request.raw_path
        if not self._account.signature.valid(
            url, fields, request.headers.get("X-Twilio-Signature")
        ):
            raise Unauthenticated(REFUSAL)
        form = dict(fields)
        if form.get("AccountSid") != self._account.account_sid:
            raise Unauthenticated(REFUSAL)
        status = form.get("RecordingStatus", "")
        sid = form.get("RecordingSid", "")
        if not _SID.fullmatch(sid):
            raise InvalidMetadata("RecordingSid is missing or malformed")
        if status in ("absent", "failed"):
            await self._audit.record(
                AuditRecord(
                    actor=f"source:{PROVIDER}",
                    action="recording.not_recorded",
                    outcome="error" if status == "failed" else "allow",
                    details={
                        "provider": PROVIDER,
                        "id": sid,
                        "status": status,
                        "error_code": form.get("ErrorCode", "")[:16],
                    },
                )
            )
            return web.json_response({"status": status})
        if status != "completed":
            return web.json_response({"status": "ignored"})
        recording_url = form.get("RecordingUrl", "")
        if not self._url_allowed(recording_url):
            await self._audit.record(
                AuditRecord(
                    actor=f"source:{PROVIDER}",
                    action="fetch.refused",
                    outcome="deny",
                    details={"provider": PROVIDER, "id": sid, "reason": "off_origin"},
                )
            )
            raise InvalidMetadata("RecordingUrl is not on the configured Twilio origin")
        queued = await self._jobs.enqueue(
            provider=PROVIDER,
            external_id=sid,
            url=recording_url,
            details=_details(form, request.query),
            actor=f"source:{PROVIDER}",
        )
        self._wake()
        return web.json_response({"status": "queued", "job": str(queued.id)})


def _details(form: dict[str, str], query: Any) -> dict[str, Any]:
    """What the callback says about the call, kept for the capture; checked, never trusted."""
    details: dict[str, Any] = {"call_sid": form.get("CallSid", "")[:64]}
    started = _rfc2822(form.get("RecordingStartTime"))
    if started is not None:
        details["started_at"] = started.isoformat()
    duration = form.get("RecordingDuration", "")
    if duration.isdigit() and int(duration) <= 24 * 3600:
        details["duration_s"] = int(duration)
    channels = form.get("RecordingChannels", "")
    if channels in ("1", "2"):
        details["channels"] = int(channels)
    referrals = [value for value in query.getall("referral", []) if _REFERRAL.fullmatch(value)]
    if referrals:
        details["referrals"] = referrals[:20]
    for name in ("team", "agent"):
        value = query.get(name)
        if value is not None and _LABEL.fullmatch(value):
            details[name] = value
    return details


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
