"""``GET /api/v1/audit``: the audit trail for those who check it, filtered and paged.

Reading the trail is itself recorded in it, so who looked at whose access is on the
record too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from retrieval.access import AuditSink
from retrieval.errors import BadRequest, Forbidden
from retrieval.middleware import principal_of
from retrieval.policy import may_read_audit
from storage import AuditEntry, AuditQuery, AuditRecord, rfc3339, whole_number

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_ACTOR = 200
MAX_AFTER = 2**62
PARAMETERS = frozenset({"recording", "actor", "action", "after", "before", "order", "limit"})
ORDERS = ("oldest", "newest")
"""Oldest first pages forward with ``after``; newest first pages back with ``before``."""
ACTION = re.compile(r"[a-z_]{1,32}\.[a-z_]{1,32}")
"""What an audit action looks like: ``area.verb``."""


class AuditReader(Protocol):
    """Where the trail is read from."""

    async def events(self, query: AuditQuery) -> list[AuditEntry]: ...


class AuditHandlers:
    """The trail, oldest first (``after``: the last seq seen) or newest first (``before``)."""

    def __init__(self, reader: AuditReader, audit: AuditSink) -> None:
        self._reader = reader
        self._audit = audit

    async def events(self, request: web.Request) -> web.Response:
        """``GET /api/v1/audit?recording=&actor=&action=&after=&before=&order=&limit=``."""
        principal = principal_of(request)
        if not may_read_audit(principal):
            await self._audit.record(
                AuditRecord(
                    actor=principal.actor,
                    action="audit.read",
                    outcome="deny",
                    details={"reason": "role"},
                )
            )
            raise Forbidden("this role does not read the audit trail")
        query = _query(request.query)
        # One more than a page, to know whether another follows.
        found = await self._reader.events(
            AuditQuery(
                recording_id=query.recording_id,
                actor=query.actor,
                action=query.action,
                after_seq=query.after_seq,
                before_seq=query.before_seq,
                newest_first=query.newest_first,
                limit=query.limit + 1,
            )
        )
        page = found[: query.limit]
        await self._audit.record(
            AuditRecord(
                actor=principal.actor,
                action="audit.read",
                recording_id=query.recording_id,
                details={"filters": dict(request.query), "results": len(page)},
            )
        )
        # The cursor to the next page goes with the order: the last seq shown either way.
        cursor = page[-1].seq if len(found) > query.limit else None
        return web.json_response(
            {
                "events": [_event_json(entry) for entry in page],
                "next_after": None if query.newest_first else cursor,
                "next_before": cursor if query.newest_first else None,
            },
            headers={"Cache-Control": "no-store"},
        )


def _query(params: Mapping[str, str]) -> AuditQuery:
    unknown = set(params) - PARAMETERS
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}")
    recording_id = None
    if "recording" in params:
        try:
            recording_id = uuid.UUID(params["recording"])
        except ValueError:
            raise BadRequest("recording is a recording id (a UUID)") from None
    actor = params.get("actor")
    if actor is not None and not 0 < len(actor) <= MAX_ACTOR:
        raise BadRequest(f"actor is 1 to {MAX_ACTOR} characters")
    action = params.get("action")
    if action is not None and not ACTION.fullmatch(action):
        raise BadRequest("action looks like recording.grant")
    order = params.get("order", ORDERS[0])
    if order not in ORDERS:
        raise BadRequest("order is oldest or newest")
    return AuditQuery(
        recording_id=recording_id,
        actor=actor,
        action=action,
        after_seq=_whole(params.get("after"), "after", 0, MAX_AFTER, 0),
        before_seq=(
            None
            if params.get("before") is None
            else _whole(params.get("before"), "before", 1, MAX_AFTER, 0)
        ),
        newest_first=order == "newest",
        limit=_whole(params.get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT),
    )


def _whole(raw: str | None, name: str, low: int, high: int, default: int) -> int:
    if raw is None:
        return default
    number = whole_number(raw)
    if number is None or not low <= number <= high:
        raise BadRequest(f"{name} is a whole number from {low} to {high}")
    return number


def _event_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "occurred_at": rfc3339(entry.occurred_at),
        "actor": entry.actor,
        "action": entry.action,
        "recording_id": None if entry.recording_id is None else str(entry.recording_id),
        "purpose": entry.purpose,
        "outcome": entry.outcome,
        "details": entry.details,
    }
