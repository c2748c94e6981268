"""The daily attestation: what it proves, what it lists, and when the next one is due.

Storage answers the questions (how many are overdue, which holds keep which, how late
the recent deletions were) and writes the event it is handed; what the attestation says
and how often it is written are decided here.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from retention.erasure import erasure_rule
from storage import RetentionFacts, rfc3339

ATTESTATION_INTERVAL = timedelta(days=1)
LISTED_HOLDS = 1000
"""An attestation names at most this many held recordings, and says whether it named all."""


class AttestationRecords(Protocol):
    """What an attestation needs from storage's deleter."""

    async def overdue_unheld(self, *, now: datetime) -> int: ...

    async def held_past_deadline(
        self, *, now: datetime, limit: int
    ) -> list[tuple[uuid.UUID, str, datetime]]: ...

    async def deleted_since(self, since: datetime) -> list[tuple[datetime, datetime]]: ...

    async def erasures_since(self, since: datetime) -> list[dict[str, Any]]: ...

    async def record_attestation(self, details: dict[str, Any], *, passed: bool) -> None: ...

    async def facts(self, *, now: datetime, cutoff: datetime) -> RetentionFacts: ...


async def attest(
    records: AttestationRecords,
    *,
    now: datetime,
    window: timedelta,
    erasure_approvals: int = 2,
) -> dict[str, Any]:
    """Write the attestation: nothing is stored past its deadline unless on a listed hold.

    ``overdue_unheld`` must be 0: it counts captures that never finished (pending rows,
    which carry the call's phone numbers) as well as stored recordings.
    ``largest_deletion_lag_s`` is the longest any recording deleted in the last
    ``window`` outlived its deadline (negative when every one went early, as sweeps
    ahead of the deadline make it). ``early_erasure`` states the rule early erasures are
    under (``erasure_approvals``) and counts those of the window, saying how many one DPO
    authorised alone.
    """
    overdue_unheld = await records.overdue_unheld(now=now)
    held = await records.held_past_deadline(now=now, limit=LISTED_HOLDS + 1)
    lags = [
        (deleted_at - deadline).total_seconds()
        for deleted_at, deadline in await records.deleted_since(now - window)
    ]
    details: dict[str, Any] = {
        "at": rfc3339(now),
        "overdue_unheld": overdue_unheld,
        "held_past_deadline": [
            {"recording_id": str(rid), "kind": kind, "review_by": rfc3339(review_by)}
            for rid, kind, review_by in held[:LISTED_HOLDS]
        ],
        "held_list_complete": len(held) <= LISTED_HOLDS,
        "deletions_in_window": len(lags),
        "window_s": window.total_seconds(),
        "largest_deletion_lag_s": max(lags) if lags else None,
        "early_erasure": await early_erasure(
            records, since=now - window, approvals=erasure_approvals
        ),
    }
    await records.record_attestation(details, passed=overdue_unheld == 0)
    return details


async def early_erasure(
    records: AttestationRecords, *, since: datetime, approvals: int
) -> dict[str, Any]:
    """The rule early erasures are under, and those begun since ``since`` by how many DPOs."""
    erasures = await records.erasures_since(since)
    return {
        "approvals_required": approvals,
        "rule": erasure_rule(approvals),
        "erasures_in_window": len(erasures),
        "authorised_by_single_dpo": sum(1 for item in erasures if item.get("approvals") == 1),
    }


async def attest_if_due(
    records: AttestationRecords,
    *,
    now: datetime,
    every: timedelta = ATTESTATION_INTERVAL,
    erasure_approvals: int = 2,
) -> dict[str, Any] | None:
    """Write the daily attestation when the last one is ``every`` old (or there is none).

    Run after each sweep, so a day missed while the service was down is caught up at
    the first sweep after start-up.
    """
    facts = await records.facts(now=now, cutoff=now)
    last = facts.last_attestation_at
    if last is not None and now - last < every:
        return None
    return await attest(records, now=now, window=every, erasure_approvals=erasure_approvals)
