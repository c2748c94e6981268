"""The bomb benchmark: how long a decompression bomb holds the one media worker, and what it
costs an ordinary push that arrives just behind it.

The bombs are those the hostile-input tests push (tests/recorder/test_push_bombs.py): ten
hours of digital silence in FLAC and twenty-five hours of it in Ogg Opus, a few megabytes
each. The baseline is the same ordinary push sent to the same server with nothing ahead of
it, so the ratio says how much a bomb delays a genuine sender.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.audio_factory import silence_repeated
from tests.bench.workload import PushFile, write_push_of_file

BOMBS = {
    "FLAC, 10 hours of silence": ("flac", "flac", 8000, 10 * 3600, {}),
    "Ogg Opus, 25.2 hours of silence": (
        "ogg",
        "libopus",
        48000,
        25.2 * 3600,
        {"frame_duration": "60"},
    ),
}


@dataclass(frozen=True, slots=True)
class BombFigures:
    """One bomb's figures: its size, its answer and how long it and the push behind took."""

    label: str
    size: int
    status: int
    refused_s: float
    behind_s: float


async def _post(session: aiohttp.ClientSession, url: str, push: PushFile) -> tuple[int, float]:
    started = time.perf_counter()
    with push.path.open("rb") as body:
        async with session.post(
            f"{url}/webhooks/push/bench",
            data=body,
            headers=push.headers | {"Content-Length": str(push.size)},
        ) as response:
            await response.read()
            return response.status, time.perf_counter() - started


async def measure_bombs(
    root: Path,
    url: str,
    secret: bytes,
    ordinary: Callable[[str], PushFile],
    repetitions: int,
) -> tuple[float, list[BombFigures]]:
    """The ordinary push's median time alone, then each bomb with an ordinary push behind."""
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        alone = []
        for rep in range(repetitions + 1):
            status, took = await _post(session, url, ordinary(f"alone-{rep}"))
            if status != 201:
                raise RuntimeError(f"an ordinary push answered {status}")
            if rep:  # the first is a warm-up
                alone.append(took)
        figures = []
        for label, (container, codec, rate, seconds, options) in BOMBS.items():
            audio = root / f"bomb-{codec}.audio"
            audio.write_bytes(silence_repeated(container, codec, rate, seconds, **options))
            bomb = write_push_of_file(
                root / f"bomb-{codec}.body",
                audio,
                recording_id=f"bomb-{codec}-{time.time_ns()}",
                seconds=60,
                secret=secret,
                timestamp=int(time.time()),
            )
            refusing = asyncio.ensure_future(_post(session, url, bomb))
            await asyncio.sleep(0.5)  # the bomb reaches the worker first
            behind = ordinary(f"behind-{codec}")
            behind_status, behind_s = await _post(session, url, behind)
            status, refused_s = await refusing
            if behind_status != 201:
                raise RuntimeError(f"the push behind the {codec} bomb answered {behind_status}")
            figures.append(BombFigures(label, audio.stat().st_size, status, refused_s, behind_s))
            audio.unlink()
            bomb.path.unlink()
    return statistics.median(alone), figures


def bomb_rows(alone_s: float, figures: list[BombFigures]) -> list[list[str]]:
    """Table rows: the bomb's answer and time, the push behind it against the push alone."""
    rows = []
    for bomb in figures:
        rows.append(
            [
                f"{bomb.label} ({bomb.size / 1e6:.1f} MB) pushed to a server with one media "
                "worker: answer and time to it",
                f"{bomb.status} in {bomb.refused_s:.1f} s",
                "-",
                "-",
                "422 within seconds",
            ]
        )
        rows.append(
            [
                f"an ordinary 1-minute push sent 0.5 s behind the {bomb.label.split(',')[0]} bomb",
                f"201 in {bomb.behind_s:.2f} s",
                f"the same push alone: {alone_s:.2f} s",
                f"{bomb.behind_s / alone_s:.2f}x",
                "measured",
            ]
        )
    return rows
