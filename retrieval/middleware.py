"""What every API request passes through: who is asking, and how refusals become statuses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from retrieval.auth import Principal, TokenVerifier, bearer_token
from retrieval.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    IntegrityProblem,
    NotFound,
    NotReadyYet,
    RetrievalError,
    Unauthenticated,
    Unprocessable,
)
from retrieval.ranges import RangeNotSatisfiable
from retrieval.sessions import CSRF_HEADER, SAFE_METHODS, WebSessions, csrf_matches
from storage import Unavailable, rfc3339

PRINCIPAL = web.RequestKey("principal", Principal)
# The one route anyone may read: the description of the API itself.
PUBLIC_ROUTE = "openapi"
_STATUS: dict[type[RetrievalError], tuple[int, str]] = {
    Unauthenticated: (401, "unauthenticated"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not_found"),
    BadRequest: (400, "bad_request"),
    Unprocessable: (422, "invalid_request"),
    Conflict: (409, "conflict"),
    IntegrityProblem: (500, "integrity_failure"),
}
ERROR_CODES: dict[int, str] = {
    **{status: code for status, code in _STATUS.values()},
    410: "gone",
    416: "range_not_satisfiable",
    503: "unavailable",
}
"""The ``error`` of the body of each error status: one code per status."""


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
        response = _json_error(416, ERROR_CODES[416], exc.detail)
        response.headers["Content-Range"] = f"bytes */{exc.size}"
        return response
    except Gone as exc:
        # The contract's body for a deleted recording, in the API's error shape.
        return _json_error(
            410,
            ERROR_CODES[410],
            exc.detail,
            {"status": exc.status, "deleted_at": rfc3339(exc.deleted_at)},
        )
    except NotReadyYet as exc:
        response = _json_error(503, ERROR_CODES[503], exc.detail, {"ready_in_s": exc.retry_after_s})
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except RetrievalError as exc:
        status, code = next(_STATUS[kind] for kind in type(exc).__mro__ if kind in _STATUS)
        response = _json_error(status, code, exc.detail)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    except Unavailable:
        response = _json_error(503, ERROR_CODES[503], "storage is unavailable; retry later")
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
