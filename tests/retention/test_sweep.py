"""Sweeps: keys first, then every object, then personal data; resumable; once per recording."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from retention import retention_status, sweep_expired_recordings
from storage import (
    RECORDINGS_PREFIX,
    ObjectStore,
    ObjectVersion,
    RecordingDeleter,
    StoreUnavailable,
    verify_audit_chain,
    verify_receipt,
)
from storage.db.models import AuditEvent, DataKey, Recording, RecordingReferral, StoredObject
from tests.cli_support import invoke
from tests.service_support import (
    KEYS_PER_RECORDING,
    OBJECTS_PER_RECORDING,
    RunningService,
    running_service,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.long

HORIZON = timedelta(minutes=20)


@dataclass
class Hub:
    service: RunningService
    ids: list[uuid.UUID]  # started 1 h, 2 h and 3 h ago
    deadlines: list[datetime]

    async def row(self, recording_id: uuid.UUID) -> Recording:
        async with self.service.services.database.read() as session:
            row = await session.get(Recording, recording_id)
            assert row is not None
            return row

    async def count(self, model: type, **where: object) -> int:
        async with self.service.services.database.read() as session:
            query = select(func.count()).select_from(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return int((await session.execute(query)).scalar_one())


async def push(service: RunningService, source_id: str, started: datetime) -> uuid.UUID:
    return await service.push_call(source_id, started)


@pytest.fixture
async def hub(tmp_path: Path, database_url: str) -> AsyncIterator[Hub]:
    async with running_service(tmp_path / "var", database_url) as service:
        now = datetime.now(UTC).replace(microsecond=0)
        ids = [await push(service, f"r{h}", now - timedelta(hours=h)) for h in (1, 2, 3)]
        deadlines = [now - timedelta(hours=h) + timedelta(days=90) for h in (1, 2, 3)]
        yield Hub(service, ids, deadlines)


def sweep_now(hub: Hub) -> datetime:
    """A moment when the 2 h and 3 h old calls fall due before the next sweep, not the 1 h one."""
    return hub.deadlines[1] + timedelta(minutes=1) - HORIZON


async def test_a_sweep_deletes_what_falls_due_before_the_next_one_and_nothing_else(
    hub: Hub,
) -> None:
    deleter = hub.service.services.deleter
    report = await sweep_expired_recordings(deleter, now=sweep_now(hub), horizon=HORIZON)
    assert sorted(report.deleted) == sorted(hub.ids[1:])
    kept = await hub.row(hub.ids[0])
    assert kept.state == "stored"
    for recording_id in hub.ids[1:]:
        row = await hub.row(recording_id)
        assert row.state == "deleted"
        assert row.deleted_at is not None
        # The tombstone: no parties, agent, notes or referral links; times and source stay.
        assert (row.from_number, row.to_number, row.agent, row.extra) == (None,) * 4
        assert row.source == "pbx"
        assert await hub.count(RecordingReferral, recording_id=recording_id) == 0
    assert await hub.count(DataKey) == OBJECTS_PER_RECORDING
    stored_keys = [key async for key in hub.service.services.objects.iter_keys(RECORDINGS_PREFIX)]
    assert len(stored_keys) == KEYS_PER_RECORDING


async def test_each_deletion_is_audited_with_a_receipt_and_the_chain_holds(hub: Hub) -> None:
    await sweep_expired_recordings(
        hub.service.services.deleter, now=sweep_now(hub), horizon=HORIZON
    )
    async with hub.service.services.database.read() as session:
        events = (
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.action.in_(["recording.keys_destroyed", "recording.deleted"]))
                    .order_by(AuditEvent.seq)
                )
            )
            .scalars()
            .all()
        )
        hashes = (
            (
                await session.execute(
                    select(StoredObject.plaintext_sha256).where(
                        StoredObject.recording_id == hub.ids[1]
                    )
                )
            )
            .scalars()
            .all()
        )
        assert await verify_audit_chain(session) > 0
    assert [e.action for e in events] == ["recording.keys_destroyed"] * 2 + [
        "recording.deleted"
    ] * 2
    receipt = next(
        e for e in events if e.action == "recording.deleted" and e.recording_id == hub.ids[1]
    )
    details = dict(receipt.details or {})
    assert details["objects"] == OBJECTS_PER_RECORDING
    assert details["sha256"] == sorted(hashes)
    assert details["reason"] == "retention_period"
    assert details["recording_id"] == str(hub.ids[1])
    public_pem = hub.service.services.receipts.public_pem
    assert verify_receipt(details, public_pem)
    # The signature covers every field: a receipt edited to say something else fails.
    assert not verify_receipt({**details, "reason": "erasure"}, public_pem)
    assert not verify_receipt({**details, "sha256": []}, public_pem)


async def test_a_deleted_recording_is_gone_from_the_api(hub: Hub) -> None:
    await sweep_expired_recordings(
        hub.service.services.deleter, now=sweep_now(hub), horizon=HORIZON
    )
    token = hub.service.token("dpo", subject="dpo-1")
    response = await hub.service.client.get(
        f"/api/v1/recordings/{hub.ids[2]}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 410
    assert (await response.json())["status"] == "deleted"


async def test_a_dry_run_lists_and_deletes_nothing(hub: Hub) -> None:
    report = await sweep_expired_recordings(
        hub.service.services.deleter, now=sweep_now(hub), horizon=HORIZON, dry_run=True
    )
    assert sorted(due.id for due in report.due) == sorted(hub.ids[1:])
    assert report.deleted == []
    assert await hub.count(Recording, state="stored") == 3


class StoreThatFailsOnce:
    """The object store goes away once, in the middle of a sweep."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.failed = False

    async def delete_many(self, objects: list[ObjectVersion]) -> None:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("down")
        await self.inner.delete_many(objects)


