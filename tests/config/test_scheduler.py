"""The sweep schedule: once at start, one at a time, and nothing after stop."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from config.scheduler import SweepSchedule


async def test_a_schedule_stopped_before_its_first_sweep_runs_never_sweeps() -> None:
    calls: list[str] = []

    async def sweep() -> None:
        calls.append("swept")

    schedule = SweepSchedule(sweep, timedelta(minutes=15))
    schedule.start()
    await schedule.stop()  # the start-up sweep was handed to the loop, not yet run
    await asyncio.sleep(0.2)
    assert calls == []


async def test_the_first_sweep_runs_at_start_and_stop_waits_for_it() -> None:
    finished: list[str] = []
    started = asyncio.Event()

    async def sweep() -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append("swept")

    schedule = SweepSchedule(sweep, timedelta(minutes=15))
    schedule.start()
    await asyncio.wait_for(started.wait(), 5)
    await schedule.stop()
    assert finished == ["swept"]


async def test_a_failed_sweep_does_not_end_the_schedule() -> None:
    attempts: list[int] = []

    async def sweep() -> None:
        attempts.append(1)
        raise RuntimeError("database down")

    schedule = SweepSchedule(sweep, timedelta(seconds=60))
    schedule.start()
    for _ in range(50):
        if attempts:
            break
        await asyncio.sleep(0.05)
    await schedule.stop()
    assert attempts == [1]


async def test_each_schedule_is_logged_once_by_its_name_and_apscheduler_keeps_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def sweep() -> None:
        return None

    names = ("retention sweep", "integrity scrub", "key upkeep")
    schedules = [
        SweepSchedule(sweep, timedelta(minutes=15), name=name, run_at_start=False) for name in names
    ]
    with caplog.at_level(logging.INFO):
        for schedule in schedules:
            schedule.start()
        for schedule in schedules:
            await schedule.stop()
    started = [r.getMessage() for r in caplog.records if r.name == "config.scheduler"]
    assert started == [
        "retention sweep scheduled",
        "integrity scrub scheduled",
        "key upkeep scheduled",
    ]
    chatter = [
        r
        for r in caplog.records
        if r.name.startswith("apscheduler") and r.levelno < logging.WARNING
    ]
    assert chatter == []
