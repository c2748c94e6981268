"""Reading requests: the JSON body, the recording id in the path, and the search's query.

Every rule here is also stated in the OpenAPI document, which reads its limits from the
names defined here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web

from retrieval.errors import BadRequest, NotFound, Unprocessable
from storage import RecordingView, SearchQuery, UnlinkedRecording, whole_number

MAX_JSON_BODY = 4096
REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}")
"""A referral reference as the referral system writes it."""
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_LABEL = 128
"""The longest referral, team or agent a search may name."""
SEARCH_PARAMETERS = (
    "referral",
    "team",
    "agent",
    "started_after",
    "started_before",
    "cursor",
    "limit",
)


async def json_object(request: web.Request, shape: str) -> dict[str, Any]:
    """The request's small JSON object body; Unprocessable naming ``shape`` otherwise."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise Unprocessable(f"the request body is over {MAX_JSON_BODY} bytes")
    raw = await request.content.read(MAX_JSON_BODY + 1)
    if len(raw) > MAX_JSON_BODY:
        raise Unprocessable(f"the request body is over {MAX_JSON_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Unprocessable(f"send JSON: {shape}") from None
    if not isinstance(body, dict):
        raise Unprocessable(f"send JSON: {shape}")
    return body


def recording_id_from(request: web.Request) -> uuid.UUID:
    """The recording id in the path; a malformed one is as missing as any other."""
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such recording") from None


def referral_from(request: web.Request) -> str:
    """The referral reference in the path; BadRequest unless it has the reference's shape."""
    reference = request.match_info["ref"]
    if not REFERENCE.fullmatch(reference):
        raise BadRequest("a referral reference is 1-64 letters, digits, / _ . -")
    return reference


def search_query(params: Mapping[str, str], teams: frozenset[str] | None) -> SearchQuery:
    """The search a query string asks for, within ``teams``; BadRequest when malformed."""
    unknown = set(params) - set(SEARCH_PARAMETERS)
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}")
    limit = _limit(params.get("limit"))
    return SearchQuery(
        teams=teams,
        referral=_label(params, "referral"),
        team=_label(params, "team"),
        agent=_label(params, "agent"),
        started_after=_time(params, "started_after"),
        started_before=_time(params, "started_before"),
        after=cursor_position(params.get("cursor")),
        limit=limit,
    )


def cursor_after(view: RecordingView | UnlinkedRecording) -> str:
    """The cursor to the page that follows ``view``: opaque to clients."""
    raw = json.dumps([view.started_at.isoformat(), str(view.id)]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    limit = whole_number(text)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def _label(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not (0 < len(value) <= MAX_LABEL and value.isprintable()):
        raise BadRequest(f"{name} must be 1 to {MAX_LABEL} printable characters")
    return value


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    """An RFC 3339 time with a zone, or a date (``2026-12-01``) meaning that day's start
    in UTC: a person searching by day types a day, as they do for a hold's review date."""
    value = params.get(name)
    if value is None:
        return None
    wrong = f"{name} must be a date (2026-12-01) or an RFC 3339 time with a time zone"
    if len(value) > 40:
        raise BadRequest(wrong)
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(wrong) from None
    if moment.tzinfo is None:
        raise BadRequest(wrong)
    return moment


def cursor_position(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """Where a page issued with ``cursor_after`` ended; BadRequest for any other text."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, recording_id = json.loads(raw)
        moment = datetime.fromisoformat(started)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, uuid.UUID(recording_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("the cursor is not one this service issued") from None
