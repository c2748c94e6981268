"""Telnyx's ``call.recording.saved`` webhook: check it, and queue the fetch before answering.

``POST /webhooks/telnyx`` with Telnyx's JSON event, signed with Ed25519 over
``<telnyx-timestamp>|<raw body>`` and no older than 300 s. The webhook URL's query may
carry ``referral``, ``team`` and ``agent``, as for Twilio. The recording URLs Telnyx sends
are pre-signed storage URLs, short-lived: the fetch is queued at once and answered 200
once committed. ``call.recording.error`` is recorded; other events are acknowledged.
Telnyx's copy is deleted through its API once stored, when an API key is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from recorder.callbacks import Intake, call_labels, event_json, iso_instant
from recorder.errors import InvalidMetadata
from recorder.fetch_worker import DELETE_URL
from recorder.telnyx_signature import TelnyxSignature

PROVIDER = "telnyx"
_ID = re.compile(r"[A-Za-z0-9-]{2,64}")


@dataclass(frozen=True)
class TelnyxAccount:
    """The account whose events are accepted, and how its recordings are fetched."""

    signature: TelnyxSignature
    media_format: str = "wav"
    # The API base for deleting Telnyx's copy, or None to leave it.
    delete_base: str | None = None


class TelnyxCallbacks:
    """Checks and queues Telnyx recording events."""

    def __init__(self, *, account: TelnyxAccount, intake: Intake) -> None:
        self._account = account
        self._intake = intake

    async def post(self, request: web.Request) -> web.Response:
        """200 once queued (or recorded); 401 unsigned or stale, 413/415/422 otherwise."""
        body = await self._intake.read_body(request, "application/json")
        self._account.signature.verify(
            request.headers.get("telnyx-timestamp"),
            request.headers.get("telnyx-signature-ed25519"),
            body,
            now=self._intake.clock(),
        )
        data = _event(body)
        kind = data.get("event_type")
        given = data.get("payload")
        payload: dict[str, Any] = given if isinstance(given, dict) else {}
        if kind == "call.recording.error":
            reason = payload.get("reason") or payload.get("result") or ""
            return await self._intake.not_recorded(
                str(data.get("id", ""))[:64], "error", reason=str(reason)[:200]
            )
        if kind != "call.recording.saved":
            return web.json_response({"status": "ignored"})
        recording_id = payload.get("recording_id")
        external = recording_id if isinstance(recording_id, str) else data.get("id")
        if not isinstance(external, str) or not _ID.fullmatch(external):
            raise InvalidMetadata("the event has no usable recording or event id")
        url = self._media_url(payload)
        if url is None or not self._intake.url_allowed(url):
            await self._intake.refuse_url(
                external, "recording_urls holds no URL on the configured Telnyx storage"
            )
        details = _details(payload, request.query)
        if self._account.delete_base is not None and isinstance(recording_id, str):
            details[DELETE_URL] = f"{self._account.delete_base}/v2/recordings/{recording_id}"
        return await self._intake.queue(external, url, details)

    def _media_url(self, payload: dict[str, Any]) -> str | None:
        urls = payload.get("recording_urls")
        if not isinstance(urls, dict):
            return None
        preferred = urls.get(self._account.media_format)
        fallback = next((value for value in urls.values() if isinstance(value, str)), None)
        chosen = preferred if isinstance(preferred, str) else fallback
        return chosen if isinstance(chosen, str) and len(chosen) <= 2048 else None


def _event(body: bytes) -> dict[str, Any]:
    document = event_json(body)
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise InvalidMetadata("the event has no data object")
    return data


def _details(payload: dict[str, Any], query: Any) -> dict[str, Any]:
    details: dict[str, Any] = call_labels(query)
    started = iso_instant(payload.get("recording_started_at"))
    ended = iso_instant(payload.get("recording_ended_at"))
    if started is not None:
        details["started_at"] = started.isoformat()
        if ended is not None and 0 <= (ended - started).total_seconds() <= 24 * 3600:
            details["duration_s"] = int((ended - started).total_seconds())
    if payload.get("channels") in ("single", "dual"):
        details["channels"] = 1 if payload["channels"] == "single" else 2
    session = payload.get("call_session_id")
    if isinstance(session, str):
        details["call_sid"] = session[:64]
    return details
