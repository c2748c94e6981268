"""The subject access routes of the API (the DPO's alone), declared as routes.py declares
the rest; ROUTES includes them, so the router and the OpenAPI document both read them."""

from __future__ import annotations

from retrieval.route_types import Answer, Route, query
from retrieval.subject_access import CASE_STATES

SUBJECT_ACCESS_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/subject-access-requests",
        lambda h: h.subject_access.open,
        "Open a subject access request's case: its recordings are found and held "
        "(subject_access_pending) while it is open; the deadline is one month from receipt "
        "(DPO; audited)",
        {201: Answer("The case, with its deadline and matched recordings", "SubjectAccessCase")},
        (403, 409, 422),
        body="SubjectAccessRequest",
    ),
    Route(
        "GET",
        "/subject-access-requests",
        lambda h: h.subject_access.listed,
        "Subject access cases, nearest deadline first (DPO; audited)",
        {200: Answer("The cases", "SubjectAccessCases")},
        (400, 403),
        query=(
            query(
                "state",
                "Which cases",
                type="string",
                enum=list(CASE_STATES),
                default=CASE_STATES[0],
            ),
        ),
    ),
    Route(
        "GET",
        "/subject-access-requests/{id}",
        lambda h: h.subject_access.get,
        "One case, with its recordings and their redactions (DPO; audited)",
        {200: Answer("The case", "SubjectAccessCase")},
        (403, 404),
    ),
    Route(
        "POST",
        "/subject-access-requests/{id}/extend",
        lambda h: h.subject_access.extend,
        "Extend the deadline by two further months, once, with the reason (DPO; audited)",
        {200: Answer("The case", "SubjectAccessCase")},
        (403, 404, 409, 422),
        body="Reason",
    ),
    Route(
        "PUT",
        "/subject-access-requests/{id}/recordings/{recording}/redaction",
        lambda h: h.subject_access.redact,
        "Choose what the requester gets of one recording: their channel only (the other "
        "silenced) and time ranges muted (DPO; audited; the original is never changed)",
        {200: Answer("The case", "SubjectAccessCase")},
        (403, 404, 409, 422),
        body="Redaction",
    ),
    Route(
        "POST",
        "/subject-access-requests/{id}/export",
        lambda h: h.exports.export,
        "The case's bundle, streamed and kept nowhere: each recording as redacted (WAV), its "
        "metadata without other people's personal data, who accessed it and why, and a "
        "manifest of SHA-256s signed with the receipt key; encrypted with age to the "
        "recipients' public keys or a passphrase (DPO; audited with every hash). `callrec "
        "sar verify` checks it offline",
        {200: Answer("The age-encrypted bundle", media="application/octet-stream")},
        (403, 404, 409, 422),
        body="SubjectAccessExport",
    ),
    Route(
        "POST",
        "/subject-access-requests/{id}/close",
        lambda h: h.subject_access.close,
        "Close the case: its holds are released where no other open case needs them, and "
        "the requester's numbers are forgotten (DPO; audited)",
        {200: Answer("The closed case", "SubjectAccessCase")},
        (403, 404, 409, 422),
        body="Reason",
    ),
)
