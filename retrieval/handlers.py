"""HTTP in and out for people: authentication, errors, and the recordings endpoints.

Handlers parse, ask the policy, call storage through small protocols, and shape JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from retrieval.access import RecordingAccess, ReferralChanges
from retrieval.auth import Principal, TokenVerifier, bearer_token
from retrieval.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    IntegrityProblem,
    NotFound,
    RetrievalError,
    Unauthenticated,
    Unprocessable,
)
from retrieval.policy import (
    may_edit_referrals,
    may_manage_holds,
    may_read_retention,
    may_search,
    visible_teams,
)
from retrieval.ranges import RangeNotSatisfiable
from retrieval.sessions import CSRF_HEADER, SAFE_METHODS, WebSessions, csrf_matches
from storage import AuditRecord, Peaks, RecordingView, SearchQuery, Unavailable, in_force

PRINCIPAL = web.RequestKey("principal", Principal)
MAX_JSON_BODY = 4096
# The one route anyone may read: the description of the API itself.
PUBLIC_ROUTE = "openapi"
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_SEARCH_PARAMETERS = frozenset(
    {"referral", "team", "agent", "started_after", "started_before", "cursor", "limit"}
)
_STATUS: dict[type[RetrievalError], tuple[int, str]] = {
    Unauthenticated: (401, "unauthenticated"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not_found"),
    BadRequest: (400, "bad_request"),
    Unprocessable: (422, "invalid_request"),
    Conflict: (409, "conflict"),
    IntegrityProblem: (500, "integrity_failure"),
}


def _json_error(
    http_status: int, error: str, detail: str, extra: Mapping[str, Any] | None = None
) -> web.Response:
    body = {"error": error, "detail": detail, **(extra or {})}
    return web.json_response(body, status=http_status)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Statuses for refusals, chosen once; outages are 503 with Retry-After."""
    try:
        return await handler(request)
    except RangeNotSatisfiable as exc:
        response = _json_error(416, "range_not_satisfiable", exc.detail)
        response.headers["Content-Range"] = f"bytes */{exc.size}"
        return response
    except Gone as exc:
        # The contract's body for a deleted recording, in the API's error shape.
        return _json_error(
            410,
            "gone",
            exc.detail,
            {"status": exc.status, "deleted_at": rfc3339(exc.deleted_at)},
        )
    except RetrievalError as exc:
        status, code = next(_STATUS[kind] for kind in type(exc).__mro__ if kind in _STATUS)
        response = _json_error(status, code, exc.detail)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    except Unavailable:
        response = _json_error(503, "unavailable", "storage is unavailable; retry later")
        response.headers["Retry-After"] = "30"
        return response


def authenticate_with(
    tokens: TokenVerifier, sessions: WebSessions | None = None
) -> Callable[..., Any]:
    """Middleware: every API request carries a verified Principal, or is a 401.

    A bearer token, or else the review page's session cookie; with the cookie, a request
    that changes anything must carry the session's CSRF token too (403 otherwise).
    """

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name == PUBLIC_ROUTE:
            return await handler(request)
        authorization = request.headers.get("Authorization")
        found = None
        if authorization is None and sessions is not None:
            found = await sessions.current(request)
        if found is None:
            request[PRINCIPAL] = await tokens.verify(bearer_token(authorization))
            return await handler(request)
        principal, facts = found
        if request.method not in SAFE_METHODS and not csrf_matches(
            facts, request.headers.get(CSRF_HEADER)
        ):
            raise Forbidden("a request made with the page's session needs its CSRF token")
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate


def principal_of(request: web.Request) -> Principal:
    """The verified person making the request."""
    return request[PRINCIPAL]


class PeakSource(Protocol):
    """Where the waveform peaks of a stored recording come from."""

    async def peaks(self, recording_id: uuid.UUID) -> Peaks | None: ...


