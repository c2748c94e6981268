"""The API's routes, declared once: the router is built from this table, and so are the
OpenAPI document's paths, so neither can list a route the other lacks.

Each route names its handler (picked from the handler objects the app builds), says what
it does, and lists what it answers: its successes with their bodies, and its refusals
(401 and 503 apply to every route but the public one).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp.typedefs import Handler

from retrieval import staff_accesses, trail, triage
from retrieval.dead_letters import DeadLetterHandlers
from retrieval.erasure import ErasureHandlers
from retrieval.holds import HoldHandlers
from retrieval.parsing import DEFAULT_LIMIT, MAX_LIMIT
from retrieval.playback import GRANT_PARAMETER, VARIANTS, PlaybackHandlers
from retrieval.recordings import RecordingHandlers
from retrieval.retention_status import RetentionHandlers
from retrieval.route_types import Answer, Route, header_query, label_query, query, whole_query
from retrieval.routes_subject_access import SUBJECT_ACCESS_ROUTES
from retrieval.staff_accesses import StaffAccessHandlers
from retrieval.subject_access import SubjectAccessHandlers
from retrieval.subject_export_http import ExportHandlers
from retrieval.trail import AuditHandlers
from retrieval.triage import TriageHandlers


@dataclass(frozen=True, slots=True)
class ApiHandlers:
    """The handler objects one app serves its routes with."""

    recordings: RecordingHandlers
    holds: HoldHandlers
    erasures: ErasureHandlers
    playback: PlaybackHandlers
    audit: AuditHandlers
    retention: RetentionHandlers
    dead_letters: DeadLetterHandlers
    staff: StaffAccessHandlers
    triage: TriageHandlers
    subject_access: SubjectAccessHandlers
    exports: ExportHandlers
    document: Handler


_AUDIO = {
    200: Answer("The whole recording", media="audio/*"),
    206: Answer("One range of it (Content-Range says which)", media="audio/*"),
}

ROUTES: tuple[Route, ...] = (
    *SUBJECT_ACCESS_ROUTES,
    Route(
        "GET",
        "/openapi.json",
        lambda h: h.document,
        "This description of the API (needs no token)",
        {200: Answer("The OpenAPI document", "OpenApiDocument")},
        public=True,
    ),
    Route(
        "GET",
        "/recordings",
        lambda h: h.recordings.search,
        "Search recordings, newest first",
        {200: Answer("One page", "RecordingPage")},
        (400, 403),
        query=(
            label_query("referral", "A linked referral reference"),
            label_query("team", "A team"),
            label_query("agent", "The agent who took the call"),
            query(
                "started_after",
                "RFC 3339 with a zone, or a date (that day's start, UTC); inclusive",
                type="string",
                maxLength=40,
            ),
            query(
                "started_before",
                "RFC 3339 with a zone, or a date (that day's start, UTC); exclusive",
                type="string",
                maxLength=40,
            ),
            query("cursor", "next_cursor of the previous page"),
            whole_query("limit", "Page size", 1, MAX_LIMIT, DEFAULT_LIMIT),
        ),
    ),
    Route(
        "POST",
        "/recordings/search",
        lambda h: h.subject_access.search,
        "Find a data subject's recordings across every team by phone number (the caller's "
        "or the called number, normalised to E.164, exact) or referral, within dates (DPO; "
        "the numbers go in the body, never a URL; audited with the reason)",
        {200: Answer("The recordings found, newest first", "SubjectSearchResult")},
        (403, 422),
        body="SubjectSearch",
    ),
    Route(
        "GET",
        "/recordings/{id}",
        lambda h: h.recordings.get,
        "One recording's metadata",
        {200: Answer("The recording", "Recording")},
        (403, 404, 410),
    ),
    Route(
        "DELETE",
        "/recordings/{id}",
        lambda h: h.erasures.erase,
        "Erase early (DPO; audited). With CALLREC_ERASURE_APPROVALS=2 (the default) this asks "
        "for the erasure and destroys nothing until a different DPO approves it; with 1 the "
        "keys go now, then the objects, then the personal data",
        {
            200: Answer("Deleted", "Erasure"),
            202: Answer(
                "Keys destroyed and the objects go at the next sweep (status deleting), or the "
                "erasure awaits a second DPO (status approval_required, with the request)",
                "Erasure",
            ),
        },
        (403, 404, 409, 410, 422),
        body="Reason",
    ),
    Route(
        "GET",
        "/erasure-requests",
        lambda h: h.erasures.listed,
        "Erasure requests awaiting a second DPO, oldest first (DPO)",
        {200: Answer("The pending requests", "ErasureRequests")},
        (400, 403),
        query=(query("recording", "Only this recording's", type="string", format="uuid"),),
    ),
    Route(
        "POST",
        "/erasure-requests/{id}/approve",
        lambda h: h.erasures.approve,
        "Approve another DPO's erasure request: the erasure happens (DPO; audited). The DPO "
        "who asked may not approve it (403)",
        {
            200: Answer("Deleted", "Erasure"),
            202: Answer("Keys destroyed; the objects go at the next sweep", "Erasure"),
        },
        (403, 404, 409),
    ),
    Route(
        "POST",
        "/erasure-requests/{id}/reject",
        lambda h: h.erasures.reject,
        "Reject an erasure request with a reason; nothing is destroyed (DPO; audited)",
        {200: Answer("The rejected request", "ErasureRequestDecision")},
        (403, 404, 409, 422),
        body="Reason",
    ),
    Route(
        "POST",
        "/recordings/{id}/hold",
        lambda h: h.holds.place,
        "Place or renew a hold (safety reviewer, DPO; audited)",
        {
            201: Answer("Placed", "HoldPlaced"),
            200: Answer("Renewed with a new reason and review date", "HoldPlaced"),
        },
        (403, 404, 409, 410, 422),
        body="HoldRequest",
    ),
    Route(
        "DELETE",
        "/recordings/{id}/hold",
        lambda h: h.holds.release,
        "Release holds (safety reviewer, DPO; audited)",
        {200: Answer("The kinds released", "HoldReleased")},
        (403, 404, 409, 410, 422),
        body="HoldRelease",
    ),
    Route(
        "GET",
        "/recordings/{id}/peaks",
        lambda h: h.recordings.peaks,
        "Waveform peaks per channel (not_computed for recordings without)",
        {200: Answer("The peaks", "Peaks")},
        (403, 404, 410),
    ),
    Route(
        "POST",
        "/recordings/{id}/referrals/{ref}",
        lambda h: h.recordings.link_referral,
        "Link a referral (audited)",
        {201: Answer("Linked", "ReferralLink"), 200: Answer("Was already linked", "ReferralLink")},
        (400, 403, 404, 410),
    ),
    Route(
        "DELETE",
        "/recordings/{id}/referrals/{ref}",
        lambda h: h.recordings.unlink_referral,
        "Unlink a referral (audited)",
        {204: Answer("Unlinked")},
        (400, 403, 404, 410),
    ),
    Route(
        "GET",
        "/unlinked-recordings",
        lambda h: h.triage.listed,
        "Calls without a referral: the caller's teams' calls still linked to no referral "
        "CALLREC_UNLINKED_REVIEW_AFTER after they started, oldest first, to link (the "
        "referral link above) or mark as needing none (supervisors, their own teams only; "
        "never the parties' numbers; the read is audited)",
        {200: Answer("One page, and the cursor to the next", "UnlinkedPage")},
        (400, 403),
        query=(
            label_query("team", "One of the caller's teams"),
            query("cursor", "next_cursor of the previous page"),
            whole_query("limit", "Page size", 1, triage.MAX_LIMIT, triage.DEFAULT_LIMIT),
        ),
    ),
    Route(
        "POST",
        "/recordings/{id}/no-referral",
        lambda h: h.triage.no_referral,
        "Mark a call as needing no referral, with the reason: it leaves the calls without a "
        "referral (supervisors of its team; audited). 409 if it is linked to a referral or "
        "already marked",
        {201: Answer("Marked", "NoReferral")},
        (403, 404, 409, 410, 422),
        body="Reason",
    ),
    Route(
        "POST",
        "/recordings/{id}/grants",
        lambda h: h.playback.grant,
        "Ask to hear a recording, stating purpose and reason (audited)",
        {201: Answer("A short-lived audio link", "Grant")},
        (403, 404, 410, 422),
        body="GrantRequest",
    ),
    Route(
        "GET",
        f"/play/{{{GRANT_PARAMETER}}}",
        lambda h: h.playback.play,
        "The audio of a grant; a Range request gives 206 (every range audited before serving). "
        "While the playback copy is prepared after capture, the original is served if every "
        "browser plays it; otherwise 503 with Retry-After and ready_in_s",
        _AUDIO,
        (400, 403, 404, 410, 416, 500),
        query=(
            query(
                "variant",
                "playback (the default) or original (a download)",
                type="string",
                enum=list(VARIANTS),
                default=VARIANTS[0],
            ),
        ),
        headers=(
            header_query("Range", "One byte range (bytes=first-last, first-, -suffix)"),
            header_query("If-Range", "The ETag held; another version answers the whole recording"),
        ),
    ),
    Route(
        "GET",
        "/audit",
        lambda h: h.audit.events,
        "The audit trail, oldest or newest first (auditor, DPO; the read is audited)",
        {
            200: Answer(
                "Events, and the cursor to the next page (next_after, or next_before newest first)",
                "AuditPage",
            )
        },
        (400, 403),
        query=(
            query("recording", "Only events about this recording", type="string", format="uuid"),
            query(
                "actor",
                "Only events by this actor (e.g. user:alice)",
                type="string",
                minLength=1,
                maxLength=trail.MAX_ACTOR,
            ),
            query(
                "action",
                "Only this action (e.g. recording.grant)",
                type="string",
                pattern=f"^{trail.ACTION.pattern}$",
            ),
            whole_query(
                "after",
                "Events after this sequence number (the last one seen)",
                0,
                trail.MAX_AFTER,
                0,
            ),
            query(
                "before",
                "Events before this sequence number (newest first: the last one seen)",
                type="integer",
                minimum=1,
                maximum=trail.MAX_AFTER,
            ),
            query(
                "order",
                "oldest first (paged with after) or newest first (paged with before)",
                type="string",
                enum=list(trail.ORDERS),
                default=trail.ORDERS[0],
            ),
            whole_query("limit", "Page size", 1, trail.MAX_LIMIT, trail.DEFAULT_LIMIT),
        ),
    ),
    Route(
        "GET",
        "/me/accesses",
        lambda h: h.staff.listed,
        "Who replayed or downloaded the calls the caller handled, newest first (staff: "
        "their own calls, matched on agent; never audio or the caller's numbers; the read "
        "is audited)",
        {200: Answer("One page, and the cursor to the next", "CallAccessPage")},
        (400, 403),
        query=(
            query(
                "cursor",
                "next_cursor of the previous page",
                type="string",
                pattern="^[0-9]{1,18}$",
            ),
            whole_query(
                "limit",
                "Page size",
                1,
                staff_accesses.MAX_LIMIT,
                staff_accesses.DEFAULT_LIMIT,
            ),
        ),
    ),
    Route(
        "GET",
        "/retention",
        lambda h: h.retention.status,
        "Last and next sweep, due and overdue counts, holds",
        {200: Answer("The retention status", "RetentionStatus")},
        (403,),
    ),
    Route(
        "GET",
        "/fetches/dead",
        lambda h: h.dead_letters.listed,
        "Provider fetches given up: calls announced and not fetched, until retried or "
        "discarded (retention operators)",
        {200: Answer("How many, and the newest 50", "DeadLetters")},
        (403,),
    ),
)
