"""What every provider's callback handler shares: reading a small signed body, queueing
the fetch (answered only once committed), refusing a URL it must not fetch, recording a
recording that never was, how a callback URL labels a call, how event times are read."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, Protocol

from aiohttp import web

from recorder.errors import InvalidMetadata, NotMultipart, PayloadTooLarge, SenderHungUp
from storage import AuditRecord, QueuedFetch

MAX_CALLBACK_BYTES = 64 * 1024
# No provider's event nests deeper than a handful of levels; Python's parser recurses once
# per level, so a signed body of 30,000 brackets would otherwise end in RecursionError.
MAX_EVENT_NESTING = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))

_REFERRAL = re.compile(r"[A-Za-z0-9/_.-]{1,64}")
_LABEL = re.compile(r"[A-Za-z0-9._ -]{1,128}")


def event_json(body: bytes) -> Any:
    """A callback's body as JSON; InvalidMetadata if it is not, or nests deeper than
    ``MAX_EVENT_NESTING``, checked before the parser sees it."""
    depth = 0
    for bracket in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if bracket in b"[{" else -1
        if depth > MAX_EVENT_NESTING:
            raise InvalidMetadata(f"the event nests deeper than {MAX_EVENT_NESTING} levels")
    try:
        return json.loads(body)
    except RecursionError:  # only if the scan above is wrong; never a 500 for a body
        raise InvalidMetadata("the event nests too deeply") from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidMetadata("the event is not JSON") from None


async def hang_up_refused(reading: Awaitable[bytes]) -> bytes:
    """The body bytes ``reading`` gives; SenderHungUp if the connection closed under it."""
    try:
        return await reading
    except ConnectionResetError:
        raise SenderHungUp("the sender hung up before the body was complete") from None


class FetchJobs(Protocol):
    """Where a callback's fetch is queued (storage's FetchQueue)."""

    async def enqueue(
        self, *, provider: str, external_id: str, url: str, details: dict[str, Any], actor: str
    ) -> QueuedFetch: ...


class CallbackAudit(Protocol):
    """Where a callback that needs no fetch is recorded."""

    async def record(self, record: AuditRecord) -> None: ...


def call_labels(query: Any) -> dict[str, Any]:
    """``referral`` (repeatable), ``team`` and ``agent`` from a webhook URL's query.

    Platforms echo the callback URL they were given, so this is how a call is linked to
    a referral at the moment it is recorded. Values that do not look like labels are left
    out rather than refused: the recording matters more than its label.
    """
    labels: dict[str, Any] = {}
    referrals = [value for value in query.getall("referral", []) if _REFERRAL.fullmatch(value)]
    if referrals:
        labels["referrals"] = referrals[:20]
    for name in ("team", "agent"):
        value = query.get(name)
        if value is not None and _LABEL.fullmatch(value):
            labels[name] = value
    return labels


def iso_instant(value: object) -> datetime | None:
    """An ISO 8601 time with a zone (``Z`` accepted) as aware UTC, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class Intake:
    """One provider's way into the fetch queue, shared by its webhook handler."""

    provider: str
    jobs: FetchJobs
    audit: CallbackAudit
    url_allowed: Callable[[str], bool]
    clock: Callable[[], datetime]
    wake: Callable[[], None]

    @property
    def actor(self) -> str:
        return f"source:{self.provider}"

    async def read_body(self, request: web.Request, content_type: str) -> bytes:
        """The raw body, of the one media type this provider sends, at most 64 KiB."""
        if request.content_type != content_type:
            raise NotMultipart(f"a {self.provider} callback is {content_type}")
        limit = MAX_CALLBACK_BYTES
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"a callback is at most {limit} bytes")
        body = await hang_up_refused(request.content.read(limit + 1))
        if len(body) > limit:
            raise PayloadTooLarge(f"a callback is at most {limit} bytes")
        return body

    async def refuse_url(self, external_id: str, detail: str) -> NoReturn:
        """Audit a signed callback naming a URL the service will not fetch, and refuse it.

        A signed callback pointing elsewhere means a leaked secret or a misconfiguration:
        either way someone should look, so it is in the trail.
        """
        await self.audit.record(
            AuditRecord(
                actor=self.actor,
                action="fetch.refused",
                outcome="deny",
                details={"provider": self.provider, "id": external_id, "reason": "off_origin"},
            )
        )
        raise InvalidMetadata(detail)

    async def not_recorded(self, external_id: str, status: str, **details: str) -> web.Response:
        """Record a recording the provider reports it could not make; nothing is fetched."""
        await self.audit.record(
            AuditRecord(
                actor=self.actor,
                action="recording.not_recorded",
                outcome="allow" if status == "absent" else "error",
                details={"provider": self.provider, "id": external_id, "status": status} | details,
            )
        )
        return web.json_response({"status": status})

    async def queue(self, external_id: str, url: str, details: dict[str, Any]) -> web.Response:
        """Commit the fetch job (or find the one already queued, reviving it if it was
        dead-lettered), then answer 200.

        A callback that does not say when the call started is taken to have arrived as
        it ended: the start is estimated from its duration, and marked as estimated.
        """
        if "started_at" not in details:
            duration = details.get("duration_s")
            seconds = duration if isinstance(duration, int) else 0
            details["started_at"] = (self.clock() - timedelta(seconds=seconds)).isoformat()
            details["started_at_estimated"] = True
        queued = await self.jobs.enqueue(
            provider=self.provider,
            external_id=external_id,
            url=url,
            details=details,
            actor=self.actor,
        )
        self.wake()
        # A job an operator discarded stays given up: the answer says so, not "queued".
        status = "discarded" if queued.state == "discarded" else "queued"
        return web.json_response({"status": status, "job": str(queued.id)})