class RecordingHandlers:
    """``/api/v1/recordings``: search and metadata, within need to know, all audited."""

    def __init__(
        self, access: RecordingAccess, referrals: ReferralChanges, peaks: PeakSource
    ) -> None:
        self._access = access
        self._queries = access.queries
        self._audit = access.audit
        self._referrals = referrals
        self._peaks = peaks

    async def search(self, request: web.Request) -> web.Response:
        """``GET /api/v1/recordings``: newest first, one page, with a cursor to the next."""
        principal = principal_of(request)
        if not may_search(principal):
            await self._access.deny(principal, "recording.search", None, "role")
            raise Forbidden("this role does not look recordings up")
        query = _search_query(request.query, visible_teams(principal))
        now = self._access.clock()
        # One more than a page, to know whether another page follows; nothing past its
        # deadline without a hold is shown, swept or not.
        found = await self._queries.search(
            SearchQuery(**{**_fields(query), "limit": query.limit + 1, "readable_at": now})
        )
        page = found[: query.limit]
        await self._audit.record(
            AuditRecord(
                actor=principal.actor,
                action="recording.search",
                details={
                    "filters": {k: v for k, v in request.query.items() if k != "cursor"},
                    "results": len(page),
                },
            )
        )
        body: dict[str, Any] = {
            "recordings": [recording_json(view, principal, now) for view in page]
        }
        body["next_cursor"] = _cursor_after(page[-1]) if len(found) > query.limit else None
        return web.json_response(body)

    async def get(self, request: web.Request) -> web.Response:
        """``GET /api/v1/recordings/{id}``: metadata, 404 if not visible, 410 once deleted."""
        principal = principal_of(request)
        view = await self._access.visible(principal, recording_id_from(request), "recording.view")
        await self._audit.record(
            AuditRecord(actor=principal.actor, action="recording.view", recording_id=view.id)
        )
        return web.json_response(recording_json(view, principal, self._access.clock()))

    async def peaks(self, request: web.Request) -> web.Response:
        """``GET /api/v1/recordings/{id}/peaks``: per channel, min and max per time bucket.

        Values are -127..127 of full scale; bucket ``i`` starts at ``i / per_second``
        seconds. A recording captured before peaks existed answers ``not_computed``.
        """
        principal = principal_of(request)
        view = await self._access.visible(principal, recording_id_from(request), "recording.peaks")
        found = await self._peaks.peaks(view.id)
        await self._audit.record(
            AuditRecord(actor=principal.actor, action="recording.peaks", recording_id=view.id)
        )
        if found is None:
            return web.json_response({"id": str(view.id), "status": "not_computed", "peaks": []})
        channels = [found.channel(index) for index in range(found.channels)]
        return web.json_response(
            {
                "id": str(view.id),
                "status": "ready",
                "per_second": found.per_second,
                "buckets": found.buckets,
                "duration_s": view.duration_s,
                "scale": 127,
                "peaks": [{"min": low, "max": high} for low, high in channels],
            },
            headers={"Cache-Control": "no-store"},
        )

    async def link_referral(self, request: web.Request) -> web.Response:
        """``POST /api/v1/recordings/{id}/referrals/{ref}``: 201 linked, 200 already was."""
        principal, view, reference = await self._referral_change(request)
        created = await self._referrals.link(view.id, reference, actor=principal.actor)
        body = {"id": str(view.id), "referral": reference, "linked": True}
        return web.json_response(body, status=201 if created else 200)

    async def unlink_referral(self, request: web.Request) -> web.Response:
        """``DELETE /api/v1/recordings/{id}/referrals/{ref}``: 204, or 404 if not linked."""
        principal, view, reference = await self._referral_change(request)
        if not await self._referrals.unlink(view.id, reference, actor=principal.actor):
            raise NotFound("the recording is not linked to that referral")
        return web.Response(status=204)

    async def _referral_change(self, request: web.Request) -> tuple[Principal, RecordingView, str]:
        principal = principal_of(request)
        reference = request.match_info["ref"]
        if not _REFERENCE.fullmatch(reference):
            raise BadRequest("a referral reference is 1-64 letters, digits, / _ . -")
        if not may_edit_referrals(principal):
            await self._access.deny(principal, "referral.change", None, "role")
            raise Forbidden("this role does not link referrals")
        view = await self._access.visible(principal, recording_id_from(request), "referral.change")
        return principal, view, reference


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


def _search_query(params: Mapping[str, str], teams: frozenset[str] | None) -> SearchQuery:
    unknown = set(params) - _SEARCH_PARAMETERS
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
        after=_cursor_position(params.get("cursor")),
        limit=limit,
    )


def _fields(query: SearchQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in SearchQuery.__dataclass_fields__}


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _label(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not (0 < len(value) <= 128 and value.isprintable()):
        raise BadRequest(f"{name} must be 1 to 128 printable characters")
    return value


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 time with a time zone") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name} must be an RFC 3339 time with a time zone")
    return moment


def _cursor_after(view: RecordingView) -> str:
    raw = json.dumps([view.started_at.isoformat(), str(view.id)]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _cursor_position(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
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


def rfc3339(moment: datetime | None) -> str | None:
    """A UTC instant as the API writes it: ISO 8601 with a Z."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def recording_json(view: RecordingView, principal: Principal, now: datetime) -> dict[str, Any]:
    """A recording as the API shows it; hold reasons only to those who manage holds."""
    return {
        "id": str(view.id),
        "status": view.state,
        "source": view.source,
        "source_recording_id": view.source_recording_id,
        "started_at": rfc3339(view.started_at),
        "ended_at": rfc3339(view.ended_at),
        "direction": view.direction,
        "from": view.from_number,
        "to": view.to_number,
        "agent": view.agent,
        "team": view.team,
        "referrals": list(view.referrals),
        "audio": {
            "container": view.container,
            "codec": view.codec,
            "sample_rate": view.sample_rate,
            "channels": view.channels,
            "duration_s": view.duration_s,
            "declared_duration_s": view.declared_duration_s,
            # Kept although damaged: what was wrong, for whoever relies on it as evidence.
            "complete": not view.audio_problems,
            "problems": [{"code": code, "detail": detail} for code, detail in view.audio_problems],
        },
        "retention_deadline": rfc3339(view.retention_deadline),
        "holds": [
            {
                "type": hold.kind,
                "review_by": rfc3339(hold.review_by),
                "placed_at": rfc3339(hold.placed_at),
                **(
                    {"reason": hold.reason, "placed_by": hold.placed_by}
                    if may_manage_holds(principal)
                    else {}
                ),
            }
            for hold in in_force(view.holds, now)
        ],
        "extra": view.extra,
    }


class RetentionHandlers:
    """``GET /api/v1/retention``: the sweeps' record, for those who watch them."""

    def __init__(
        self, access: RecordingAccess, report: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        self._access = access
        self._report = report

    async def status(self, request: web.Request) -> web.Response:
        """Last and next sweep, due and overdue counts, holds."""
        principal = principal_of(request)
        if not may_read_retention(principal):
            await self._access.deny(principal, "retention.status", None, "role")
            raise Forbidden("only retention operators and auditors see the retention status")
        return web.json_response(await self._report())
