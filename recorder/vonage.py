"""Vonage's recording event: check it, and queue the fetch before answering.

``POST /webhooks/vonage`` with the ``record`` event (JSON), signed as a Vonage signed
webhook: ``Authorization: Bearer <JWT>``, HS256 with the account's signature secret, its
``payload_hash`` the SHA-256 of the raw body, issued within five minutes. The recording is
fetched from ``recording_url`` (only Vonage's own hosts) with a fresh application JWT
(RS256, signed with the application's private key), as Vonage's API requires. The webhook
URL's query may carry ``referral``, ``team`` and ``agent``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from recorder.callbacks import Intake, call_labels, event_json, iso_instant
from recorder.errors import InvalidMetadata
from recorder.fetch_worker import DELETE_URL
from recorder.vonage_signature import VonageSignature

PROVIDER = "vonage"
APPLICATION_TOKEN_TTL_S = 900
_ID = re.compile(r"[A-Za-z0-9-]{2,64}")


def application_token(application_id: str, private_key_pem: str) -> Callable[[], str]:
    """A maker of the ``Authorization`` value Vonage's API wants: a fresh RS256 JWT."""
    # Loaded once, so a bad key fails at start-up rather than at the first fetch.
    key = jwt.api_jws.get_algorithm_by_name("RS256").prepare_key(private_key_pem)

    def make() -> str:
        now = int(time.time())
        claims = {
            "application_id": application_id,
            "iat": now,
            "exp": now + APPLICATION_TOKEN_TTL_S,
            "jti": str(uuid.uuid4()),
        }
        return "Bearer " + jwt.encode(claims, key, algorithm="RS256")

    return make


@dataclass(frozen=True)
class VonageAccount:
    """The signature secret events are checked with, and whether to delete Vonage's copy.

    Vonage's Voice API documents no deletion of recording files; where the account
    accepts a DELETE on the file's URL, ``delete_after_store`` sends one once the
    recording is stored (audited either way). Otherwise Vonage's copy lives under
    Vonage's own retention.
    """

    signature: VonageSignature
    delete_after_store: bool = False


class VonageCallbacks:
    """Checks and queues Vonage recording events."""

    def __init__(self, *, account: VonageAccount, intake: Intake) -> None:
        self._account = account
        self._intake = intake

    async def post(self, request: web.Request) -> web.Response:
        """200 once queued; 401 unsigned or stale, 413/415/422 for what is not an event."""
        body = await self._intake.read_body(request, "application/json")
        self._account.signature.verify(
            request.headers.get("Authorization"), body, now=self._intake.clock()
        )
        event = event_json(body)
        if not isinstance(event, dict):
            raise InvalidMetadata("the event is not a JSON object")
        url, external = event.get("recording_url"), event.get("recording_uuid")
        if url is None and external is None:
            return web.json_response({"status": "ignored"})  # another kind of event
        if not isinstance(external, str) or not _ID.fullmatch(external):
            raise InvalidMetadata("recording_uuid is missing or malformed")
        if not isinstance(url, str) or len(url) > 2048 or not self._intake.url_allowed(url):
            await self._intake.refuse_url(
                external, "recording_url is not on Vonage's configured hosts"
            )
        details = _details(event, request.query)
        if self._account.delete_after_store:
            details[DELETE_URL] = url
        return await self._intake.queue(external, url, details)


def _details(event: dict[str, Any], query: Any) -> dict[str, Any]:
    details: dict[str, Any] = call_labels(query)
    started, ended = iso_instant(event.get("start_time")), iso_instant(event.get("end_time"))
    if started is not None:
        details["started_at"] = started.isoformat()
        if ended is not None and 0 <= (ended - started).total_seconds() <= 24 * 3600:
            details["duration_s"] = int((ended - started).total_seconds())
    conversation = event.get("conversation_uuid")
    if isinstance(conversation, str):
        details["call_sid"] = conversation[:64]
    return details
