"""The drain after SIGTERM: its timetable within the grace period, and the requests it waits for.

``config.serving`` runs the drain; this module holds only its state, so the app (``/readyz``,
the webhooks) can see it without knowing how the process stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Handler

LONGEST_RESERVE_S = 5.0
"""At most this much of the grace period is kept back for storing what has fully arrived
and for closing down; the rest is the senders' to finish their uploads."""


@dataclass(frozen=True, slots=True)
class DrainPlan:
    """When each step of a drain happens, in seconds after SIGTERM."""

    bodies_until: float
    """Request bodies still arriving then are refused (503, Retry-After); fetches in
    flight are handed back to the queue."""
    storing_until: float
    """Captures still storing then (a long recording's rendition) are given up, what they
    began removed, and answered 503 with Retry-After."""
    answers_until: float
    """Requests still unanswered then are cancelled with their connections."""
    exit_by: float
    """The grace period: the process has exited by then."""

    @classmethod
    def within(cls, grace: timedelta) -> DrainPlan:
        """The plan for a grace period: a third of it (at most 5 s) kept in reserve, for
        storing what has fully arrived, answering, and closing down."""
        total = grace.total_seconds()
        reserve = min(total / 3, LONGEST_RESERVE_S)
        return cls(
            bodies_until=total - reserve,
            storing_until=total - reserve * 0.6,
            answers_until=total - reserve * 0.4,
            exit_by=total,
        )


class Drain:
    """Whether the service is draining, and the requests it is still handling."""

    def __init__(self) -> None:
        self.stop_receiving = asyncio.Event()
        """Set when bodies still arriving are to be refused rather than waited for."""
        self.stop_storing = asyncio.Event()
        """Set when captures still storing are to be given up and answered 503."""
        self._draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def draining(self) -> bool:
        """True from SIGTERM on: ``/readyz`` answers 503 and connections close after each answer."""
        return self._draining

    @property
    def in_flight(self) -> int:
        """Requests being handled now."""
        return self._in_flight

    def begin(self) -> None:
        """The process is stopping: tell load balancers, and keep no connection alive."""
        self._draining = True

    async def requests_finished(self, within: float) -> bool:
        """Wait up to ``within`` seconds for every request in hand to be answered (True)."""
        try:
            async with asyncio.timeout(max(within, 0.0)):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count the request while it is handled; once draining, close its connection after it."""
        self._in_flight += 1
        self._idle.clear()
        try:
            response = await handler(request)
            if self._draining:
                # A keep-alive connection would carry the sender's next request to a
                # process about to go; closing it sends that request to another replica.
                response.force_close()
            return response
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
