"""The JSON shapes of the API's bodies, as JSON Schema (2020-12) for its OpenAPI document.

Every constraint is read from where the code enforces it (reason rules, referral shape,
hold kinds, purposes, limits), so the document states the rules the API applies.
"""

from __future__ import annotations

from typing import Any

from retrieval.grants import REASON_LENGTH, REASON_WORDS
from retrieval.parsing import REFERENCE
from retrieval.representations import PEAK_SCALE
from retrieval.roles import PURPOSES
from retrieval.schemas_subject_access import SUBJECT_ACCESS_SCHEMAS
from storage import HOLD_KINDS, CopyState

# A problem probing can report about captured audio (written by capture, shown here).
_PROBLEM_CODES = [
    "truncated",
    "undecodable_stretch",
    "gap",
    "damaged_container",
    "duration_mismatch",
]


def ref(name: str) -> dict[str, str]:
    """A reference to one of the document's schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: str = "", **properties: Any) -> dict[str, Any]:
    """An object with these properties; ``required`` names the ones always present."""
    return {"type": "object", "required": required.split(), "properties": properties}


def _nullable(kind: str, **facets: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **facets}


_TIME = {"type": "string", "format": "date-time"}
_ID = {"type": "string", "format": "uuid"}
_REASON = {
    "type": "string",
    "minLength": REASON_LENGTH[0],
    "description": (
        f"Why, for an auditor reading it later: {REASON_LENGTH[0]} to {REASON_LENGTH[1]} "
        "characters once each run of white space is one space and the ends are trimmed, "
        f"with at least {REASON_WORDS} different words of two or more letters, and not a "
        "stock word such as 'test'."
    ),
}
REFERRAL = {
    "type": "string",
    "pattern": f"^{REFERENCE.pattern}$",
    "description": "1 to 64 letters, digits, / _ . - (a letter or digit first)",
}
_HOLD_KIND = {"type": "string", "enum": list(HOLD_KINDS)}

SCHEMAS: dict[str, Any] = {
    "OpenApiDocument": _object("openapi info paths components"),
    "Error": _object(
        "error detail",
        error={"type": "string", "description": "one code per status"},
        detail={"type": "string", "description": "for people; never echoes a credential"},
    ),
    "Gone": {
        "allOf": [ref("Error")],
        **_object(
            "status deleted_at",
            error={"const": "gone"},
            status={"enum": ["deleted", "deleting"]},
            deleted_at=_TIME,
        ),
    },
    "Recording": _object(
        "id status source source_recording_id started_at ended_at direction from to agent "
        "team referrals audio playback retention_deadline holds extra",
        id=_ID,
        status={"type": "string"},
        source={"type": "string"},
        source_recording_id={"type": "string"},
        started_at=_TIME,
        ended_at=_nullable("string", format="date-time"),
        direction=_nullable("string"),
        to=_nullable("string"),
        agent=_nullable("string"),
        team=_nullable("string"),
        referrals={"type": "array", "items": {"type": "string"}},
        audio=ref("AudioFacts"),
        playback=ref("PlaybackCopy"),
        retention_deadline=_TIME,
        holds={"type": "array", "items": ref("Hold")},
        extra={"type": "object"},
        **{"from": _nullable("string")},
    ),
    "RecordingPage": _object(
        "recordings next_cursor",
        recordings={"type": "array", "items": ref("Recording")},
        next_cursor=_nullable("string", description="pass as cursor for the next page"),
    ),
    "AudioFacts": {
        **_object(
            "container codec sample_rate channels duration_s declared_duration_s complete problems",
            container=_nullable("string"),
            codec=_nullable("string"),
            sample_rate=_nullable("integer", minimum=1),
            channels=_nullable("integer", minimum=1),
            duration_s=_nullable("number", minimum=0),
            declared_duration_s=_nullable("number", minimum=0),
            complete={"type": "boolean"},
            problems={
                "type": "array",
                "items": _object(
                    "code detail", code={"enum": _PROBLEM_CODES}, detail={"type": "string"}
                ),
            },
        ),
        "description": (
            "What probing found. duration_s is what decodes; a damaged file is kept with "
            "complete false and its problems listed."
        ),
    },
    "PlaybackCopy": {
        **_object(
            "copy serves ready_in_s",
            copy={"enum": [CopyState.READY, CopyState.PREPARING, CopyState.FAILED, CopyState.NONE]},
            serves=_nullable(
                "string",
                enum=["rendition", "original", None],
                description="what the playback link serves now; null: it answers 503 with "
                "Retry-After until the copy being prepared is ready",
            ),
            ready_in_s=_nullable("number", minimum=0, description="a rough wait while preparing"),
        ),
        "description": (
            "The browser rendition (Opus in WebM), made after the recording is stored. While "
            "it is prepared, an original every browser plays is served as it is."
        ),
    },
    "Peaks": {
        **_object(
            "id status peaks",
            id=_ID,
            status={"enum": ["ready", "not_computed"]},
            per_second={"type": "number", "exclusiveMinimum": 0},
            buckets={"type": "integer", "minimum": 0},
            duration_s=_nullable("number", minimum=0),
            scale={"const": PEAK_SCALE},
            peaks={
                "type": "array",
                "items": _object(
                    "min max",
                    **{
                        side: {
                            "type": "array",
                            "items": {
                                "type": "integer",
                                "minimum": -PEAK_SCALE,
                                "maximum": PEAK_SCALE,
                            },
                        }
                        for side in ("min", "max")
                    },
                ),
            },
        ),
        "if": {"properties": {"status": {"const": "ready"}}},
        "then": {"required": ["per_second", "buckets", "duration_s", "scale"]},
        "else": {"properties": {"peaks": {"maxItems": 0}}},
        "description": (
            "Per channel, the min and max of each time bucket, -scale..scale of full scale; "
            "bucket i starts at i / per_second seconds."
        ),
    },
    "ReferralLink": _object(
        "id referral linked", id=_ID, referral=REFERRAL, linked={"const": True}
    ),
    "Reason": _object("reason", reason=_REASON),
    "Erasure": {
        **_object(
            "id status",
            id=_ID,
            status={"enum": ["deleted", "deleting", "approval_required"]},
            request=ref("ErasureRequest"),
        ),
        "description": (
            "approval_required: the erasure awaits a different DPO (CALLREC_ERASURE_APPROVALS"
            "=2) and nothing is destroyed yet; request is the pending request. After an "
            "approval, request is the approved one."
        ),
    },
    "ErasureRequest": _object(
        "id recording_id state reason requested_by requested_at decided_by decided_at "
        "decision_reason",
        id=_ID,
        recording_id=_ID,
        state={"enum": ["pending", "approved", "rejected"]},
        reason=_REASON,
        requested_by={"type": "string"},
        requested_at=_TIME,
        decided_by=_nullable("string"),
        decided_at=_nullable("string", format="date-time"),
        decision_reason=_nullable("string"),
    ),
    "ErasureRequests": _object(
        "approvals_required requests",
        approvals_required={"enum": [1, 2], "description": "CALLREC_ERASURE_APPROVALS"},
        requests={"type": "array", "items": ref("ErasureRequest")},
    ),
    "ErasureRequestDecision": _object("request", request=ref("ErasureRequest")),
    "HoldRequest": _object(
        "type reason review_by",
        type=_HOLD_KIND,
        reason=_REASON,
        review_by={
            "type": "string",
            "maxLength": 40,
            "anyOf": [{"format": "date"}, {"format": "date-time"}],
            "description": "An RFC 3339 time with its zone, or a date meaning the end of that "
            "day (UTC); at most CALLREC_HOLD_MAX_REVIEW ahead",
        },
    ),
    "HoldRelease": {
        **_object("reason", type=_HOLD_KIND, reason=_REASON),
        "description": "Without type, every hold in force is released.",
    },
    "Hold": _object(
        "type review_by placed_at",
        type=_HOLD_KIND,
        review_by=_TIME,
        placed_at=_TIME,
        reason={"type": "string", "description": "shown to hold managers only"},
        placed_by={"type": "string", "description": "shown to hold managers only"},
    ),
    "HoldPlaced": _object(
        "id hold renewed",
        id=_ID,
        hold={"allOf": [ref("Hold")], "required": ["reason", "placed_by"]},
        renewed={"type": "boolean"},
    ),
    "HoldReleased": _object(
        "id released",
        id=_ID,
        released={"type": "array", "minItems": 1, "items": _HOLD_KIND},
    ),
    "GrantRequest": _object(
        "purpose reason", purpose={"type": "string", "enum": list(PURPOSES)}, reason=_REASON
    ),
    "Grant": _object(
        "audio_url expires_at",
        audio_url={"type": "string", "format": "uri"},
        expires_at=_TIME,
    ),
    "AuditPage": _object(
        "events next_after next_before",
        events={"type": "array", "items": ref("AuditEvent")},
        next_after=_nullable("integer", description="pass as after for the next page"),
        next_before=_nullable(
            "integer", description="newest first: pass as before for the next page"
        ),
    ),
    "AuditEvent": _object(
        "seq occurred_at actor action recording_id purpose outcome details",
        seq={"type": "integer", "minimum": 1},
        occurred_at=_TIME,
        actor={"type": "string"},
        action={"type": "string"},
        recording_id=_nullable("string", format="uuid"),
        purpose=_nullable("string"),
        outcome={"type": "string"},
        details={"type": "object"},
    ),
    "CallAccessPage": _object(
        "accesses next_cursor",
        accesses={"type": "array", "items": ref("CallAccess")},
        next_cursor=_nullable("string", description="pass as cursor for the next page"),
    ),
    "CallAccess": {
        **_object(
            "occurred_at actor kind purpose recording_id call_started_at",
            occurred_at=_TIME,
            actor={"type": "string", "description": "who, as the audit trail names them"},
            kind={"type": "string", "enum": ["replayed", "downloaded"]},
            purpose=_nullable("string", enum=[*PURPOSES, None]),
            recording_id=_ID,
            call_started_at=_TIME,
        ),
        # Closed: nothing about the call beyond what identifies it to its handler.
        "additionalProperties": False,
    },
    "UnlinkedPage": _object(
        "review_after_days recordings next_cursor",
        review_after_days={
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "CALLREC_UNLINKED_REVIEW_AFTER: how long after it started a call "
            "without a referral is listed",
        },
        recordings={"type": "array", "items": ref("UnlinkedRecording")},
        next_cursor=_nullable("string", description="pass as cursor for the next page"),
    ),
    "UnlinkedRecording": {
        **_object(
            "id started_at ended_at team agent duration_s retention_deadline",
            id=_ID,
            started_at=_TIME,
            ended_at=_nullable("string", format="date-time"),
            team=_nullable("string"),
            agent=_nullable("string"),
            duration_s=_nullable("number", minimum=0),
            retention_deadline=_TIME,
        ),
        # Closed: what recognises the call, never the parties' numbers.
        "additionalProperties": False,
    },
    "NoReferral": _object(
        "id no_referral",
        id=_ID,
        no_referral=_object(
            "reason decided_by decided_at",
            reason=_REASON,
            decided_by={"type": "string", "description": "who, as the audit trail names them"},
            decided_at=_TIME,
        ),
    ),
    "RetentionStatus": _object(
        "retention_period_days sweep_interval_s last_sweep next_sweep due_before_next_sweep "
        "overdue oldest_deadline oldest_unheld_age_s recordings holds last_attestation "
        "early_erasure triage",
        retention_period_days={"type": "number"},
        sweep_interval_s={"type": "number"},
        last_sweep=_nullable("object", required=["at"]),
        next_sweep=_nullable("string", format="date-time"),
        due_before_next_sweep={"type": "integer", "minimum": 0},
        overdue={"type": "integer", "minimum": 0, "description": "0 while the service runs"},
        oldest_deadline=_nullable("string", format="date-time"),
        oldest_unheld_age_s=_nullable("number", minimum=0),
        recordings=_object(
            "stored deleting deleted",
            **{
                state: {"type": "integer", "minimum": 0}
                for state in ("stored", "deleting", "deleted")
            },
        ),
        holds=_object(
            "recordings_held held_past_deadline by_kind",
            recordings_held={"type": "integer", "minimum": 0},
            held_past_deadline={"type": "integer", "minimum": 0},
            by_kind={
                "type": "object",
                "propertyNames": {"enum": list(HOLD_KINDS)},
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
        ),
        last_attestation=_nullable("string", format="date-time"),
        early_erasure=_object(
            "approvals_required rule",
            approvals_required={"enum": [1, 2], "description": "CALLREC_ERASURE_APPROVALS"},
            rule={"type": "string", "description": "How an early erasure is authorised"},
        ),
        triage=_object(
            "review_after_days awaiting by_team",
            review_after_days={
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "CALLREC_UNLINKED_REVIEW_AFTER",
            },
            awaiting={
                "type": "integer",
                "minimum": 0,
                "description": "calls without a referral their team's supervisors have not "
                "linked or marked as needing none (a call of no team counts here only)",
            },
            by_team={"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
        ),
    ),
    "DeadLetters": _object(
        "count jobs",
        count={"type": "integer", "minimum": 0},
        jobs={
            "type": "array",
            "items": _object(
                "job provider id attempts error given_up_at",
                job=_ID,
                provider={"type": "string"},
                id={"type": "string", "description": "the provider's own recording id"},
                attempts={"type": "integer", "minimum": 0},
                error=_nullable("string"),
                given_up_at=_TIME,
            ),
        },
    ),
    **SUBJECT_ACCESS_SCHEMAS,
}
