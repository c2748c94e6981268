"""Putting a stream's packets back in order: sequence numbers extended past their wrap,
duplicates and stragglers counted and dropped, gaps given up on after a small window.

Pure and clock-free (the receiver decides when waiting is over), so the ordering rules
can be held to properties: any arrival order within the window comes out in order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class Unwrapper:
    """Extends a counter that wraps at ``2**bits`` (RTP's 16-bit sequence numbers, 32-bit
    timestamps) to an unbounded integer, taking each value nearest the highest seen."""

    def __init__(self, bits: int) -> None:
        self._modulus = 1 << bits
        self._half = 1 << (bits - 1)
        self._highest: int | None = None

    def extend(self, value: int) -> int:
        """``value`` placed within half the counter's range of the highest value so far."""
        if self._highest is None:
            self._highest = value
            return value
        delta = (value - self._highest) % self._modulus
        if delta >= self._half:
            delta -= self._modulus
        extended = self._highest + delta
        self._highest = max(self._highest, extended)
        return extended


@dataclass(slots=True)
class ReorderCounts:
    """What the buffer did: ``lost`` are sequence numbers given up on (a later arrival of
    one of them counts as ``late`` too), ``duplicate`` copies of a packet already taken."""

    released: int = 0
    duplicate: int = 0
    late: int = 0
    lost: int = 0


class ReorderBuffer(Generic[T]):
    """Holds up to ``window`` sequence numbers' worth of packets and releases them in order.

    Nothing is released until the window has filled once (or ``give_up_waiting`` is
    called), so a stream whose second packet overtakes its first still starts in order.
    After that, a missing packet is waited for until a packet ``window`` numbers past it
    has arrived; then it is counted lost and the buffer moves on.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("the window holds at least one packet")
        self._window = window
        self._held: dict[int, T] = {}
        self._next: int | None = None  # None until the first release
        self._unwrap = Unwrapper(16)
        self._recent: deque[int] = deque(maxlen=4 * window)
        self.counts = ReorderCounts()

    def __len__(self) -> int:
        return len(self._held)

    def push(self, sequence: int, item: T) -> list[T]:
        """Take a packet with 16-bit ``sequence``; return those now released, in order."""
        extended = self._unwrap.extend(sequence)
        if self._next is not None and extended < self._next:
            if extended in self._recent:
                self.counts.duplicate += 1
            else:
                self.counts.late += 1
            return []
        if extended in self._held:
            self.counts.duplicate += 1
            return []
        self._held[extended] = item
        if self._next is None:
            if len(self._held) < self._window and self._span() < self._window:
                return []
            self._next = min(self._held)
        released = self._release_run()
        while self._held and max(self._held) - self._next >= self._window:
            released += self.give_up_waiting()
        return released

    def oldest(self) -> T | None:
        """The held packet that comes next in order (the one a receiver times), if any."""
        return self._held[min(self._held)] if self._held else None

    def give_up_waiting(self) -> list[T]:
        """Count what is missing before the lowest held packet as lost; release from it on."""
        if not self._held:
            return []
        lowest = min(self._held)
        if self._next is not None:
            self.counts.lost += lowest - self._next
        self._next = lowest
        return self._release_run()

    def drain(self) -> list[T]:
        """Everything still held, in order, gaps counted lost (the stream has ended)."""
        released: list[T] = []
        while self._held:
            released += self.give_up_waiting()
        return released

    def _span(self) -> int:
        return max(self._held) - min(self._held)

    def _release_run(self) -> list[T]:
        assert self._next is not None
        released = []
        while self._next in self._held:
            released.append(self._held.pop(self._next))
            self._recent.append(self._next)
            self._next += 1
        self.counts.released += len(released)
        return released
