"""The JSON shapes of the subject access endpoints, for the OpenAPI document.

Kept beside schemas.py (which merges them in) so each file stays readable; the limits are
read from retrieval.subject_requests, where they are enforced.
"""

from __future__ import annotations

from typing import Any

from retrieval.parsing import REFERENCE
from retrieval.subject_access import MAX_SEARCH_RESULTS
from retrieval.subject_export_http import MAX_RECIPIENTS, MIN_PASSPHRASE
from retrieval.subject_requests import MAX_NUMBERS, MAX_REFERRALS
from storage import MAX_MUTED_RANGES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: str = "", **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required.split(), "properties": properties}


def _nullable(kind: str, **facets: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **facets}


_TIME = {"type": "string", "format": "date-time"}
_DATE = {"type": "string", "format": "date"}
_REFERENCE = {"type": "string", "pattern": f"^{REFERENCE.pattern}$"}
_NUMBERS = {
    "type": "array",
    "maxItems": MAX_NUMBERS,
    "items": {"type": "string", "maxLength": 64},
    "description": (
        "Phone numbers, E.164 (+442079460000) or national (read in CALLREC_PHONE_REGION); "
        "each matched exactly against the caller's and the called number"
    ),
}
_CRITERIA = {
    "phone_numbers": _NUMBERS,
    "referrals": {"type": "array", "maxItems": MAX_REFERRALS, "items": _REFERENCE},
    "started_after": {**_TIME, "description": "inclusive"},
    "started_before": {**_TIME, "description": "exclusive"},
}
_REDACTION = _object(
    "keep_channel muted",
    keep_channel={
        "type": ["integer", "null"],
        "enum": [0, 1, None],
        "description": "The requester's channel of a two-channel call; the other is silenced",
    },
    muted={
        "type": "array",
        "maxItems": MAX_MUTED_RANGES,
        "items": {
            "type": "array",
            "prefixItems": [{"type": "number", "minimum": 0}, {"type": "number"}],
            "minItems": 2,
            "maxItems": 2,
        },
        "description": "[start, end] seconds silenced on every channel; overlaps are merged",
    },
)
_STAFF_NAMES = {
    "type": "boolean",
    "default": False,
    "description": "name the staff who took and accessed the calls (else their roles)",
}
_CASE_RECORDING = _object(
    "id status started_at duration_s channels team held redaction",
    id={"type": "string", "format": "uuid"},
    status={"enum": ["stored", "deleting", "deleted"]},
    started_at=_nullable("string", format="date-time"),
    duration_s=_nullable("number"),
    channels=_nullable("integer"),
    team=_nullable("string"),
    held={"type": "boolean", "description": "a subject_access_pending hold is in force"},
    redaction={"oneOf": [{"type": "null"}, _ref("Redaction")]},
)
_DECISION = {
    "oneOf": [
        {"type": "null"},
        _object("by at reason", by={"type": "string"}, at=_TIME, reason={"type": "string"}),
    ]
}

SUBJECT_ACCESS_SCHEMAS: dict[str, Any] = {
    "SubjectSearch": _object("reason", reason={"type": "string"}, **_CRITERIA),
    "SubjectSearchResult": _object(
        "recordings truncated",
        recordings={"type": "array", "items": _ref("Recording"), "maxItems": MAX_SEARCH_RESULTS},
        truncated={"type": "boolean", "description": f"more than {MAX_SEARCH_RESULTS} matched"},
    ),
    "SubjectAccessRequest": _object(
        "reference received reason phone_numbers",
        reference={**_REFERENCE, "description": "the request's own reference, unique"},
        received={**_DATE, "description": "the day the request was received"},
        reason={"type": "string"},
        **_CRITERIA,
    ),
    "Redaction": _REDACTION,
    "SubjectAccessExport": {
        "oneOf": [
            _object(
                "recipients",
                recipients={
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_RECIPIENTS,
                    "items": {"type": "string", "pattern": "^age1"},
                    "description": "age X25519 public keys; any one's identity opens it",
                },
                include_staff_names=_STAFF_NAMES,
            ),
            _object(
                "passphrase",
                passphrase={"type": "string", "minLength": MIN_PASSPHRASE, "maxLength": 1000},
                include_staff_names=_STAFF_NAMES,
            ),
        ],
        "description": "Exactly one of recipients (preferred: streamed) or a passphrase.",
    },
    "SubjectAccessCase": _object(
        "id reference received deadline days_left overdue state reason opened_by opened_at "
        "extension closed exports recording_count recordings",
        id={"type": "string", "format": "uuid"},
        reference=_REFERENCE,
        received=_DATE,
        deadline={
            **_DATE,
            "description": "one calendar month from receipt; three once extended",
        },
        days_left={"type": "integer", "description": "negative once overdue"},
        overdue={"type": "boolean"},
        state={"enum": ["open", "closed"]},
        reason={"type": "string"},
        opened_by={"type": "string"},
        opened_at=_TIME,
        extension=_DECISION,
        closed=_DECISION,
        exports={"type": "integer", "minimum": 0},
        recording_count={"type": "integer", "minimum": 0},
        recordings={"type": "array", "items": _CASE_RECORDING},
    ),
    "SubjectAccessCases": _object(
        "cases", cases={"type": "array", "items": _ref("SubjectAccessCase")}
    ),
}
