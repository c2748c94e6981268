"""The RTP ports a replica hands out, from one configured range, so a firewall between the
SBC and the recorder opens exactly that range (and the SIP port) and nothing else.

Ports are taken in turn round the range, skipping those this replica holds; a port some
other process holds is found when binding fails, and the next one is tried. A range of
N ports records N/2 two-party calls at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator


class PortRange:
    """Hands out ports in ``first..last`` (inclusive), in turn; returns them when freed."""

    def __init__(self, first: int, last: int) -> None:
        if not 1024 <= first <= last <= 65535:
            raise ValueError("an RTP port range is two ports from 1024 to 65535, low first")
        self.first, self.last = first, last
        self._held: set[int] = set()
        self._turn = itertools.cycle(range(first, last + 1))

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """``"40000-40999"``; ValueError naming the expected form otherwise."""
        low, dash, high = text.partition("-")
        if not (dash and low.strip().isdigit() and high.strip().isdigit()):
            raise ValueError("an RTP port range is written first-last, e.g. 40000-40999")
        return cls(int(low), int(high))

    @property
    def free(self) -> int:
        """Ports not held by this replica."""
        return self.last - self.first + 1 - len(self._held)

    def candidates(self) -> Iterator[int]:
        """Free ports, each at most once, starting where the last hand-out stopped."""
        for _ in range(self.last - self.first + 1):
            port = next(self._turn)
            if port not in self._held:
                yield port

    def hold(self, port: int) -> None:
        """Mark ``port`` as this replica's (bound by a session)."""
        self._held.add(port)

    def release(self, port: int) -> None:
        """Give ``port`` back."""
        self._held.discard(port)
