"""Holds as the hub's policy defines them: typed, justified, time-limited.

Storage keeps holds; this module decides what a valid hold is (its kind and how far
ahead its review date may be), so the API and any future command apply the same rules.
Early erasure has its own module (erasure.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from storage import HOLD_KINDS, HoldView


class HoldStore(Protocol):
    """What the desk needs from storage's holds."""

    async def place(
        self, recording_id: uuid.UUID, *, kind: str, reason: str, review_by: datetime, actor: str
    ) -> tuple[HoldView, bool]: ...

    async def release(
        self, recording_id: uuid.UUID, *, kind: str | None, reason: str, actor: str
    ) -> list[str]: ...


class HoldRefused(ValueError):
    """The hold or release asked for breaks the policy; the message says how."""


class HoldDesk:
    """Places, renews and releases holds under the policy."""

    def __init__(
        self,
        holds: HoldStore,
        *,
        clock: Callable[[], datetime],
        max_review: timedelta,
    ) -> None:
        self._holds = holds
        self._clock = clock
        self.max_review = max_review

    async def place(
        self, recording_id: uuid.UUID, *, kind: str, reason: str, review_by: datetime, actor: str
    ) -> tuple[HoldView, bool]:
        """Place (True) or renew (False) a hold; HoldRefused for a bad kind or review date.

        The review date is bounded so that every hold is looked at again: a hold that is
        still needed is renewed with a fresh reason, one that is not simply lapses.
        """
        if kind not in HOLD_KINDS:
            raise HoldRefused(f"type must be one of {', '.join(HOLD_KINDS)}")
        now = self._clock()
        if review_by <= now:
            raise HoldRefused("review_by must be in the future")
        if review_by > now + self.max_review:
            days = self.max_review / timedelta(days=1)
            raise HoldRefused(f"review_by may be at most {days:g} days ahead; renew it later")
        return await self._holds.place(
            recording_id, kind=kind, reason=reason, review_by=review_by, actor=actor
        )

    async def release(
        self, recording_id: uuid.UUID, *, kind: str | None, reason: str, actor: str
    ) -> list[str]:
        """Release the holds in force (of one kind, or all); the kinds released."""
        if kind is not None and kind not in HOLD_KINDS:
            raise HoldRefused(f"type must be one of {', '.join(HOLD_KINDS)}")
        return await self._holds.release(recording_id, kind=kind, reason=reason, actor=actor)
