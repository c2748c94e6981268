"""Shared secrets in the database: adopted from an existing data directory, re-wrapped after
a rotation, and the receipt-signing public keys an append-only list."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import Executable, delete, select, text, update
from sqlalchemy.exc import DBAPIError

from config.services import Services, build_services
from config.settings import Settings
from storage import (
    AuditRecord,
    ReceiptInvalid,
    ReceiptSigner,
    StorageError,
    create_engine,
    load_secret,
    load_signing_key,
    upgrade_database,
)
from storage.db.models import ReceiptKey, SharedSecret
from storage.keys.receipts import verify_deletion_receipts
from storage.keys.shared_secrets import receipt_public_keys
from storage.keys.signing import signing_key_from_seed
from tests.fixtures_db import run_as_admin


@asynccontextmanager
async def parts(data_dir: Path, database_url: str) -> AsyncIterator[Services]:
    services = build_services(
        Settings(data_dir=data_dir, database_url=database_url, single_node=True)
    )
    try:
        yield services
    finally:
        await services.close()


async def test_an_existing_data_directory_keeps_its_secrets(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    # What a data directory made before the database kept these.
    grant = load_secret(data_dir / "keyring" / "grant-signing.secret")
    receipt = load_signing_key(data_dir / "keyring" / "receipt-signing-key.pem")
    dev = load_signing_key(data_dir / "dev-signing-key.pem")
    async with parts(data_dir, database_url) as services:
        shared = await services.load_shared_keys()
        async with services.database.read() as session:
            listed = await receipt_public_keys(session)
    # Adopted, not replaced: links, tokens and receipts made before still verify.
    assert shared.grant_secret == grant
    assert shared.dev_token_key.key_id == dev.key_id
    assert shared.receipt_key.key_id == receipt.key_id
    assert listed == {receipt.key_id: receipt.public_pem}
    # Once adopted the database is what counts: the same secrets, file or no file.
    (data_dir / "keyring" / "grant-signing.secret").unlink()
    async with parts(data_dir, database_url) as services:
        assert (await services.load_shared_keys()).grant_secret == grant


async def test_a_rotation_rewraps_the_shared_secrets_under_the_new_root_key(
    tmp_path: Path, sqlite_url: str
) -> None:
    data_dir = tmp_path / "var"
    async with parts(data_dir, sqlite_url) as services:
        before = await services.load_shared_keys()
        old_root = services.keyring.current_kek_id
        await services.keys.rotate(actor="test")
        new_root = services.keyring.current_kek_id
        assert new_root != old_root
        await services.keys.rewrap(actor="test")
        async with services.database.read() as session:
            wrapped_under = set((await session.execute(select(SharedSecret.kek_id))).scalars())
    assert wrapped_under == {new_root}
    async with parts(data_dir, sqlite_url) as services:
        after = await services.load_shared_keys()
    assert after.grant_secret == before.grant_secret
    assert after.receipt_key.key_id == before.receipt_key.key_id


async def test_receipt_keys_are_never_changed_or_removed(tmp_path: Path, database_url: str) -> None:
    async with parts(tmp_path / "var", database_url) as services:
        key_id = (await services.load_shared_keys()).receipt_key.key_id
        changes: list[Executable] = [
            update(ReceiptKey).where(ReceiptKey.key_id == key_id).values(public_pem="forged"),
            delete(ReceiptKey).where(ReceiptKey.key_id == key_id),
        ]
        if database_url.startswith("postgresql"):
            changes.append(text("TRUNCATE receipt_key"))  # row triggers miss this one
        for change in changes:
            with pytest.raises(DBAPIError, match="append-only"):
                async with services.database.transaction() as session:
                    await session.execute(change)


async def test_a_receipt_by_a_key_not_listed_is_named(tmp_path: Path, sqlite_url: str) -> None:
    async with parts(tmp_path / "var", sqlite_url) as services:
        await services.load_shared_keys()
        stranger = ReceiptSigner(signing_key_from_seed(bytes(range(32))))
        async with services.database.transaction() as session:
            forged = await services.audit.append(
                session,
                AuditRecord(
                    actor="retention",
                    action="recording.deleted",
                    details=stranger.sign({"recording_id": "0"}),
                ),
            )
        async with services.database.read() as session:
            with pytest.raises(ReceiptInvalid) as refused:
                await verify_deletion_receipts(session, await receipt_public_keys(session))
    assert refused.value.seq == forged.seq
    assert f"key '{stranger.key_id}', which is not listed" in refused.value.reason


@pytest.mark.postgres
async def test_a_database_not_yet_migrated_says_to_migrate_it(
    tmp_path: Path, postgres_database_url: str
) -> None:
    name = f"callrec_old_{uuid.uuid4().hex[:12]}"
    await run_as_admin(f'CREATE DATABASE "{name}"')
    url = postgres_database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = create_engine(url)
        await upgrade_database(engine, "0007")  # the release before shared secrets
        await engine.dispose()
        async with parts(tmp_path / "var", url) as services:
            with pytest.raises(StorageError, match="run `callrec db upgrade` first"):
                await services.load_shared_keys()
    finally:
        await run_as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_genuine_receipt_copied_onto_another_recording_is_named(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with parts(tmp_path / "var", sqlite_url) as services:
        signer = await services.receipt_signer()
        receipt = signer.sign({"recording_id": str(uuid.uuid4())})
        async with services.database.transaction() as session:
            copied = await services.audit.append(
                session,
                AuditRecord(
                    actor="retention",
                    action="recording.deleted",
                    recording_id=uuid.uuid4(),
                    details=receipt,
                ),
            )
        async with services.database.read() as session:
            with pytest.raises(ReceiptInvalid) as refused:
                await verify_deletion_receipts(session, await receipt_public_keys(session))
    assert refused.value.seq == copied.seq
    assert refused.value.reason == "the receipt is for another recording than its event"
