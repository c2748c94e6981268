"""Data keys wrapped by a KMS, over HTTP to moto's server: bound to their object by the
encryption context, unreadable under another key, and the service refusing to start
when its KMS key cannot be used."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select

from storage import KeyChain, KeyringError, KmsKeyWrapper, LocalKeyring
from storage.crypto.format import new_data_key
from storage.db.models import EpochKey
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.service_support import running_service

pytestmark = pytest.mark.s3  # moto's server also speaks the KMS API


@pytest.fixture
def kms_key(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3_endpoint)
    client = boto3.client("kms")
    key_id = client.create_key(Description="callrec test KEK")["KeyMetadata"]["KeyId"]
    yield key_id
    client.close()


def test_a_data_key_round_trips_and_is_bound_to_its_object(kms_key: str) -> None:
    wrapper = KmsKeyWrapper.connect(kms_key)
    dek, object_id = new_data_key(), uuid.uuid4()
    wrapped = wrapper.wrap(dek, object_id)
    assert wrapped.kek_id == wrapper.current_kek_id
    assert wrapped.kek_id.startswith("kms-")
    assert dek not in wrapped.blob
    assert wrapper.unwrap(wrapped, object_id) == dek
    # The encryption context names the object: another object's row cannot borrow it.
    with pytest.raises(KeyringError, match="refused to decrypt"):
        wrapper.unwrap(wrapped, uuid.uuid4())


def test_another_kms_key_cannot_open_it(kms_key: str) -> None:
    other = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    object_id = uuid.uuid4()
    wrapped = KmsKeyWrapper.connect(kms_key).wrap(new_data_key(), object_id)
    with pytest.raises(KeyringError):
        KmsKeyWrapper.connect(other).unwrap(wrapped, object_id)


def test_a_chain_wraps_with_the_kms_and_still_opens_what_the_keyring_wrapped(
    kms_key: str, tmp_path: Path
) -> None:
    local = LocalKeyring.open(tmp_path / "keyring")
    object_id = uuid.uuid4()
    before = local.wrap(dek := new_data_key(), object_id)
    chain = KeyChain(KmsKeyWrapper.connect(kms_key), [local])
    chain.check()
    assert chain.unwrap(before, object_id) == dek
    after = chain.wrap(dek, object_id)
    assert after.kek_id.startswith("kms-")
    assert chain.unwrap(after, object_id) == dek


def test_a_kms_rotates_its_own_material_and_is_never_retired_from_here(kms_key: str) -> None:
    kms = KmsKeyWrapper.connect(kms_key)
    assert kms.rotate() == kms.current_kek_id
    assert kms.kek_ids() == [kms.current_kek_id]
    assert not kms.retire(kms.current_kek_id)


def test_a_kms_that_cannot_be_used_is_a_clear_error_never_a_fallback(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3_endpoint)
    missing = KmsKeyWrapper.connect("11111111-2222-3333-4444-555555555555")
    with pytest.raises(KeyringError, match="refused to encrypt: NotFoundException"):
        missing.wrap(new_data_key(), uuid.uuid4())
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")
    unreachable = KmsKeyWrapper.connect("11111111-2222-3333-4444-555555555555")
    with pytest.raises(KeyringError, match="could not be reached"):
        unreachable.wrap(new_data_key(), uuid.uuid4())


async def test_the_service_stores_and_plays_with_kms_and_refuses_to_start_without_it(
    kms_key: str, tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url, kms_key_id=kms_key) as service:
        body = push_body(metadata(), make_wav(1))
        pushed = await service.client.post(
            "/webhooks/push/pbx", data=body, headers=push_headers(body)
        )
        assert pushed.status == 201
        recording_id = (await pushed.json())["id"]
        assert await service.stored(recording_id, "original") == make_wav(1)
        # The week's epoch key is wrapped by the KMS, not by the local keyring.
        (epoch_key,) = (await service.services.keys.status()).epoch_keys
        async with service.services.database.read() as session:
            root = await session.scalar(
                select(EpochKey.root_kek_id).where(EpochKey.id == epoch_key.key_id)
            )
        assert root is not None
        assert root.startswith("kms-")
    with pytest.raises(KeyringError):
        async with running_service(
            tmp_path / "var",
            database_url,
            kms_key_id="11111111-2222-3333-4444-555555555555",
        ):
            pass