async def test_a_sweep_interrupted_after_the_keys_are_gone_is_finished_by_the_next(
    hub: Hub,
) -> None:
    services = hub.service.services
    flaky: Any = StoreThatFailsOnce(services.objects)  # only delete_many() is used by a sweep
    deleter = RecordingDeleter(
        database=services.database,
        objects=flaky,
        audit=services.audit,
        receipts=services.receipt_signer,
        clock=services.clock,
    )
    with pytest.raises(StoreUnavailable):
        await sweep_expired_recordings(deleter, now=sweep_now(hub), horizon=HORIZON)
    # Keys are destroyed in the first commit: the audio is already unrecoverable.
    assert await hub.count(DataKey) == OBJECTS_PER_RECORDING
    assert await hub.count(Recording, state="deleting") == 2
    report = await sweep_expired_recordings(deleter, now=sweep_now(hub), horizon=HORIZON)
    assert sorted(report.resumed) == sorted(hub.ids[1:])
    assert await hub.count(Recording, state="deleted") == 2
    assert (
        len([key async for key in services.objects.iter_keys(RECORDINGS_PREFIX)])
        == KEYS_PER_RECORDING
    )


async def test_two_sweeps_at_once_delete_each_recording_once(hub: Hub) -> None:
    deleter = hub.service.services.deleter
    reports = await asyncio.gather(
        *(sweep_expired_recordings(deleter, now=sweep_now(hub), horizon=HORIZON) for _ in range(2))
    )
    deleted = [rid for report in reports for rid in report.deleted]
    assert sorted(deleted) == sorted(hub.ids[1:])
    assert await hub.count(AuditEvent, action="recording.deleted") == 2


