"""Proof of deletion: the daily attestation in the audit trail and the retention metrics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from retention import attest, attest_if_due, sweep_expired_recordings
from storage.db.models import AuditEvent
from tests.clock import FakeClock
from tests.service_support import RunningService, running_service

HORIZON = timedelta(minutes=20)
REASON = "staff member threatened on this call, incident IR-2291"


async def hold(service: RunningService, recording: uuid.UUID, clock: FakeClock) -> None:
    response = await service.client.post(
        f"/api/v1/recordings/{recording}/hold",
        json={
            "type": "staff_safety_incident",
            "reason": REASON,
            "review_by": (clock.now + timedelta(days=30)).isoformat(),
        },
        headers={"Authorization": f"Bearer {service.token('safety_reviewer')}"},
    )
    assert response.status == 201


async def attestations(service: RunningService) -> list[AuditEvent]:
    async with service.services.database.read() as session:
        found = await session.execute(
            select(AuditEvent)
            .where(AuditEvent.action == "retention.attestation")
            .order_by(AuditEvent.seq)
        )
        return list(found.scalars())


async def test_the_attestation_counts_overdue_lists_holds_and_reports_the_lag(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock()
    async with running_service(tmp_path / "var", database_url, clock=clock) as service:
        started = clock.now.replace(microsecond=0) - timedelta(hours=1)
        swept = await service.push_call("swept", started)
        held = await service.push_call("held", started)
        deadline = started + timedelta(days=90)
        clock.now = deadline - timedelta(days=1)
        await hold(service, held, clock)
        deleter = service.services.deleter

        # A day past the deadline with no sweep in between: the attestation must say so.
        clock.now = deadline + timedelta(hours=1)
        failing = await attest(deleter, now=clock.now, window=timedelta(days=1))
        assert failing["overdue_unheld"] == 1
        # What the CallrecAttestationFailed alert reads, the same on every replica.
        text = await scrape(service)
        assert metric(text, "callrec_retention_attestation_failed") == 1
        assert metric(text, "callrec_retention_last_attestation_timestamp_seconds") == (
            clock.now.timestamp()
        )
        await sweep_expired_recordings(deleter, now=clock.now, horizon=HORIZON)
        clock.advance(timedelta(minutes=5))
        passing = await attest(deleter, now=clock.now, window=timedelta(days=1))

        assert metric(await scrape(service), "callrec_retention_attestation_failed") == 0
        assert passing["overdue_unheld"] == 0
        assert passing["held_past_deadline"] == [
            {
                "recording_id": str(held),
                "kind": "staff_safety_incident",
                "review_by": (deadline - timedelta(days=1) + timedelta(days=30))
                .isoformat()
                .replace("+00:00", "Z"),
            }
        ]
        assert passing["held_list_complete"] is True
        assert passing["deletions_in_window"] == 1
        # The swept recording went an hour after its deadline (no sweep ran before).
        assert passing["largest_deletion_lag_s"] == 3600
        events = await attestations(service)
        assert [event.outcome for event in events[-2:]] == ["fail", "allow"]
        assert swept not in {uuid.UUID(h["recording_id"]) for h in passing["held_past_deadline"]}


async def test_an_attestation_is_written_once_a_day_and_at_start_up(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock()
    async with running_service(tmp_path / "var", database_url, clock=clock) as service:
        for _ in range(100):  # the start-up sweep attests when there is no attestation yet
            if await attestations(service):
                break
            await asyncio.sleep(0.05)
        assert len(await attestations(service)) == 1
        deleter = service.services.deleter
        assert await attest_if_due(deleter, now=clock.advance(timedelta(hours=23))) is None
        assert await attest_if_due(deleter, now=clock.advance(timedelta(hours=1))) is not None
        assert len(await attestations(service)) == 2


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} ") or line.startswith(f"{name}{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


async def scrape(service: RunningService) -> str:
    response = await service.client.get("/metrics")
    assert response.status == 200
    text: str = await response.text()
    return text


async def test_metrics_show_due_overdue_held_oldest_and_the_sweeps(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock()
    data_dir = tmp_path / "var"
    async with running_service(data_dir, database_url, clock=clock) as service:
        started = clock.now.replace(microsecond=0) - timedelta(hours=1)
        await service.push_call("swept", started)
        held = await service.push_call("held", started)
        await service.push_call("fresh", clock.now.replace(microsecond=0))
        deadline = started + timedelta(days=90)
        clock.now = deadline - timedelta(days=1)
        await hold(service, held, clock)
        clock.now = deadline + timedelta(minutes=1)
        before: dict[str, Any] = {
            name: metric(await scrape(service), name)
            for name in (
                "callrec_retention_due_recordings",
                "callrec_retention_overdue_recordings",
                "callrec_retention_held_recordings",
                "callrec_retention_oldest_unheld_age_seconds",
            )
        }
        assert before == {
            "callrec_retention_due_recordings": 1,
            "callrec_retention_overdue_recordings": 1,
            "callrec_retention_held_recordings": 1,
            "callrec_retention_oldest_unheld_age_seconds": (clock.now - started).total_seconds(),
        }
    # Restarted past the deadline: the start-up sweep catches up and says so.
    async with running_service(data_dir, database_url, clock=clock) as service:
        for _ in range(100):
            text = await scrape(service)
            if metric(text, "callrec_retention_last_success_timestamp_seconds") > 0:
                break
            await asyncio.sleep(0.05)
        assert metric(text, "callrec_retention_deleted_total") == 1
        assert metric(text, "callrec_retention_overdue_recordings") == 0
        assert metric(text, "callrec_retention_held_recordings") == 1
        assert metric(text, "callrec_retention_sweep_duration_seconds_count") == 1
        assert metric(text, "callrec_retention_sweep_failures_total") == 0
        assert metric(text, "callrec_retention_last_success_timestamp_seconds") == (
            clock.now.timestamp()
        )
