"""Waveform peaks: exact min and max per bucket, bounded however long the call."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.peaks import PeakBuilder


def reference(samples: np.ndarray, size: int) -> np.ndarray:
    """Min and max of each ``size``-sample bucket, straight from all the samples."""
    buckets = -(-samples.shape[1] // size)
    out = np.zeros((buckets, samples.shape[0], 2), dtype=np.int32)
    for index in range(buckets):
        part = samples[:, index * size : (index + 1) * size]
        out[index, :, 0] = part.min(axis=1)
        out[index, :, 1] = part.max(axis=1)
    clipped: np.ndarray = np.clip(out >> 8, -127, 127)
    return clipped


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 30_000),
    chunks=st.lists(st.integers(1, 5_000), min_size=1, max_size=20),
    channels=st.sampled_from([1, 2]),
    cap=st.integers(2, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_peaks_equal_min_and_max_of_each_bucket_whatever_the_chunking_and_cap(
    length: int, chunks: list[int], channels: int, cap: int, seed: int
) -> None:
    samples = np.random.default_rng(seed).integers(
        -32768, 32767, (channels, length), dtype=np.int16
    )
    builder = PeakBuilder(channels, 8000, per_second=20, max_buckets=cap)
    position, turn = 0, 0
    while position < length:
        step = chunks[turn % len(chunks)]
        builder.add(samples[:, position : position + step])
        position += step
        turn += 1
    peaks = builder.finish()

    assert peaks.buckets <= cap + 1
    size = round(8000 / peaks.per_second)
    assert size % 400 == 0  # the starting bucket, doubled as often as the cap needed
    got = np.frombuffer(peaks.data, dtype=np.int8).reshape(-1, channels, 2)
    assert np.array_equal(got, reference(samples, size))