@pytest.mark.s3
async def test_no_object_version_is_left_in_a_versioned_bucket(
    tmp_path: Path,
    database_url: str,
    s3_endpoint: str,
    versioned_s3_bucket: str,
    s3_client: S3Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    async with running_service(
        tmp_path / "var", database_url, store_url=f"s3://{versioned_s3_bucket}/hub"
    ) as service:
        started = datetime.now(UTC) - timedelta(hours=1)
        await push(service, "s3-one", started)
        report = await sweep_expired_recordings(
            service.services.deleter, now=started + timedelta(days=90), horizon=HORIZON
        )
        assert len(report.deleted) == 1
    listed = s3_client.list_object_versions(
        Bucket=versioned_s3_bucket, Prefix=f"hub/{RECORDINGS_PREFIX}"
    )
    assert listed.get("Versions", []) == []
    assert listed.get("DeleteMarkers", []) == []


async def test_the_cli_runs_a_sweep_and_a_dry_run(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    async with running_service(data_dir, database_url) as service:
        await service.start_up_sweep_done()
        # Due in 10 minutes: inside the default horizon of 15 + 5 minutes.
        almost = datetime.now(UTC) - timedelta(days=90) + timedelta(minutes=10)
        due_id = await push(service, "almost", almost)
        await push(service, "fresh", datetime.now(UTC) - timedelta(hours=1))
    env = {
        "CALLREC_DATA_DIR": str(data_dir),
        "CALLREC_DATABASE_URL": database_url,
        "CALLREC_SINGLE_NODE": "true",
    }
    dry = invoke("retention", "run", "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {due_id}" in dry.stdout
    assert "1 recording would be deleted" in dry.stdout
    real = invoke("retention", "run", **env)
    assert real.returncode == 0, real.stderr
    assert f"deleted {due_id}" in real.stdout
    assert "1 recording deleted," in real.stdout
    again = invoke("retention", "run", **env)
    assert "0 recordings deleted" in again.stdout


async def test_serving_sweeps_at_start_up_to_catch_up_after_downtime(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    async with running_service(data_dir, database_url) as service:
        # After this service's own start-up sweep: a capture due within a sweep's horizon
        # is reaped by a sweep that runs while it is being stored (the sender retries).
        await service.start_up_sweep_done()
        almost = datetime.now(UTC) - timedelta(days=90) + timedelta(minutes=10)
        due_id = await push(service, "almost", almost)
    async with running_service(data_dir, database_url) as service:
        state = "stored"
        for _ in range(100):
            async with service.services.database.read() as session:
                row = await session.get(Recording, due_id)
                state = row.state if row is not None else "missing"
            if state == "deleted":
                break
            await asyncio.sleep(0.05)
        assert state == "deleted"


async def test_the_status_shows_the_last_sweep_and_what_is_due_and_overdue(hub: Hub) -> None:
    services = hub.service.services
    now = sweep_now(hub)
    interval, margin = timedelta(minutes=15), timedelta(minutes=5)
    for _ in range(600):  # let the service's own start-up sweep finish first (30 s at most)
        before = await retention_status(
            services.deleter, now=now, interval=interval, margin=margin, period=timedelta(days=90)
        )
        if before["last_sweep"] is not None:
            break
        await asyncio.sleep(0.05)
    assert before["last_sweep"]["deleted"] == 0
    assert before["due_before_next_sweep"] == 2
    assert before["overdue"] == 1  # the 3 h old call's deadline has already passed at `now`
    await sweep_expired_recordings(services.deleter, now=now, horizon=interval + margin)
    after = await retention_status(
        services.deleter, now=now, interval=interval, margin=margin, period=timedelta(days=90)
    )
    assert after["last_sweep"]["deleted"] == 2
    assert after["due_before_next_sweep"] == 0
    assert after["overdue"] == 0
    assert after["recordings"] == {"stored": 1, "deleting": 0, "deleted": 2}
    assert after["holds"] == {"recordings_held": 0, "held_past_deadline": 0, "by_kind": {}}


async def test_the_status_is_served_to_auditors_and_printed_by_the_cli(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    async with running_service(data_dir, database_url) as service:
        token = service.token("auditor", subject="auditor-1")
        for _ in range(100):  # the start-up sweep runs in the background
            response = await service.client.get(
                "/api/v1/retention", headers={"Authorization": f"Bearer {token}"}
            )
            body = await response.json()
            if body["last_sweep"] is not None:
                break
            await asyncio.sleep(0.05)
        assert response.status == 200
        assert body["last_sweep"]["deleted"] == 0
        assert body["overdue"] == 0
    printed = invoke(
        "retention",
        "status",
        CALLREC_DATA_DIR=str(data_dir),
        CALLREC_DATABASE_URL=database_url,
        CALLREC_SINGLE_NODE="true",
    )
    assert printed.returncode == 0, printed.stderr
    assert "overdue: 0" in printed.stdout
    assert "last_sweep: {" in printed.stdout


async def test_finishing_a_recording_whose_keys_were_not_destroyed_touches_nothing(
    hub: Hub,
) -> None:
    services = hub.service.services
    await services.deleter.finish_many(hub.ids)
    assert await hub.count(Recording, state="stored") == 3
    assert await hub.count(DataKey) == 3 * OBJECTS_PER_RECORDING
    assert (
        len([key async for key in services.objects.iter_keys(RECORDINGS_PREFIX)])
        == 3 * KEYS_PER_RECORDING
    )
