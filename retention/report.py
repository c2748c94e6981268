"""The operator's view of retention: storage's counts turned into the status an operator reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from retention.erasure import erasure_rule
from storage import RetentionFacts, UnlinkedCount, rfc3339


class RetentionCounts(Protocol):
    """What the report needs from storage's deleter."""

    async def facts(self, *, now: datetime, cutoff: datetime) -> RetentionFacts: ...


class TriageCounts(Protocol):
    """How many recordings linked to no referral await their team's triage."""

    async def count(self, *, now: datetime, review_after: timedelta) -> UnlinkedCount: ...


async def retention_status(
    counts: RetentionCounts,
    *,
    now: datetime,
    interval: timedelta,
    margin: timedelta,
    period: timedelta,
    erasure_approvals: int = 2,
    triage: TriageCounts | None = None,
    review_after: timedelta | None = None,
) -> dict[str, Any]:
    """Last and next sweep, what is due and overdue, holds, the early-erasure rule and,
    given ``triage`` and ``review_after``, the calls without a referral awaiting triage
    (a backlog there is calls nobody will find by their referral): the operator's view,
    as JSON."""
    facts = await counts.facts(now=now, cutoff=now + interval + margin)
    last = facts.last_sweep_at
    status: dict[str, Any] = {
        "retention_period_days": period / timedelta(days=1),
        "sweep_interval_s": interval.total_seconds(),
        "last_sweep": None if last is None else {"at": _iso(last), **(facts.last_sweep or {})},
        "next_sweep": _iso(max(now, last + interval)) if last is not None else None,
        "due_before_next_sweep": facts.due,
        # Past their deadline without a hold, stored or never finished: must be 0.
        "overdue": facts.overdue,
        "oldest_deadline": _iso(facts.oldest_deadline),
        "oldest_unheld_age_s": _age(now, facts.oldest_unheld_started_at),
        "recordings": {
            "stored": facts.stored,
            "deleting": facts.deleting,
            "deleted": facts.deleted,
        },
        "holds": {
            "recordings_held": facts.held,
            "held_past_deadline": facts.held_past_deadline,
            "by_kind": facts.holds_by_kind,
        },
        "last_attestation": _iso(facts.last_attestation_at),
        "early_erasure": {
            "approvals_required": erasure_approvals,
            "rule": erasure_rule(erasure_approvals),
        },
    }
    if triage is not None and review_after is not None:
        unlinked = await triage.count(now=now, review_after=review_after)
        status["triage"] = {
            "review_after_days": review_after / timedelta(days=1),
            "awaiting": unlinked.total,
            "by_team": unlinked.by_team,
        }
    return status


def _age(now: datetime, moment: datetime | None) -> float | None:
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)
