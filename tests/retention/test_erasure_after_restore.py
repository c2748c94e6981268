"""An erasure survives a restored backup: the deletion ledger outside the database brings
it back before the service serves, and playback refuses what the ledger says is gone.

Dump the database, erase as the DPO, restore the dump, start the service: the recording
is 410, its phone numbers are gone, the audit says the deletion was re-applied, ``audit
verify`` passes naming the restore, and a saved copy of its ciphertext opens with nothing
the restored database and the live key stores hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.services import Services
from storage import (
    RECORDINGS_PREFIX,
    FilesystemObjectStore,
    IntegrityFailure,
    KeyShares,
    StoredCiphertext,
    open_verified,
    unmask,
)
from storage.db.models import AuditEvent, DataKey, Recording, StoredObject
from storage.keys.keyring import WrappedKey
from tests.cli_support import invoke
from tests.clock import FakeClock
from tests.service_support import RunningService, running_service

TEAM = "mash-children"
REASON = "the caller's request under article 17, case DP-0193"
RESTORE = "restored last night's dump after the migration failed, incident INC-2207"


@pytest.fixture
def store_settings(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> dict[str, str]:
    """The audio and the anchors in the data directory with SQLite (the embedded default),
    or both in one S3 bucket (moto) with PostgreSQL (production)."""
    if database_url.startswith("sqlite"):
        return {}
    endpoint: str = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    return {"store_url": f"s3://{bucket}/hub"}


@dataclass(frozen=True)
class SavedCiphertext:
    """What someone copied of a stored original before it was erased."""

    recording_id: uuid.UUID
    object_id: uuid.UUID
    object_key: str
    size: int
    ciphertext: bytes
    plaintext_sha256: str


async def save_original(services: Services, recording_id: uuid.UUID) -> SavedCiphertext:
    async with services.database.read() as session:
        stored = (
            await session.execute(
                select(StoredObject).where(
                    StoredObject.recording_id == recording_id, StoredObject.kind == "original"
                )
            )
        ).scalar_one()
    data = await services.objects.read_range(stored.object_key, 0, stored.ciphertext_size)
    return SavedCiphertext(
        recording_id,
        stored.id,
        stored.object_key,
        stored.ciphertext_size,
        data,
        stored.plaintext_sha256,
    )


async def opens_with_what_is_held(services: Services, saved: SavedCiphertext, at: Path) -> bool:
    """Whether any data key the database holds, unwrapped with the live keys (and unmasked
    with the recording's key share if the live store still has it), opens the saved
    ciphertext to the captured audio."""
    copy = FilesystemObjectStore(at)
    path = at.parent / f"{saved.object_id}.bin"
    path.write_bytes(saved.ciphertext)
    if not await copy.exists(saved.object_key):
        await copy.put_file(saved.object_key, path)
    async with services.database.read() as session:
        wrapped = [
            (row.object_id, WrappedKey(row.kek_id, row.wrapped))
            for row in (await session.execute(select(DataKey))).scalars()
        ]
        row = await session.get(Recording, saved.recording_id)
        assert row is not None
        digest = row.key_share_digest
    try:
        share = await KeyShares(services.objects).read(saved.recording_id, digest)
    except IntegrityFailure:  # missing or altered: what is held lacks it
        share = None
    for object_id, key in wrapped:
        try:
            data_key = unmask(await services.keys.unwrap(key, saved.object_id), object_id, share)
            ciphertext = StoredCiphertext(copy, saved.object_key, saved.object_id, saved.size)
            plaintext = await (await open_verified(ciphertext, data_key)).read_all()
        except Exception:  # noqa: S112 - any failure to open is the answer "no"
            continue
        if hashlib.sha256(plaintext).hexdigest() == saved.plaintext_sha256:
            assert object_id == saved.object_id
            return True
    return False


def headers(service: RunningService, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.token(role, TEAM)}"}


def verify_cli(data_dir: Path, database_url: str, settings: dict[str, Any]) -> Any:
    return cli(data_dir, database_url, settings, "verify")


def cli(data_dir: Path, database_url: str, settings: dict[str, Any], *args: str) -> Any:
    return invoke(
        "audit",
        *args,
        CALLREC_DATA_DIR=str(data_dir),
        CALLREC_DATABASE_URL=database_url,
        CALLREC_SINGLE_NODE="true",
        **{f"CALLREC_{name.upper()}": value for name, value in settings.items()},
    )


async def test_an_erasure_undone_by_a_restore_is_reapplied_before_serving(
    tmp_path: Path,
    database_url: str,
    store_settings: dict[str, Any],
    database_backup: Callable[[str], Awaitable[str]],
) -> None:
    data_dir = tmp_path / "var"
    clock = FakeClock()
    # One DPO erases at once (CALLREC_ERASURE_APPROVALS=1): the restore is the subject here.
    async with running_service(
        data_dir, database_url, clock=clock, erasure_approvals=1, **store_settings
    ) as service:
        started = clock.now.replace(microsecond=0) - timedelta(hours=1)
        recording = await service.push_call("erased-call", started)
        saved = await save_original(service.services, recording)
        # The check below is a real one: before the erasure, what is held opens the copy.
        assert await opens_with_what_is_held(service.services, saved, tmp_path / "copy")
        backup = await database_backup(database_url)
        response = await service.client.delete(
            f"/api/v1/recordings/{recording}",
            json={"reason": REASON},
            headers=headers(service, "dpo"),
        )
        assert response.status == 200, await response.text()

    # The dump restored in the database's place, and the service started on it.
    async with running_service(data_dir, backup, clock=clock, **store_settings) as service:
        response = await service.client.get(
            f"/api/v1/recordings/{recording}", headers=headers(service, "supervisor")
        )
        assert response.status == 410, await response.text()
        response = await service.client.post(
            f"/api/v1/recordings/{recording}/grants",
            json={
                "purpose": "quality_review",
                "reason": "reviewing the handling of this referral call",
            },
            headers=headers(service, "supervisor"),
        )
        assert response.status == 410, await response.text()
        async with service.services.database.read() as session:
            row = await session.get(Recording, recording)
            assert row is not None
            assert (row.state, row.from_number, row.to_number) == ("deleted", None, None)
            reapplied = list(
                (
                    await session.execute(
                        select(AuditEvent).where(
                            AuditEvent.action == "recording.deletion_reapplied",
                            AuditEvent.recording_id == recording,
                        )
                    )
                ).scalars()
            )
        assert [(event.details or {}).get("reason") for event in reapplied] == ["erasure"]
        assert not await opens_with_what_is_held(service.services, saved, tmp_path / "copy")
        assert [key async for key in service.services.objects.iter_keys(RECORDINGS_PREFIX)] == []

    # Behind the checkpoint written after the erasure: a gap until the operator who
    # restored the backup says so; start-up never accepts it by itself.
    result = await asyncio.to_thread(verify_cli, data_dir, backup, store_settings)
    assert result.returncode == 1
    assert "audit chain does not match its anchor" in result.stderr
    accepted = await asyncio.to_thread(
        cli, data_dir, backup, store_settings, "accept-restore", "--reason", RESTORE
    )
    assert accepted.returncode == 0, accepted.stderr
    result = await asyncio.to_thread(verify_cli, data_dir, backup, store_settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("audit chain intact:")
    assert "note: the database was restored behind the checkpoint at seq" in result.stderr
