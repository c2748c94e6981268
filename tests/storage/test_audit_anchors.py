"""Signed checkpoints outside the database: a cut tail, a rewritten middle and a database
rolled back to an earlier copy each pass the chain's own check, and are each caught by
``callrec audit verify`` against the latest checkpoint."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from config.services import Services, build_services
from config.settings import Settings
from storage import (
    AnchorInvalid,
    AnchorMismatch,
    AuditRecord,
    ReceiptSigner,
    create_engine,
    create_sessionmaker,
)
from storage.audit import chain_hash, leaf_hash
from storage.db.models import AuditEvent
from storage.keys.signing import signing_key_from_seed
from tests.cli_support import invoke
from tests.clock import FakeClock
from tests.key_support import store_recording

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EVENTS = 30
CUT = 10
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def anchor_settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> dict[str, str]:
    """Where the anchors go, paired with the database as deployed: beside the data with
    SQLite (the embedded default), in an S3 bucket (moto) with PostgreSQL (production)."""
    if database_url.startswith("sqlite"):
        return {"anchor_store_url": f"file://{tmp_path / 'anchors'}"}
    endpoint: str = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    return {"anchor_store_url": f"s3://{bucket}/callrec"}


@asynccontextmanager
async def service(tmp_path: Path, database_url: str, **settings: Any) -> AsyncIterator[Services]:
    services = build_services(
        Settings(
            data_dir=tmp_path / "var", database_url=database_url, single_node=True, **settings
        ),
        clock=FakeClock(START, step=timedelta(seconds=1)),
    )
    try:
        await services.load_shared_keys()
        yield services
    finally:
        await services.close()


async def append(services: Services, count: int) -> None:
    for index in range(count):
        await services.audit_log.record(
            AuditRecord(
                actor=f"user:{index % 3}",
                action="recording.accessed",
                recording_id=uuid.uuid4(),
                details={"n": index},
            )
        )


async def head_seq(services: Services) -> int:
    async with services.database.read() as session:
        return int(await session.scalar(text("SELECT seq FROM audit_head WHERE id = 1")))


def verify_cli(tmp_path: Path, database_url: str, settings: dict[str, str]) -> Any:
    return invoke(
        "audit",
        "verify",
        CALLREC_DATA_DIR=str(tmp_path / "var"),
        CALLREC_DATABASE_URL=database_url,
        CALLREC_SINGLE_NODE="true",
        **{f"CALLREC_{name.upper()}": value for name, value in settings.items()},
    )


async def guards_off(connection: AsyncConnection) -> None:
    """What the database's owner can do: switch the append-only guards off."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        await connection.execute(text("ALTER TABLE audit_head DISABLE TRIGGER USER"))
    else:
        for trigger in (
            "audit_event_no_update",
            "audit_event_no_delete",
            "audit_head_forward_only",
            "audit_head_no_delete",
        ):
            await connection.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))


async def cut_tail(database_url: str, keep: int) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await guards_off(connection)
            await connection.execute(text(f"DELETE FROM audit_event WHERE seq > {keep}"))
            await connection.execute(
                text(
                    "UPDATE audit_head SET seq = :keep, chain = "
                    "(SELECT chain FROM audit_event WHERE seq = :keep) WHERE id = 1"
                ),
                {"keep": keep},
            )
    finally:
        await engine.dispose()


