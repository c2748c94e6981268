"""Listening sessions: what each grant has played, written to the audit trail in summary.

The grant (with its reason) is audited before its link exists, and the first range a
grant plays is audited before its first byte. The ranges that follow are gathered here
and written as one event per session once it goes quiet, every ``max_ranges`` ranges,
and at shutdown: a player asks for dozens of ranges, and a durable commit for each
would cost more than serving it (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from retrieval.access import AuditSink
from storage import AuditRecord, Unavailable

log = logging.getLogger(__name__)


@dataclass
class _Session:
    actor: str
    recording_id: uuid.UUID
    purpose: str
    ranges: list[tuple[int, int]] = field(default_factory=list)
    seconds: list[tuple[float, float]] = field(default_factory=list)
    requests: int = 0
    last_seen: float = 0.0


class PlaybackJournal:
    """Per-grant record of played ranges, flushed to the audit trail in merged form."""

    def __init__(
        self,
        audit: AuditSink,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_s: float = 30.0,
        max_ranges: int = 200,
    ) -> None:
        self._audit = audit
        self._clock = clock
        self._idle_s = idle_s
        self._max_ranges = max_ranges
        self._sessions: dict[uuid.UUID, _Session] = {}

    async def start(
        self, grant_id: uuid.UUID, *, actor: str, recording_id: uuid.UUID, purpose: str
    ) -> None:
        """Open the session, auditing it before any byte; a no-op once open.

        Raises when the audit trail cannot be written, so nothing is served.
        """
        if grant_id in self._sessions:
            return
        await self._audit.record(
            AuditRecord(
                actor=actor,
                action="recording.play_open",
                recording_id=recording_id,
                purpose=purpose,
                details={"grant": str(grant_id)},
            )
        )
        self._sessions[grant_id] = _Session(actor, recording_id, purpose, last_seen=self._clock())

    async def played(
        self, grant_id: uuid.UUID, start: int, end: int, seconds: tuple[float, float] | None
    ) -> None:
        """Note a served range; flushes the session when it has gathered many."""
        session = self._sessions.get(grant_id)
        if session is None:
            return
        session.ranges.append((start, end))
        if seconds is not None:
            session.seconds.append(seconds)
        session.requests += 1
        session.last_seen = self._clock()
        log.info("range served", extra={"grant": str(grant_id), "start": start, "end": end})
        if len(session.ranges) >= self._max_ranges:
            await self._write(grant_id, session)

    async def flush(self, *, idle_only: bool = True) -> None:
        """Write every quiet session (or every session) to the audit trail."""
        now = self._clock()
        for grant_id, session in list(self._sessions.items()):
            if not session.ranges:
                if now - session.last_seen >= self._idle_s:
                    self._sessions.pop(grant_id, None)
                continue
            if idle_only and now - session.last_seen < self._idle_s:
                continue
            try:
                await self._write(grant_id, session)
            except Unavailable:
                log.warning("could not write a listening session yet; will retry")
                return
            if idle_only:
                self._sessions.pop(grant_id, None)

    async def run(self, interval_s: float = 5.0) -> None:
        """Flush quiet sessions until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()

    async def _write(self, grant_id: uuid.UUID, session: _Session) -> None:
        ranges, seconds = _merged(session.ranges), _merged(session.seconds)
        requests = session.requests
        await self._audit.record(
            AuditRecord(
                actor=session.actor,
                action="recording.played",
                recording_id=session.recording_id,
                purpose=session.purpose,
                details={
                    "grant": str(grant_id),
                    "ranges": [list(span) for span in ranges],
                    "seconds": [list(span) for span in seconds],
                    "requests": requests,
                },
            )
        )
        session.ranges.clear()
        session.seconds.clear()
        session.requests = 0


_Number = TypeVar("_Number", int, float)


def _merged(spans: list[tuple[_Number, _Number]]) -> list[tuple[_Number, _Number]]:
    """Overlapping and touching spans joined: sequential playback becomes one span."""
    result: list[tuple[_Number, _Number]] = []
    for start, end in sorted(spans):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(result[-1][1], end))
        else:
            result.append((start, end))
    return result
