"""How fast a push body must arrive: a short grace, then a minimum rate over a rolling window.

A body's signature covers all of it, so until its last byte nobody knows whether it comes
from a source or a stranger; what holds a capture slot meanwhile must at least be moving.
Judged from the first seconds, not on average after a minute: a sender trickling a byte a
second is cut within seconds, not after holding its slot for a minute.
"""

from __future__ import annotations

from collections import deque

BODY_GRACE_S = 3.0
"""Connection set-up and TCP slow start: no rate is asked of a body this young."""
BODY_WINDOW_S = 5.0
"""The rate is judged over the last this many seconds, so a pause or a burst is forgiven."""
BODY_MIN_RATE = 32 * 1024
"""Bytes per second over the window; a quarter of a megabit, far below any PBX's uplink."""
DISPLACEABLE_BELOW = 4 * BODY_MIN_RATE
"""An unauthenticated upload under this rate gives its slot to a newcomer when the
unauthenticated budget is full: a flood at the minimum rate cannot hold it."""
DISPLACEABLE_AFTER_S = 0.5
"""An upload's first moments are its own, before its pace can be judged against others'."""
PROOF_BYTES = 64 * 1024
"""What a newcomer that finds every slot taken must have sent (or all of its body, if
smaller) to take a crawler's slot: a real sender's first round trips, a trickle's hour."""
PROOF_WAIT_S = 2.0
"""How long such a newcomer may take to show that, and to find a crawler to displace."""
PROOF_POLL_S = 0.1


class BodyPace:
    """The bytes one body has delivered and when; says whether it is too slow to keep."""

    def __init__(self, started: float) -> None:
        self._started = started
        self._received = 0
        # (time, bytes received by then), oldest first; one sample at or before the
        # window's start is kept so the window's opening count is known.
        self._samples: deque[tuple[float, int]] = deque([(started, 0)])

    @property
    def received(self) -> int:
        return self._received

    def arrived(self, now: float, count: int) -> None:
        """Record ``count`` more bytes, received at ``now``."""
        self._received += count
        self._samples.append((now, self._received))
        window_start = now - BODY_WINDOW_S
        while len(self._samples) > 1 and self._samples[1][0] <= window_start:
            self._samples.popleft()

    def rate(self, now: float) -> float:
        """Bytes per second over the window (or since the start, when that is shorter)."""
        window_start = max(self._started, now - BODY_WINDOW_S)
        opening = 0
        for moment, received in self._samples:
            if moment > window_start:
                break
            opening = received
        span = max(now - window_start, 1e-3)
        return (self._received - opening) / span

    def past_grace(self, now: float) -> bool:
        return now - self._started >= BODY_GRACE_S

    def too_slow(self, now: float) -> bool:
        """True once past the grace period with the window's rate under the minimum."""
        return self.past_grace(now) and self.rate(now) < BODY_MIN_RATE

    def displaceable(self, now: float) -> bool:
        """True when a newcomer may take this upload's unauthenticated slot."""
        return now - self._started >= DISPLACEABLE_AFTER_S and self.rate(now) < DISPLACEABLE_BELOW