async def rewrite_from(database_url: str, seq: int) -> None:
    """Edit event ``seq`` and recompute every hash from there on, head included."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await guards_off(connection)
        async with create_sessionmaker(engine).begin() as session:
            events = list(
                (await session.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars()
            )
            previous = events[seq - 2].chain if seq > 1 else bytes(32)
            for event in events[seq - 1 :]:
                if event.seq == seq:
                    event.actor = "user:someone-else"
                event.leaf = leaf_hash(event)
                event.chain = previous = chain_hash(previous, event.leaf)
            await session.execute(
                text("UPDATE audit_head SET chain = :chain WHERE id = 1"), {"chain": previous}
            )
    finally:
        await engine.dispose()


def last_line(result: Any) -> str:
    return str(result.stderr).strip().splitlines()[-1]


async def test_an_untouched_chain_matches_its_latest_checkpoint(
    tmp_path: Path, database_url: str, anchor_settings: dict[str, str]
) -> None:
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, EVENTS)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
        assert checkpoint.seq == await head_seq(services)
    result = await asyncio.to_thread(verify_cli, tmp_path, database_url, anchor_settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("audit chain intact:")
    assert last_line(result) == f"anchored by the latest checkpoint: {checkpoint.describe()}"


async def test_a_cut_tail_is_caught_against_the_checkpoint(
    tmp_path: Path, database_url: str, anchor_settings: dict[str, str]
) -> None:
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, EVENTS)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
    await cut_tail(database_url, checkpoint.seq - CUT)
    result = await asyncio.to_thread(verify_cli, tmp_path, database_url, anchor_settings)
    assert result.returncode == 1
    assert last_line(result) == (
        f"audit chain does not match its anchor: checkpoint at seq {checkpoint.seq} "
        f"({checkpoint.at}) but the database's chain ends at seq {checkpoint.seq - CUT}"
    )


async def test_a_rewritten_middle_with_a_recomputed_chain_is_caught(
    tmp_path: Path, database_url: str, anchor_settings: dict[str, str]
) -> None:
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, EVENTS)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
    await rewrite_from(database_url, checkpoint.seq // 2)
    result = await asyncio.to_thread(verify_cli, tmp_path, database_url, anchor_settings)
    assert result.returncode == 1
    assert last_line(result).startswith(
        f"audit chain does not match its anchor: event {checkpoint.seq} differs from "
        f"checkpoint at seq {checkpoint.seq} ({checkpoint.at})"
    )


async def test_a_database_rolled_back_to_an_earlier_copy_is_caught(
    tmp_path: Path,
    database_url: str,
    anchor_settings: dict[str, str],
    database_backup: Callable[[str], Awaitable[str]],
) -> None:
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, EVENTS - CUT)
        earlier = await database_backup(database_url)
        behind = await head_seq(services)
        await append(services, CUT)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
    result = await asyncio.to_thread(verify_cli, tmp_path, earlier, anchor_settings)
    assert result.returncode == 1
    assert last_line(result) == (
        f"audit chain does not match its anchor: checkpoint at seq {checkpoint.seq} "
        f"({checkpoint.at}) but the database's chain ends at seq {behind}"
    )


async def test_a_cut_tail_stays_caught_after_the_service_starts_on_it(
    tmp_path: Path, database_url: str, anchor_settings: dict[str, str]
) -> None:
    """Start-up cannot tell a cut tail from a restore, so it anchors neither."""
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, EVENTS)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
    await cut_tail(database_url, checkpoint.seq - CUT)
    async with service(tmp_path, database_url, **anchor_settings) as services:
        report = await services.reconcile_with_anchors()  # what start-up runs
        assert report.behind == checkpoint
    result = await asyncio.to_thread(verify_cli, tmp_path, database_url, anchor_settings)
    assert result.returncode == 1
    assert last_line(result).startswith(
        f"audit chain does not match its anchor: checkpoint at seq {checkpoint.seq} "
    )


def accept_cli(tmp_path: Path, database_url: str, settings: dict[str, str], *args: str) -> Any:
    return invoke(
        "audit",
        "accept-restore",
        *args,
        CALLREC_DATA_DIR=str(tmp_path / "var"),
        CALLREC_DATABASE_URL=database_url,
        CALLREC_SINGLE_NODE="true",
        **{f"CALLREC_{name.upper()}": value for name, value in settings.items()},
    )


async def test_an_operator_accepts_a_restore_and_the_check_names_it_from_then_on(
    tmp_path: Path,
    database_url: str,
    anchor_settings: dict[str, str],
    database_backup: Callable[[str], Awaitable[str]],
) -> None:
    reason = "restored the 02:00 backup after the disk failure, incident INC-4410"
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, EVENTS - CUT)
        earlier = await database_backup(database_url)
        await append(services, CUT)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
    refused = await asyncio.to_thread(accept_cli, tmp_path, earlier, anchor_settings)
    assert (refused.returncode, refused.stderr.count("\n")) == (2, 1)  # --reason is required
    accepted = await asyncio.to_thread(
        accept_cli, tmp_path, earlier, anchor_settings, "--reason", reason
    )
    assert accepted.returncode == 0, accepted.stderr
    assert f"after the checkpoint at seq {checkpoint.seq} ({checkpoint.at})" in accepted.stdout
    result = await asyncio.to_thread(verify_cli, tmp_path, earlier, anchor_settings)
    assert result.returncode == 0, result.stderr
    assert f"restored behind the checkpoint at seq {checkpoint.seq}" in result.stderr
    async with service(tmp_path, earlier, **anchor_settings) as services:
        async with services.database.read() as session:
            event = (
                (await session.execute(select(AuditEvent).order_by(AuditEvent.seq.desc())))
                .scalars()
                .first()
            )
        assert event is not None
        assert (event.action, event.actor) == ("audit.restore_accepted", "cli")
        assert event.details is not None
        assert (event.details["reason"], event.details["seq"]) == (reason, checkpoint.seq)
    again = await asyncio.to_thread(
        accept_cli, tmp_path, earlier, anchor_settings, "--reason", reason
    )
    assert again.returncode == 2
    assert "there is no restore to accept" in again.stderr


async def test_the_service_never_anchors_a_chain_that_disagrees_with_its_checkpoint(
    tmp_path: Path, database_url: str, anchor_settings: dict[str, str]
) -> None:
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, EVENTS)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
        await cut_tail(database_url, checkpoint.seq - CUT)
        with pytest.raises(AnchorMismatch, match=f"checkpoint at seq {checkpoint.seq}"):
            await services.anchors.checkpoint()
        keys = await services.anchor_records.keys_under("anchors/checkpoints/")
        assert keys == [checkpoint.key]


async def test_a_checkpoint_not_signed_by_a_listed_key_is_refused(
    tmp_path: Path, database_url: str, anchor_settings: dict[str, str]
) -> None:
    async with service(tmp_path, database_url, **anchor_settings) as services:
        await append(services, 3)
        stranger = ReceiptSigner(signing_key_from_seed(bytes(range(32))))
        record = stranger.sign(
            {"kind": "audit-checkpoint", "seq": 99, "chain": "00" * 32, "at": "x", "replica": "x"}
        )
        forged = services.anchor_objects
        path = tmp_path / "forged.json"
        path.write_bytes(json.dumps(record).encode())
        await forged.put_file(f"anchors/checkpoints/{99:020d}-{'00' * 8}", path)
        with pytest.raises(AnchorInvalid, match="not listed"):
            await services.anchors.checkpoint()
    result = await asyncio.to_thread(verify_cli, tmp_path, database_url, anchor_settings)
    assert result.returncode == 1
    assert "audit checkpoint is not genuine" in last_line(result)


@pytest.mark.s3
async def test_on_a_bucket_with_object_lock_each_checkpoint_is_locked(
    tmp_path: Path,
    database_url: str,
    s3_endpoint: str,
    s3_client: S3Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = f"callrec-lock-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    async with service(
        tmp_path,
        database_url,
        anchor_store_url=f"s3://{bucket}",
        anchor_lock_mode="compliance",
        anchor_lock_period=timedelta(days=400),
    ) as services:
        await append(services, 3)
        checkpoint = await services.anchors.checkpoint()
        assert checkpoint is not None
    head = s3_client.head_object(Bucket=bucket, Key=checkpoint.key)
    assert head.get("ObjectLockMode") == "COMPLIANCE"
    until = head.get("ObjectLockRetainUntilDate")
    assert until is not None
    assert until.date() == (START + timedelta(days=400)).date()
    # Not even the account can take it away before then.
    with pytest.raises(ClientError):
        s3_client.delete_object(Bucket=bucket, Key=checkpoint.key, VersionId=head["VersionId"])


async def test_an_erasure_is_recorded_in_the_signed_ledger_and_anchored(
    tmp_path: Path, database_url: str, anchor_settings: dict[str, str]
) -> None:
    async with service(tmp_path, database_url, erasure_approvals=1, **anchor_settings) as services:
        recording = await store_recording(services, "erased", START, b"audio" * 100)
        await services.erasures.erase(recording, reason="subject's request", actor="dpo:1")
        (entry,) = await services.ledger.entries(await services.anchors.trusted_keys())
        assert (entry.recording_id, entry.reason) == (recording, "erasure")
        assert await services.ledger.says_deleted(recording)
        # The erasure's batch was anchored: the latest checkpoint is the head after it.
        latest = await services.anchors.latest(await services.anchors.trusted_keys())
        assert latest is not None
        assert latest.seq == await head_seq(services)
