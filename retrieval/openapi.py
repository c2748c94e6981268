"""The OpenAPI 3.1 description of the people-facing API, served at /api/v1/openapi.json.

Its paths are built from the route table the router is built from, its schemas from the
rules the code enforces; a test checks real answers against it.
"""

from __future__ import annotations

from typing import Any

from retrieval.middleware import ERROR_CODES
from retrieval.route_types import Route
from retrieval.routes import ROUTES
from retrieval.schemas import REFERRAL, SCHEMAS, ref

_REFUSED = {
    400: "Malformed parameter",
    401: "No valid bearer token (or review-page session)",
    403: "The caller's role may not do this (or the grant is not theirs, or not valid)",
    404: "No such recording, or one the caller's teams cannot see",
    409: "The recording's state forbids this now (held, already being deleted, no hold)",
    410: "Deleted, or past its retention deadline",
    416: "Range not satisfiable (Content-Range gives the size)",
    422: "Content not acceptable (purpose, reason, hold type, review date)",
    500: "Stored audio failed its integrity checks; nothing served",
    503: "Storage or audit trail unavailable; retry after Retry-After seconds",
}
_REFUSAL_HEADERS = {
    401: "WWW-Authenticate",
    416: "Content-Range",
    503: "Retry-After",
}
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "format": "uuid"},
    "recording": {"type": "string", "format": "uuid", "description": "A recording id"},
    "ref": REFERRAL,
    "grant": {"type": "string", "description": "The signed grant, as issued in audio_url"},
}


def error_schema(status: int) -> dict[str, Any]:
    """The body of an error status: the API's error shape with that status's code."""
    if status == 410:
        return ref("Gone")
    return {"allOf": [ref("Error")], "properties": {"error": {"const": ERROR_CODES[status]}}}


def _refusal(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _REFUSED[status],
        "content": {"application/json": {"schema": error_schema(status)}},
    }
    if status in _REFUSAL_HEADERS:
        answer["headers"] = {_REFUSAL_HEADERS[status]: {"schema": {"type": "string"}}}
    return answer


def _responses(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in route.answers.items():
        described: dict[str, Any] = {"description": answer.description}
        if answer.schema is not None:
            described["content"] = {answer.media: {"schema": ref(answer.schema)}}
        elif answer.media != "application/json":
            described["content"] = {answer.media: {}}
        if status == 206:
            described["headers"] = {"Content-Range": {"schema": {"type": "string"}}}
        responses[str(status)] = described
    refusals = route.refusals if route.public else (401, *route.refusals, 503)
    for status in sorted(refusals):
        responses[str(status)] = _refusal(status)
    return responses


def _operation(route: Route) -> dict[str, Any]:
    names = [part[1:-1] for part in route.path.split("/") if part.startswith("{")]
    operation: dict[str, Any] = {
        "summary": route.summary,
        "parameters": [
            *(
                {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMETERS[name]}
                for name in names
            ),
            *route.query,
            *route.headers,
        ],
        "responses": _responses(route),
    }
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(route.body)}},
        }
    if route.public:
        operation["security"] = []
    return operation


def _head(operation: dict[str, Any]) -> dict[str, Any]:
    """GET's answers without their bodies: aiohttp answers HEAD wherever it answers GET."""
    return {
        **operation,
        "summary": f"Headers only: {operation['summary'][0].lower()}{operation['summary'][1:]}",
        "responses": {
            status: {key: value for key, value in answer.items() if key != "content"}
            for status, answer in operation["responses"].items()
        },
    }


def document() -> dict[str, Any]:
    """The whole description, paths in the order the routes are declared."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        item = paths.setdefault(route.path, {})
        item[route.method.lower()] = _operation(route)
        if route.method == "GET":
            item["head"] = _head(item["get"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callrec",
            "version": "1",
            "description": (
                "Replay of a safeguarding hub's call recordings, on a need-to-know basis."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": SCHEMAS,
        },
    }


OPENAPI = document()
