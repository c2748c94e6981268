"""The export of a subject access case: what the requester receives, as one signed bundle.

For each recording the case covers and still holds, the bundle carries the audio as the
DPO chose to redact it (made from the encrypted original by the media workers, never as a
plaintext file), its metadata without other people's personal data, and who accessed it
and why, since the recipients of a person's data are part of their right of access. Staff
are named by role unless the DPO includes their names; the other party to a call is shown
only as "other party". The export is audited with every file's hash.

The redacted audio comes through the small ``Redactor`` protocol (recorder's media
workers, wired in config), so this module depends on no feature but its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from retrieval.access import RecordingQueries
from retrieval.sar_bundle import (
    BundleCase,
    BundleEntry,
    BundleSink,
    BundleSummary,
    Encryption,
    json_entry,
    write_bundle,
)
from retrieval.staff_accesses import ACCESS_KINDS, CallAccessReader
from storage import (
    CallAccessQuery,
    CaseRecording,
    CaseView,
    ReceiptSigner,
    RecordingView,
    rfc3339,
)

# Who a purpose's grant is given to, as the requester is told the recipient of their data.
RECIPIENT_OF_PURPOSE: Mapping[str, str] = {
    "quality_review": "a supervisor (quality review)",
    "staff_safety": "a safety reviewer (staff-safety incident review)",
    "subject_access": "the data protection officer (your subject access request)",
}
OTHER_PARTY = "other party (withheld)"
STAFF = "a call handler of the hub"
MAX_ACCESSES = 1000


class RedactedAudio(Protocol):
    """A recording as redacted, decrypted only as it is read."""

    @property
    def size(self) -> int: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


class Redactor(Protocol):
    """Makes a recording's redacted audio (WAV) from its encrypted original, as the case
    keeps the DPO's choice (recorder's RedactedCopies)."""

    def open_chosen(
        self,
        recording_id: uuid.UUID,
        choice: Mapping[str, Any] | None,
        *,
        channels: int | None,
        duration_s: float | None,
    ) -> AbstractAsyncContextManager[RedactedAudio]: ...


class ExportRecords(Protocol):
    """The cases: the one to export, and the audit of its export."""

    async def get(self, case_id: uuid.UUID) -> CaseView: ...

    async def record_export(
        self, case_id: uuid.UUID, *, actor: str, details: Mapping[str, Any]
    ) -> None: ...


class NotReadyToExport(ValueError):
    """The case cannot be exported yet (closed, or a recording's redaction not chosen)."""


@dataclass(frozen=True, slots=True)
class ExportParts:
    """What an export reads from and signs with."""

    cases: ExportRecords
    recordings: RecordingQueries
    accesses: CallAccessReader
    redactor: Redactor
    signer: ReceiptSigner
    clock: Callable[[], datetime]


def exportable(case: CaseView) -> list[CaseRecording]:
    """The recordings the bundle carries; NotReadyToExport unless every one is decided."""
    if case.state != "open":
        raise NotReadyToExport("the case is closed; only an open case is exported")
    stored = [item for item in case.recordings if item.state == "stored"]
    undecided = [item for item in stored if item.redaction is None]
    if undecided:
        raise NotReadyToExport(
            f"{len(undecided)} of {len(stored)} recordings have no redaction chosen yet; "
            "choose what the requester gets of each first"
        )
    return stored


async def export_case(
    parts: ExportParts,
    case_id: uuid.UUID,
    *,
    encryption: Encryption,
    sink: BundleSink,
    actor: str,
    include_staff_names: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BundleSummary:
    """Write the case's bundle to ``sink`` and audit it; NotReadyToExport before any byte
    is written when the case cannot be exported."""
    case = await parts.cases.get(case_id)
    items = exportable(case)
    created_at = parts.clock()
    entries = _entries(parts, case, items, include_staff_names, progress)
    summary = await write_bundle(
        entries,
        case=BundleCase(str(case.id), case.reference),
        created_at=created_at,
        signer=parts.signer,
        encryption=encryption,
        sink=sink,
    )
    details = summary.audit_details()
    details["recordings"] = [str(item.recording_id) for item in items]
    details["staff_names_included"] = include_staff_names
    await parts.cases.record_export(case.id, actor=actor, details=details)
    return summary


async def _entries(
    parts: ExportParts,
    case: CaseView,
    items: Sequence[CaseRecording],
    include_staff_names: bool,
    progress: Callable[[int], None] | None,
) -> AsyncIterator[BundleEntry]:
    numbers = set(case.criteria.get("phone_numbers") or ())
    yield json_entry("case.json", _case_json(case, items))
    for item in items:
        view = await parts.recordings.get(item.recording_id)
        if view is None:
            continue
        folder = f"recordings/{item.recording_id}"
        yield json_entry(
            f"{folder}/metadata.json",
            _metadata_json(view, item, numbers, include_staff_names),
        )
        yield json_entry(
            f"{folder}/accesses.json", await _accesses_json(parts, view.id, include_staff_names)
        )
        async with parts.redactor.open_chosen(
            item.recording_id, item.redaction, channels=item.channels, duration_s=item.duration_s
        ) as audio:
            yield BundleEntry(f"{folder}/audio.wav", audio.size, audio.chunks())
        if progress is not None:
            progress(1)


def _case_json(case: CaseView, items: Sequence[CaseRecording]) -> dict[str, Any]:
    return {
        "reference": case.reference,
        "received": case.received.isoformat(),
        "deadline": case.deadline.isoformat(),
        "recordings": [str(item.recording_id) for item in items],
        "about": (
            "The recordings of your calls that the hub holds, as the law lets it give them "
            "to you: other people's voices and details removed. Each folder holds one call's "
            "audio (WAV), its details, and who listened to it and why."
        ),
    }


def _metadata_json(
    view: RecordingView,
    item: CaseRecording,
    numbers: set[str],
    include_staff_names: bool,
) -> dict[str, Any]:
    def party(number: str | None) -> str | None:
        if number is None:
            return None
        return number if number in numbers else OTHER_PARTY

    return {
        "id": str(view.id),
        "started_at": rfc3339(view.started_at),
        "ended_at": None if view.ended_at is None else rfc3339(view.ended_at),
        "direction": view.direction,
        "from": party(view.from_number),
        "to": party(view.to_number),
        "answered_by": (view.agent or STAFF) if include_staff_names else STAFF,
        "duration_s": view.duration_s,
        "channels": view.channels,
        "referrals": list(view.referrals),
        "deleted_by": rfc3339(view.retention_deadline),
        "redaction": dict(item.redaction or {}),
    }


async def _accesses_json(
    parts: ExportParts, recording_id: uuid.UUID, include_staff_names: bool
) -> list[dict[str, Any]]:
    found = await parts.accesses.accesses(
        CallAccessQuery(
            agent=None,
            actions=frozenset(ACCESS_KINDS),
            limit=MAX_ACCESSES,
            recording_id=recording_id,
        )
    )
    return [
        {
            "at": rfc3339(access.occurred_at),
            "what": ACCESS_KINDS.get(access.action, access.action),
            "purpose": access.purpose,
            "by": access.actor
            if include_staff_names
            else RECIPIENT_OF_PURPOSE.get(access.purpose or "", "a member of the hub's staff"),
        }
        for access in reversed(found)
    ]
