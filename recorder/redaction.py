"""What a redacted copy of a recording leaves out, and how it is applied to samples.

A subject access request gets the requester's own part of a call: on a two-channel call
their channel (the other is set to digital silence, zeros, so nothing of the other party
survives as a faint leak), and on every channel nothing of the stretches the DPO mutes
(a third party named, another person's details). The copy keeps the original's channel
count and sample rate, so its timeline is the one the DPO listened to.

Pure numpy; the pass that decodes and encodes is redacted_wav.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from storage import MAX_MUTED_RANGES


class InvalidRedaction(ValueError):
    """A redaction that cannot be applied to the recording; the message says why and is
    safe to show."""


@dataclass(frozen=True, slots=True)
class Redaction:
    """The requester's channel (or None for all), and the stretches muted on every channel.

    Build it from what a person chose with ``checked`` or ``from_choice``, which sort,
    merge and cut ``muted`` to the recording. Built directly, it must already be so
    (InvalidRedaction otherwise): a worker never gets one it cannot apply in one pass.
    Times are seconds of the decoded audio (what plays, the same clock as the
    recording's ``duration_s``); a stretch covers the samples from ``round(start * rate)``
    up to, not including, ``round(end * rate)``.
    """

    keep_channel: int | None
    muted: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        _keep_channel(self.keep_channel, None)
        previous_end = -1.0
        for index, pair in enumerate(self.muted):
            start, _ = _stretch(index, pair, None)
            if start <= previous_end:
                raise InvalidRedaction("muted ranges must be in order and apart")
            previous_end = pair[1]

    @classmethod
    def checked(
        cls,
        keep_channel: int | None,
        muted: Iterable[Iterable[Any]] = (),
        *,
        channels: int | None,
        duration_s: float | None,
    ) -> Redaction:
        """The redaction of a recording of ``channels`` and ``duration_s`` (None where
        unknown: the worker checks again on what decodes), or InvalidRedaction.

        A stretch must start at 0 or later, before the recording ends, and end after it
        starts; one that runs past the end is cut at the end. Overlapping or touching
        stretches are merged.
        """
        keep = _keep_channel(keep_channel, channels)
        stretches = [_stretch(index, item, duration_s) for index, item in enumerate(muted)]
        merged: list[tuple[float, float]] = []
        for start, end in sorted(stretches):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return cls(keep, tuple(merged))

    @classmethod
    def from_choice(
        cls, choice: Mapping[str, Any], *, channels: int | None, duration_s: float | None
    ) -> Redaction:
        """The redaction a DPO chose, as kept with the case:
        ``{"keep_channel": 0 | 1 | None, "muted": [[start, end], ...]}``."""
        unknown = set(choice) - {"keep_channel", "muted"}
        if unknown:
            raise InvalidRedaction(f"unknown redaction fields: {', '.join(sorted(unknown))}")
        muted = choice.get("muted") or ()
        if not isinstance(muted, list | tuple):
            raise InvalidRedaction("muted must be a list of [start, end] ranges in seconds")
        return cls.checked(
            choice.get("keep_channel"), muted, channels=channels, duration_s=duration_s
        )

    def check_channels(self, channels: int) -> None:
        """InvalidRedaction unless the recording's channels allow ``keep_channel``."""
        _keep_channel(self.keep_channel, channels)

    def apply(self, samples: npt.NDArray[np.int16], first: int, rate: int) -> None:
        """Silence, in place, what ``samples`` (channels, n) holds of what is redacted;
        ``first`` is the index of its first sample in the whole recording."""
        if self.keep_channel is not None:
            samples[1 - self.keep_channel] = 0
        last = first + samples.shape[1]
        for start, end in self.muted:
            begin, stop = round(start * rate), round(end * rate)
            if stop <= first:
                continue
            if begin >= last:
                break  # in order: every later stretch starts later still
            samples[:, max(begin, first) - first : min(stop, last) - first] = 0

    def as_choice(self) -> dict[str, Any]:
        """The redaction as JSON-ready data (what ``from_choice`` reads)."""
        return {"keep_channel": self.keep_channel, "muted": [list(pair) for pair in self.muted]}


def _keep_channel(value: object, channels: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise InvalidRedaction("keep_channel must be 0, 1 or null")
    if channels is not None and channels != 2:
        raise InvalidRedaction(
            f"keep_channel needs a two-channel recording; this one has {channels}"
        )
    return value


def _stretch(index: int, item: Iterable[Any], duration_s: float | None) -> tuple[float, float]:
    """One muted range, checked, and cut at the end of the recording."""
    if index >= MAX_MUTED_RANGES:  # counted as they come: a huge list is not read through
        raise InvalidRedaction(f"muted may hold at most {MAX_MUTED_RANGES} ranges")
    pair = list(item) if isinstance(item, list | tuple) else None
    if pair is None or len(pair) != 2 or not all(_is_number(value) for value in pair):
        raise InvalidRedaction(f"muted[{index}] must be [start, end] in seconds")
    start, end = float(pair[0]), float(pair[1])
    if not 0 <= start < end:
        raise InvalidRedaction(f"muted[{index}] must start at 0 or later and end after it starts")
    if duration_s is not None:
        if start >= duration_s:
            raise InvalidRedaction(
                f"muted[{index}] starts at {start:g} s, after the recording ends ({duration_s:g} s)"
            )
        end = min(end, duration_s)
    return start, end


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
