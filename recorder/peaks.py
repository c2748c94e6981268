"""Waveform peaks: the min and max of each channel per short stretch of time.

A review page draws the waveform from these and seeks by clicking on it, so they must
exist for any length of call without holding the call: the builder keeps one row of
numbers per bucket and, when a recording is longer than the cap allows at the starting
resolution, merges neighbouring buckets (exact for min and max) and carries on with
buckets twice as long. Memory is bounded by the cap, not the call's length.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from storage import Peaks

PER_SECOND = 20
MAX_BUCKETS = 16_384


class PeakBuilder:
    """Accumulates int16 planar samples (channels x samples) into bounded peaks."""

    def __init__(
        self,
        channels: int,
        sample_rate: int,
        *,
        per_second: int = PER_SECOND,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        if channels < 1 or sample_rate < 1 or max_buckets < 2:
            raise ValueError("peaks need at least one channel, a rate and two buckets")
        self._channels = channels
        self._rate = sample_rate
        self._size = max(1, sample_rate // per_second)
        self._max = max_buckets
        self._mins: list[npt.NDArray[np.int16]] = []
        self._maxs: list[npt.NDArray[np.int16]] = []
        self._count = 0
        self._filled = 0  # samples in the bucket being filled
        self._part_min = np.zeros(channels, dtype=np.int16)
        self._part_max = np.zeros(channels, dtype=np.int16)

    def add(self, samples: npt.NDArray[np.int16]) -> None:
        """Take the next samples, shaped (channels, n)."""
        n = samples.shape[1]
        position = 0
        while position < n:
            if self._filled:
                take = min(self._size - self._filled, n - position)
                self._widen(samples[:, position : position + take], take)
                position += take
                if self._filled == self._size:
                    self._filled = 0  # before emitting: halving may refill it
                    self._emit(self._part_min[:, None].copy(), self._part_max[:, None].copy())
                continue
            whole = (n - position) // self._size
            if not whole:
                self._widen(samples[:, position:], n - position)
                break
            block = samples[:, position : position + whole * self._size]
            block = block.reshape(self._channels, whole, self._size)
            position += whole * self._size
            self._emit(block.min(axis=2), block.max(axis=2))

    def _widen(self, part: npt.NDArray[np.int16], count: int) -> None:
        low, high = part.min(axis=1), part.max(axis=1)
        if self._filled:
            low = np.minimum(low, self._part_min)
            high = np.maximum(high, self._part_max)
        self._part_min, self._part_max = low, high
        self._filled += count

    def _emit(self, low: npt.NDArray[np.int16], high: npt.NDArray[np.int16]) -> None:
        self._mins.append(low)
        self._maxs.append(high)
        self._count += low.shape[1]
        while self._count > self._max:
            self._halve()

    def _halve(self) -> None:
        """Merge neighbouring buckets; an unpaired last one becomes the bucket being filled."""
        low = np.concatenate(self._mins, axis=1)
        high = np.concatenate(self._maxs, axis=1)
        if low.shape[1] % 2:
            last_low, last_high = low[:, -1], high[:, -1]
            low, high = low[:, :-1], high[:, :-1]
            if self._filled:
                last_low = np.minimum(last_low, self._part_min)
                last_high = np.maximum(last_high, self._part_max)
            self._part_min, self._part_max = last_low, last_high
            self._filled += self._size
        pairs = low.shape[1] // 2
        low = low.reshape(self._channels, pairs, 2).min(axis=2)
        high = high.reshape(self._channels, pairs, 2).max(axis=2)
        self._mins, self._maxs, self._count = [low], [high], pairs
        self._size *= 2

    def finish(self) -> Peaks:
        """The peaks of everything added, the last partial bucket included."""
        if self._filled:
            self._mins.append(self._part_min[:, None])
            self._maxs.append(self._part_max[:, None])
            self._filled = 0
        if not self._mins:
            return Peaks(self._rate / self._size, self._channels, b"")
        low = np.concatenate(self._mins, axis=1)
        high = np.concatenate(self._maxs, axis=1)
        # (buckets, channels, 2) in signed bytes: the top 8 bits of each 16-bit peak.
        both = np.stack([low, high], axis=2).transpose(1, 0, 2)
        scaled = np.clip(both.astype(np.int32) >> 8, -127, 127).astype(np.int8)
        return Peaks(self._rate / self._size, self._channels, scaled.tobytes())
