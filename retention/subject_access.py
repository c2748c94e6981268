"""Subject access requests under the UK GDPR: the statutory clock, and the holds that keep
a case's recordings for as long as the case is open.

The council must answer within one calendar month of receipt (ICO: a request received on
3 January is due on 3 February; where the next month is shorter, on its last day), and may
extend by two further months, once, with a reason recorded. While a case is open its
recordings must not be deleted by the 90-day rule before the requester has them, so each
carries a ``subject_access_pending`` hold. Holds always have a review date (a forgotten
hold must lapse, storage/holds.py); here that date runs a margin past the case's deadline
and the retention cycle keeps it ahead while the case stays open, so an overdue case never
loses its recordings and a closed one lets them go at once.

Storage keeps cases and holds; this module decides dates, what a case covers and when holds
move. Handlers and commands reach it through small protocols.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from dateutil.relativedelta import relativedelta

from storage import (
    SUBJECT_ACCESS_HOLD,
    CaseView,
    HoldView,
    NotStored,
    RecordingView,
    SearchQuery,
)

STATUTORY_PERIOD = relativedelta(months=1)
EXTENSION = relativedelta(months=2)
# How far past the deadline a case's hold reaches, and how close to its review date the
# cycle renews it: a week of runs may fail before anything lapses.
HOLD_MARGIN = timedelta(days=30)
RENEW_WITHIN = timedelta(days=7)
# One person's calls in 90 days; far more means the search was too wide to be theirs.
MAX_CASE_RECORDINGS = 500
HOLD_REASON = "subject access request {reference} is open"
UPKEEP_REASON = "an open subject access request covers it"


def statutory_deadline(received: date) -> date:
    """One calendar month from receipt, clamped to the month's last day."""
    return received + STATUTORY_PERIOD


def extended_deadline(received: date) -> date:
    """The latest deadline an extension allows: three calendar months from receipt."""
    return received + STATUTORY_PERIOD + EXTENSION


def hold_review(deadline: date, today: date) -> datetime:
    """A case hold's review date: the margin past the later of the deadline and today."""
    return datetime.combine(max(deadline, today), time(), tzinfo=UTC) + HOLD_MARGIN


class CaseRefused(ValueError):
    """What was asked of a case breaks the rules; the message says which."""


class CaseTooWide(CaseRefused):
    """The search found more recordings than one person's case may cover."""


class Finder(Protocol):
    """The catalog's search (storage's RecordingCatalog)."""

    async def search(self, query: SearchQuery) -> list[RecordingView]: ...


class CaseRecords(Protocol):
    """What the office needs from storage's SubjectAccessCases."""

    async def open(
        self,
        *,
        reference: str,
        received: date,
        deadline: date,
        reason: str,
        criteria: Mapping[str, Any],
        recording_ids: Sequence[uuid.UUID],
        actor: str,
    ) -> CaseView: ...

    async def get(self, case_id: uuid.UUID) -> CaseView: ...

    async def listed(self, *, state: str | None = ...) -> list[CaseView]: ...

    async def extend(
        self, case_id: uuid.UUID, *, deadline: date, reason: str, actor: str
    ) -> CaseView: ...

    async def choose_redaction(
        self,
        case_id: uuid.UUID,
        recording_id: uuid.UUID,
        *,
        redaction: Mapping[str, Any],
        actor: str,
    ) -> CaseView: ...

    async def close(self, case_id: uuid.UUID, *, reason: str, actor: str) -> CaseView: ...

    async def record_export(
        self, case_id: uuid.UUID, *, actor: str, details: Mapping[str, Any]
    ) -> None: ...


class Coverage(Protocol):
    """Storage's CaseCoverage: what open cases cover, against the holds in force."""

    async def unheld(self) -> list[tuple[uuid.UUID, date]]: ...

    async def holding(self) -> list[tuple[uuid.UUID, date, datetime]]: ...

    async def still_needed(self, recording_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]: ...


class CaseHolds(Protocol):
    """Storage's RecordingHolds: placing (or renewing) and releasing one kind of hold."""

    async def place(
        self, recording_id: uuid.UUID, *, kind: str, reason: str, review_by: datetime, actor: str
    ) -> tuple[HoldView, bool]: ...

    async def release(
        self, recording_id: uuid.UUID, *, kind: str | None, reason: str, actor: str
    ) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Criteria:
    """How a case finds its recordings: numbers (E.164), referrals, a window of time."""

    phone_numbers: tuple[str, ...] = ()
    referrals: tuple[str, ...] = ()
    started_after: datetime | None = None
    started_before: datetime | None = None

    def query(self, limit: int, readable_at: datetime) -> SearchQuery:
        """The catalog search for these criteria, across every team, of what may still be
        read at ``readable_at`` (past its deadline only under a hold)."""
        return SearchQuery(
            teams=None,
            readable_at=readable_at,
            numbers=self.phone_numbers,
            referrals=self.referrals,
            started_after=self.started_after,
            started_before=self.started_before,
            limit=limit,
        )

    def as_record(self) -> dict[str, Any]:
        """The criteria as the case keeps them (the numbers only while it is open)."""
        record: dict[str, Any] = {
            "phone_numbers": list(self.phone_numbers),
            "referrals": list(self.referrals),
        }
        if self.started_after is not None:
            record["started_after"] = self.started_after.isoformat()
        if self.started_before is not None:
            record["started_before"] = self.started_before.isoformat()
        return record


@dataclass(frozen=True, slots=True)
class HoldUpkeep:
    """What one pass over the case holds did."""

    placed: int = 0
    renewed: int = 0


