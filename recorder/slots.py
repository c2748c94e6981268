"""Capture slots: how many pushes are received at once, and how many of those are strangers.

A push is unauthenticated until its last byte (its signature covers the whole body), or
until it shows a pre-authentication header. Unauthenticated uploads share a budget of
their own, smaller than the whole, so they can never take every slot: the rest is kept
for pushes whose sender is proven (pre-authenticated, or signed and being stored). Within
the unauthenticated budget, a newcomer that finds it full and has shown its pace (its
body arrives briskly before it is admitted) takes the slot of the slowest upload that is
past its first moments and crawling (``pace.DISPLACEABLE_BELOW``). A flood of slow bodies
shows no pace, so it can neither displace anyone nor keep a slot from a real sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from recorder.errors import BodyStalled, Busy
from recorder.pace import BodyPace

BUSY = "too many recordings are being received at once; retry shortly"
DISPLACED = "the body arrived too slowly while other pushes waited for a slot"


class Slot:
    """One upload's hold on a capture slot; released exactly once."""

    def __init__(self, slots: CaptureSlots, pace: BodyPace, *, authenticated: bool) -> None:
        self._slots = slots
        self.pace = pace
        self.authenticated = authenticated
        self.displaced = asyncio.Event()
        self._released = False

    def authenticate(self) -> None:
        """The sender is proven: leave the unauthenticated budget, keep the slot."""
        if not self.authenticated:
            self.authenticated = True
            self._slots.vouch_for(self)

    def check_displaced(self) -> None:
        """Raise BodyStalled if a newcomer has taken this upload's slot."""
        if self.displaced.is_set():
            raise BodyStalled(DISPLACED)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._slots.free(self)


class CaptureSlots:
    """At most ``total`` uploads at once, at most ``unauthenticated`` of them unproven."""

    def __init__(self, total: int, unauthenticated: int, clock: Callable[[], float]) -> None:
        if not 0 < unauthenticated <= total:
            raise ValueError("the unauthenticated budget must be between 1 and the total")
        self._total = total
        self._unauthenticated_limit = unauthenticated
        self._clock = clock
        self._held: set[Slot] = set()
        self._unauthenticated: set[Slot] = set()

    def take(self, *, authenticated: bool, proven: bool = False) -> Slot:
        """A slot for a new upload; Busy if none is free.

        A ``proven`` newcomer (its body already arriving briskly) takes the slot of a
        crawling unauthenticated upload rather than be refused.
        """
        full = len(self._held) >= self._total or (
            not authenticated and len(self._unauthenticated) >= self._unauthenticated_limit
        )
        if full and not proven:
            raise Busy(BUSY)
        if full:
            self._displace_slowest()
        now = self._clock()
        slot = Slot(self, BodyPace(now), authenticated=authenticated)
        self._held.add(slot)
        if not authenticated:
            self._unauthenticated.add(slot)
        return slot

    def _displace_slowest(self) -> None:
        now = self._clock()
        crawling = [slot for slot in self._unauthenticated if slot.pace.displaceable(now)]
        if not crawling:
            raise Busy(BUSY)
        slowest = min(crawling, key=lambda slot: slot.pace.rate(now))
        slowest.displaced.set()
        slowest.release()

    def vouch_for(self, slot: Slot) -> None:
        """Count ``slot`` out of the unauthenticated budget (its sender is proven)."""
        self._unauthenticated.discard(slot)

    def free(self, slot: Slot) -> None:
        """Give ``slot`` back; called once, by ``Slot.release``."""
        self._held.discard(slot)
        self._unauthenticated.discard(slot)

    @property
    def in_use(self) -> int:
        return len(self._held)
