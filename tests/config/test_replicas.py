"""Replicas with their own empty data directories behave as one service.

Two services (in this process, each its own ``Services`` and app) share one PostgreSQL
database, one bucket of moto's S3 server and one KMS key, exactly the settings
deploy/README.md tells every replica to share, and nothing else: what one makes, the
other honours, and ``callrec audit verify`` on a third, empty data directory checks it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import boto3
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from config.services import build_services
from config.settings import Settings
from storage import KeyringError, load_secret, load_signing_key
from storage.db.models import AuditEvent, ReceiptKey, SharedSecret
from storage.keys.shared_secrets import receipt_public_keys
from tests.cli_support import invoke
from tests.oidc_provider import AUDIENCE, CLIENT_ID, ISSUER, IdentityProvider
from tests.push_support import make_wav
from tests.service_support import running_service

pytestmark = [pytest.mark.s3, pytest.mark.postgres]

REASON = "subject access request SAR-2026-118 from the caller"
NONCE = "n" * 32


@pytest.fixture
def shared(
    s3_endpoint: str, s3_bucket: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """What every replica is configured with alike: database, store, KMS key, key store."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3_endpoint)
    kms = boto3.client("kms")
    yield {
        "database_url": postgres_url,
        "store_url": f"s3://{s3_bucket}/objects",
        "epoch_key_store_url": f"s3://{s3_bucket}/epoch-keys",
        "kms_key_id": kms.create_key()["KeyMetadata"]["KeyId"],
        "single_node": False,
    }
    kms.close()


def environment(data_dir: Path, shared: dict[str, Any]) -> dict[str, str]:
    """The same settings as ``CALLREC_*`` variables, for a command."""
    settings = {k: str(v) for k, v in shared.items() if k != "single_node"}
    return {f"CALLREC_{k.upper()}": v for k, v in settings.items()} | {
        "CALLREC_DATA_DIR": str(data_dir)
    }