class SubjectAccessOffice:
    """Opens, extends, decides and closes cases; keeps their recordings held meanwhile."""

    def __init__(
        self,
        records: CaseRecords,
        coverage: Coverage,
        finder: Finder,
        holds: CaseHolds,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._records = records
        self._coverage = coverage
        self._finder = finder
        self._holds = holds
        self._clock = clock

    @staticmethod
    def criteria(
        *,
        phone_numbers: tuple[str, ...],
        referrals: tuple[str, ...],
        started_after: datetime | None,
        started_before: datetime | None,
    ) -> Criteria:
        """The criteria of a search or case (numbers already in E.164)."""
        return Criteria(phone_numbers, referrals, started_after, started_before)

    async def find(self, criteria: Criteria, *, limit: int) -> list[RecordingView]:
        """The recordings the criteria match across every team, newest first."""
        if not (criteria.phone_numbers or criteria.referrals):
            raise CaseRefused("name at least one phone number or referral")
        return await self._finder.search(criteria.query(limit, self._clock()))

    async def open(
        self, *, reference: str, received: date, reason: str, criteria: Criteria, actor: str
    ) -> CaseView:
        """Open a case for a request received on ``received``: its recordings found and held.

        Raises CaseRefused for a receipt date in the future or before any recording could
        exist, CaseTooWide for a search wider than one person's calls, and storage's
        CaseExists for a reference already on record.
        """
        today = self._clock().date()
        if received > today:
            raise CaseRefused("received must not be in the future")
        if received < today - timedelta(days=366):
            raise CaseRefused("received is more than a year ago; check the date")
        found = await self.find(criteria, limit=MAX_CASE_RECORDINGS + 1)
        if len(found) > MAX_CASE_RECORDINGS:
            raise CaseTooWide(
                f"the search matches more than {MAX_CASE_RECORDINGS} recordings; "
                "narrow it with dates or referrals"
            )
        case = await self._records.open(
            reference=reference,
            received=received,
            deadline=statutory_deadline(received),
            reason=reason,
            criteria=criteria.as_record(),
            recording_ids=[view.id for view in found],
            actor=actor,
        )
        await self._hold_all(case, actor)
        return await self._records.get(case.id)

    async def extend(self, case_id: uuid.UUID, *, reason: str, actor: str) -> CaseView:
        """Extend by two months, once, with a reason; the holds follow the new deadline."""
        case = await self._records.get(case_id)
        if case.extended_at is not None:
            raise CaseRefused("the deadline has been extended already; it extends only once")
        extended = await self._records.extend(
            case_id, deadline=extended_deadline(case.received), reason=reason, actor=actor
        )
        await self._hold_all(extended, actor)
        return await self._records.get(case_id)

    async def choose_redaction(
        self,
        case_id: uuid.UUID,
        recording_id: uuid.UUID,
        *,
        redaction: Mapping[str, Any],
        actor: str,
    ) -> CaseView:
        """Record what the requester gets of one recording (validated by the caller)."""
        return await self._records.choose_redaction(
            case_id, recording_id, redaction=redaction, actor=actor
        )

    async def close(self, case_id: uuid.UUID, *, reason: str, actor: str) -> CaseView:
        """Close a case; each of its recordings no other open case covers is released."""
        closed = await self._records.close(case_id, reason=reason, actor=actor)
        ids = [item.recording_id for item in closed.recordings]
        needed = await self._coverage.still_needed(ids)
        for recording_id in ids:
            if recording_id not in needed:
                await self._holds.release(
                    recording_id,
                    kind=SUBJECT_ACCESS_HOLD,
                    reason=f"subject access request {closed.reference} closed",
                    actor=actor,
                )
        return await self._records.get(case_id)

    async def get(self, case_id: uuid.UUID) -> CaseView:
        """One case with its recordings."""
        return await self._records.get(case_id)

    async def record_export(
        self, case_id: uuid.UUID, *, actor: str, details: Mapping[str, Any]
    ) -> None:
        """Audit one export of an open case: who, and every file's hash."""
        await self._records.record_export(case_id, actor=actor, details=details)

    async def listed(self, *, state: str | None) -> list[CaseView]:
        """Cases, nearest deadline first."""
        return await self._records.listed(state=state)

    async def keep_holds(self, *, actor: str) -> HoldUpkeep:
        """Place the holds an open case lacks and renew those near their review date.

        Run before every retention sweep, so a recording in an open case is held however
        long the case stays open, and a case opened while the store was out of reach gets
        its holds as soon as it is back.
        """
        now = self._clock()
        placed = renewed = 0
        for recording_id, deadline in await self._coverage.unheld():
            if await self._place(recording_id, deadline, actor=actor):
                placed += 1
        for recording_id, deadline, review_by in await self._coverage.holding():
            # Near its review date, or short of a deadline moved by an extension.
            due = review_by - now < RENEW_WITHIN or review_by < hold_review(deadline, deadline)
            if due and await self._place(recording_id, deadline, actor=actor):
                renewed += 1
        return HoldUpkeep(placed=placed, renewed=renewed)

    async def _hold_all(self, case: CaseView, actor: str) -> None:
        current = await self._records.get(case.id)
        for item in current.recordings:
            if item.state == "stored":
                await self._place(item.recording_id, case.deadline, actor=actor, case=case)

    async def _place(
        self,
        recording_id: uuid.UUID,
        deadline: date,
        *,
        actor: str,
        case: CaseView | None = None,
    ) -> bool:
        reason = UPKEEP_REASON if case is None else HOLD_REASON.format(reference=case.reference)
        try:
            await self._holds.place(
                recording_id,
                kind=SUBJECT_ACCESS_HOLD,
                reason=reason,
                review_by=hold_review(deadline, self._clock().date()),
                actor=actor,
            )
        except NotStored:
            return False  # its deletion began before the case: the case shows it went
        return True
