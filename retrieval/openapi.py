"""The OpenAPI 3.1 description of the people-facing API, served at /api/v1/openapi.json.

Kept beside the routes and checked by a test that every route is described and every
description has a route.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _responses(ok: dict[str, Any], *statuses: int) -> dict[str, Any]:
    described = {
        400: "Malformed parameter",
        401: "No valid bearer token",
        403: "The caller's role may not do this",
        404: "No such recording, or one the caller's teams cannot see",
        410: "Deleted, or past its retention deadline",
        409: "The recording's state forbids this now (held, already being deleted, no hold)",
        416: "Range not satisfiable",
        422: "Content not acceptable (purpose, reason, hold type, review date)",
        500: "Stored audio failed its integrity checks; nothing served",
        503: "Storage or audit trail unavailable; retry",
    }
    responses = dict(ok)
    for status in (401, 503, *statuses):
        responses[str(status)] = {
            "description": described[status],
            "content": {"application/json": {"schema": _ERROR}},
        }
    return responses


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_HOLD_TYPES = ["staff_safety_incident", "subject_access_pending", "legal"]


def _body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_REF = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "callrec",
        "version": "1",
        "description": "Replay of a safeguarding hub's call recordings, on a need-to-know basis.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/recordings": {
            "get": {
                "summary": "Search recordings, newest first",
                "parameters": [
                    _query("referral", "A linked referral reference"),
                    _query("team", "A team"),
                    _query("agent", "The agent who took the call"),
                    _query("started_after", "RFC 3339, inclusive", format="date-time"),
                    _query("started_before", "RFC 3339, exclusive", format="date-time"),
                    _query("cursor", "next_cursor of the previous page"),
                    _query("limit", "1 to 200, default 50", pattern="^[0-9]+$"),
                ],
                "responses": _responses({"200": _json("RecordingPage", "One page")}, 400, 403),
            }
        },
        "/recordings/{id}": {
            "get": {
                "summary": "One recording's metadata",
                "parameters": [_ID],
                "responses": _responses(
                    {"200": _json("Recording", "The recording")}, 403, 404, 410
                ),
            },
            "delete": {
                "summary": "Erase early (DPO; audited): keys now, then objects, then personal data",
                "parameters": [_ID],
                "requestBody": _body("Reason"),
                "responses": _responses(
                    {
                        "200": _json("Erasure", "Deleted"),
                        "202": _json("Erasure", "Keys destroyed; the objects go at the next sweep"),
                    },
                    403,
                    404,
                    409,
                    410,
                    422,
                ),
            },
        },
        "/recordings/{id}/hold": {
            "post": {
                "summary": "Place or renew a hold (safety reviewer, DPO; audited)",
                "parameters": [_ID],
                "requestBody": _body("HoldRequest"),
                "responses": _responses(
                    {
                        "201": _json("HoldPlaced", "Placed"),
                        "200": _json("HoldPlaced", "Renewed with a new reason and review date"),
                    },
                    403,
                    404,
                    409,
                    410,
                    422,
                ),
            },
            "delete": {
                "summary": "Release holds (safety reviewer, DPO; audited)",
                "parameters": [_ID],
                "requestBody": _body("HoldRelease"),
                "responses": _responses(
                    {"200": _json("HoldReleased", "The kinds released")}, 403, 404, 409, 410, 422
                ),
            },
        },
        "/recordings/{id}/peaks": {
            "get": {
                "summary": "Waveform peaks per channel (not_computed for recordings without)",
                "parameters": [_ID],
                "responses": _responses({"200": _json("Peaks", "The peaks")}, 403, 404, 410),
            }
        },
        "/recordings/{id}/referrals/{ref}": {
            "post": {
                "summary": "Link a referral (audited)",
                "parameters": [_ID, _REF],
                "responses": _responses(
                    {
                        "201": _json("ReferralLink", "Linked"),
                        "200": _json("ReferralLink", "Was already linked"),
                    },
                    400,
                    403,
                    404,
                    410,
                ),
            },
            "delete": {
                "summary": "Unlink a referral (audited)",
                "parameters": [_ID, _REF],
                "responses": _responses({"204": {"description": "Unlinked"}}, 400, 403, 404, 410),
            },
        },
        "/recordings/{id}/grants": {
            "post": {
                "summary": "Ask to hear a recording, stating purpose and reason (audited)",
                "parameters": [_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/GrantRequest"}
                        }
                    },
                },
                "responses": _responses(
                    {"201": _json("Grant", "A short-lived audio link")}, 403, 404, 410, 422
                ),
            }
        },
        "/audit": {
            "get": {
                "summary": "The audit trail, oldest first (auditor, DPO; the read is audited)",
                "parameters": [
                    _query("recording", "only events about this recording (UUID)"),
                    _query("actor", "only events by this actor (e.g. user:alice)"),
                    _query("action", "only this action (e.g. recording.grant)"),
                    _query("after", "events after this sequence number (the last one seen)"),
                    _query("limit", "page size, 1-500 (default 100)"),
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": "Events and next_after, the cursor to the next page",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                    400,
                    403,
                ),
            }
        },
        "/retention": {
            "get": {
                "summary": "Last and next sweep, due and overdue counts, holds",
                "responses": _responses(
                    {
                        "200": {
                            "description": "The retention status",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                    403,
                ),
            }
        },
        "/play/{grant}": {
            "get": {
                "summary": "The audio of a grant; Range requests give 206",
                "parameters": [
                    {"name": "grant", "in": "path", "required": True, "schema": {"type": "string"}},
                    _query(
                        "variant",
                        "playback (default) or original (a download)",
                        enum=["playback", "original"],
                    ),
                    {
                        "name": "Range",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "If-Range",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": _responses(
                    {
                        "200": {"description": "The whole recording", "content": {"audio/*": {}}},
                        "206": {"description": "One range of it", "content": {"audio/*": {}}},
                    },
                    400,
                    403,
                    404,
                    410,
                    416,
                    500,
                ),
            },
            "head": {
                "summary": "The headers of the audio of a grant, without the audio",
                "parameters": [
                    {"name": "grant", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": _responses({"200": {"description": "Headers only"}}, 403, 404, 410),
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
            },
            "Recording": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string"},
                    "source": {"type": "string"},
                    "source_recording_id": {"type": "string"},
                    "started_at": {"type": "string", "format": "date-time"},
                    "ended_at": {"type": ["string", "null"], "format": "date-time"},
                    "direction": {"type": ["string", "null"]},
                    "from": {"type": ["string", "null"]},
                    "to": {"type": ["string", "null"]},
                    "agent": {"type": ["string", "null"]},
                    "team": {"type": ["string", "null"]},
                    "referrals": {"type": "array", "items": {"type": "string"}},
                    "audio": {"$ref": "#/components/schemas/AudioFacts"},
                    "retention_deadline": {"type": "string", "format": "date-time"},
                    "holds": {"type": "array", "items": {"$ref": "#/components/schemas/Hold"}},
                    "extra": {"type": "object"},
                },
            },
            "RecordingPage": {
                "type": "object",
                "properties": {
                    "recordings": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Recording"},
                    },
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "Peaks": {
                "type": "object",
                "description": (
                    "Per channel, the min and max of each time bucket, -scale..scale of full "
                    "scale; bucket i starts at i / per_second seconds."
                ),
                "properties": {
                    "id": {"type": "string"},
                    "status": {"enum": ["ready", "not_computed"]},
                    "per_second": {"type": "number"},
                    "buckets": {"type": "integer"},
                    "duration_s": {"type": ["number", "null"]},
                    "scale": {"type": "integer"},
                    "peaks": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "min": {"type": "array", "items": {"type": "integer"}},
                                "max": {"type": "array", "items": {"type": "integer"}},
                            },
                        },
                    },
                },
            },
            "AudioFacts": {
                "type": "object",
                "description": (
                    "What probing found. duration_s is what decodes; a damaged file is kept "
                    "with complete false and its problems listed."
                ),
                "properties": {
                    "container": {"type": "string"},
                    "codec": {"type": "string"},
                    "sample_rate": {"type": "integer"},
                    "channels": {"type": "integer"},
                    "duration_s": {"type": "number"},
                    "declared_duration_s": {"type": ["number", "null"]},
                    "complete": {"type": "boolean"},
                    "problems": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "code": {
                                    "enum": [
                                        "truncated",
                                        "undecodable_stretch",
                                        "gap",
                                        "damaged_container",
                                        "duration_mismatch",
                                    ]
                                },
                                "detail": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "ReferralLink": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "referral": {"type": "string"},
                    "linked": {"type": "boolean"},
                },
            },
            "Reason": {
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {"type": "string", "minLength": 12, "maxLength": 500}},
            },
            "Erasure": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string", "enum": ["deleted", "deleting"]},
                },
            },
            "HoldRequest": {
                "type": "object",
                "required": ["type", "reason", "review_by"],
                "properties": {
                    "type": {"type": "string", "enum": _HOLD_TYPES},
                    "reason": {"type": "string", "minLength": 12, "maxLength": 500},
                    "review_by": {
                        "type": "string",
                        "description": "RFC 3339 time, or a date meaning the end of that day"
                        " (UTC); at most CALLREC_HOLD_MAX_REVIEW ahead",
                    },
                },
            },
            "HoldRelease": {
                "type": "object",
                "required": ["reason"],
                "properties": {
                    "type": {"type": "string", "enum": _HOLD_TYPES},
                    "reason": {"type": "string", "minLength": 12, "maxLength": 500},
                },
            },
            "Hold": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": _HOLD_TYPES},
                    "review_by": {"type": "string", "format": "date-time"},
                    "placed_at": {"type": "string", "format": "date-time"},
                    "reason": {"type": "string", "description": "hold managers only"},
                    "placed_by": {"type": "string", "description": "hold managers only"},
                },
            },
            "HoldPlaced": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "hold": {"$ref": "#/components/schemas/Hold"},
                    "renewed": {"type": "boolean"},
                },
            },
            "HoldReleased": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "released": {"type": "array", "items": {"type": "string"}},
                },
            },
            "GrantRequest": {
                "type": "object",
                "required": ["purpose", "reason"],
                "properties": {
                    "purpose": {
                        "type": "string",
                        "enum": ["quality_review", "staff_safety", "subject_access"],
                    },
                    "reason": {"type": "string", "minLength": 12, "maxLength": 500},
                },
            },
            "Grant": {
                "type": "object",
                "properties": {
                    "audio_url": {"type": "string", "format": "uri"},
                    "expires_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}