async def test_what_one_replica_makes_every_other_honours(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    async with (
        running_service(tmp_path / "one", **shared) as one,
        running_service(tmp_path / "two", **shared) as two,
    ):
        recording = await one.push_call("call-1", datetime.now(UTC) - timedelta(minutes=5))
        # A dev token made on one replica is honoured by the other.
        bearer = {"Authorization": f"Bearer {one.token('dpo')}"}
        found = await two.client.get(f"/api/v1/recordings/{recording}", headers=bearer)
        assert found.status == 200, await found.text()

        # A grant issued by one plays, with Range, on the other: the audio decrypts there.
        granted = await one.client.post(
            f"/api/v1/recordings/{recording}/grants",
            json={"purpose": "subject_access", "reason": REASON},
            headers=bearer,
        )
        assert granted.status == 201, await granted.text()
        path = "/" + (await granted.json())["audio_url"].split("/", 3)[3]
        played = await two.client.get(
            f"{path}?variant=original", headers=bearer | {"Range": "bytes=0-99"}
        )
        assert played.status == 206, await played.text()
        assert await played.read() == make_wav(1)[:100]

        # A page session signed in on one replica is a session on the other.
        signed_in = await two.client.post(
            "/sign-in",
            data={"nonce": NONCE, "token": one.token("dpo")},
            cookies={"callrec_sign_in": NONCE},
            allow_redirects=False,
        )
        assert signed_in.status == 303, await signed_in.text()
        session = signed_in.cookies["callrec_session"].value
        listed = await one.client.get("/api/v1/recordings", cookies={"callrec_session": session})
        assert listed.status == 200

        # An erasure asked for on one replica and approved by another DPO on the other;
        # its receipt verifies anywhere, below.
        asked = await one.client.delete(
            f"/api/v1/recordings/{recording}", json={"reason": REASON}, headers=bearer
        )
        assert asked.status == 202, await asked.text()
        second_dpo = {"Authorization": f"Bearer {two.token('dpo', subject='staff-2')}"}
        erased = await two.client.post(
            f"/api/v1/erasure-requests/{(await asked.json())['request']['id']}/approve",
            headers=second_dpo,
        )
        assert erased.status == 200, await erased.text()
        gone = await two.client.get(f"/api/v1/recordings/{recording}", headers=bearer)
        assert gone.status == 410

    # Neither data directory holds a key: the KMS, the database and the bucket do.
    for data_dir in (tmp_path / "one", tmp_path / "two"):
        assert not (data_dir / "keyring").exists()
        assert not (data_dir / "epoch-keys").exists()
        assert not (data_dir / "dev-signing-key.pem").exists()
    checked = await asyncio.to_thread(
        invoke, "audit", "verify", **environment(tmp_path / "three", shared)
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip().endswith(", 1 receipt verified")


async def test_replicas_starting_together_on_an_empty_database_make_each_secret_once(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    replicas = [build_services(Settings(data_dir=tmp_path / f"r{n}", **shared)) for n in range(3)]
    try:
        opened = await asyncio.gather(*(replica.load_shared_keys() for replica in replicas))
        async with replicas[0].database.read() as session:
            secrets = await session.scalar(select(func.count()).select_from(SharedSecret))
            listed = await session.scalar(select(func.count()).select_from(ReceiptKey))
            created = await session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "keys.shared_secret_created")
            )
            wrapped_under = set((await session.execute(select(SharedSecret.kek_id))).scalars())
    finally:
        for replica in replicas:
            await replica.close()
    assert len({keys.grant_secret for keys in opened}) == 1
    assert len({keys.dev_token_key.key_id for keys in opened}) == 1
    assert len({keys.receipt_key.key_id for keys in opened}) == 1
    # Grant, dev token and receipt keys: each made once, audited once.
    assert (secrets, created, listed) == (3, 3, 1)
    # Wrapped by the KMS, which every replica reaches; no replica's own keyring.
    assert wrapped_under == {replicas[0].keyring.current_kek_id}
    assert replicas[0].keyring.current_kek_id.startswith("kms-")


async def test_a_sign_in_begun_on_one_replica_finishes_on_another(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    idp = IdentityProvider()
    server = TestServer(idp.app(), host="127.0.0.1")
    await server.start_server()
    idp_url = str(server.make_url("")).rstrip("/")
    oidc: dict[str, Any] = {
        "auth_mode": "oidc",
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "oidc_jwks_url": f"{idp_url}/keys",
        "oidc_client_id": CLIENT_ID,
        "oidc_authorization_url": f"{idp_url}/authorize",
        "oidc_token_url": f"{idp_url}/token",
        "oidc_team_claim": "groups",
        # Both behind one load balancer: the one redirect URI registered at the IdP.
        "public_url": "https://callrec.example",
    }
    try:
        async with (
            running_service(tmp_path / "one", **shared, **oidc) as one,
            running_service(tmp_path / "two", **shared, **oidc) as two,
        ):
            begun = await one.client.get("/sign-in/oidc", allow_redirects=False)
            assert begun.status == 303
            pending = begun.cookies["callrec_oidc"].value
            async with (
                aiohttp.ClientSession() as browser,
                browser.get(begun.headers["Location"], allow_redirects=False) as answer,
            ):
                back = urlsplit(answer.headers["Location"])
            assert back.netloc == "callrec.example"
            # The state cookie signed by one is accepted by two, which starts the session.
            finished = await two.client.get(
                f"{back.path}?{back.query}", cookies={"callrec_oidc": pending}
            )
            assert finished.status == 200, await finished.text()
            session = finished.cookies["callrec_session"].value
            listed = await one.client.get(
                "/api/v1/recordings", cookies={"callrec_session": session}
            )
            assert listed.status == 200
    finally:
        await server.close()


async def test_an_installation_moving_to_a_kms_hands_its_secrets_to_new_replicas(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    one_node = shared | {"kms_key_id": None, "single_node": True}
    old = build_services(Settings(data_dir=tmp_path / "old", **one_node))
    try:
        before = await old.load_shared_keys()
    finally:
        await old.close()
    # The same data directory, now with the KMS: its next start re-wraps under the KMS...
    moved = build_services(Settings(data_dir=tmp_path / "old", **shared))
    new = build_services(Settings(data_dir=tmp_path / "new", **shared))
    try:
        # Until then, a new replica cannot open what the old keyring wrapped, and says why.
        with pytest.raises(KeyringError, match="replicas need the same CALLREC_KMS_KEY_ID"):
            await new.load_shared_keys()
        assert (await moved.load_shared_keys()).grant_secret == before.grant_secret
        # ...so a replica with an empty data directory opens the same secrets.
        after = await new.load_shared_keys()
    finally:
        await moved.close()
        await new.close()
    assert after.grant_secret == before.grant_secret
    assert after.receipt_key.key_id == before.receipt_key.key_id
    assert after.dev_token_key.key_id == before.dev_token_key.key_id


async def test_old_data_directories_share_the_first_ones_secrets_and_keep_their_receipts(
    tmp_path: Path, shared: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    files = {
        name: (
            load_secret(tmp_path / name / "keyring" / "grant-signing.secret"),
            load_signing_key(tmp_path / name / "keyring" / "receipt-signing-key.pem"),
        )
        for name in ("first", "second")
    }
    opened = {}
    for name in files:
        services = build_services(Settings(data_dir=tmp_path / name, **shared))
        try:
            opened[name] = await services.load_shared_keys()
            async with services.database.read() as session:
                listed = await receipt_public_keys(session)
        finally:
            await services.close()
    # The first directory's secrets are adopted; the second uses them, and says so.
    assert opened["first"].grant_secret == opened["second"].grant_secret == files["first"][0]
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.__dict__["files"] == [
        "keyring/grant-signing.secret",
        "keyring/receipt-signing-key.pem",
    ]
    # Receipts either directory signed before still verify: both public halves are listed.
    assert set(listed) == {files["first"][1].key_id, files["second"][1].key_id}
