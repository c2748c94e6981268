"""Tests of the local keyring: safe creation, refusal of unsafe files, wrapping and rotation."""

from __future__ import annotations

import dataclasses
import stat
import uuid
from pathlib import Path

import pytest

from storage.crypto.format import new_data_key
from storage.errors import KeyringError
from storage.keys.keyring import KeyWrapper, LocalKeyring, WrappedKey

OBJECT_ID = uuid.UUID("6f1c2a9e-33d4-4b8e-a1f0-5c7d9e2b4a61")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _key_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.key"))


@pytest.fixture
def keyring_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keyring"


@pytest.fixture
def keyring(keyring_dir: Path) -> LocalKeyring:
    return LocalKeyring.open(keyring_dir)


def test_first_open_creates_a_private_directory_with_one_private_key(keyring_dir: Path) -> None:
    keyring = LocalKeyring.open(keyring_dir)

    (key_file,) = _key_files(keyring_dir)
    assert _mode(keyring_dir) == 0o700
    assert _mode(key_file) == 0o600
    assert key_file.stat().st_size == 32
    assert key_file.stem == keyring.current_kek_id
    assert uuid.UUID(hex=keyring.current_kek_id).version == 4
    assert (keyring_dir / "current").read_text().strip() == keyring.current_kek_id
    assert _mode(keyring_dir / "current") == 0o600


def test_reopening_keeps_the_same_current_key_and_can_unwrap(keyring_dir: Path) -> None:
    first = LocalKeyring.open(keyring_dir)
    dek = new_data_key()
    wrapped = first.wrap(dek, OBJECT_ID)

    again = LocalKeyring.open(keyring_dir, create=False)

    assert again.current_kek_id == first.current_kek_id
    assert again.unwrap(wrapped, OBJECT_ID) == dek
    assert len(_key_files(keyring_dir)) == 1


def test_a_missing_directory_is_refused_when_creation_is_not_allowed(keyring_dir: Path) -> None:
    with pytest.raises(KeyringError, match="does not exist"):
        LocalKeyring.open(keyring_dir, create=False)
    assert not keyring_dir.exists()


def test_an_empty_directory_is_refused_when_creation_is_not_allowed(keyring_dir: Path) -> None:
    keyring_dir.mkdir(mode=0o700, parents=True)

    with pytest.raises(KeyringError, match="no keys"):
        LocalKeyring.open(keyring_dir, create=False)


def test_a_key_file_readable_by_others_is_refused(keyring: LocalKeyring, keyring_dir: Path) -> None:
    (key_file,) = _key_files(keyring_dir)
    key_file.chmod(0o644)

    with pytest.raises(KeyringError, match="group or others") as caught:
        LocalKeyring.open(keyring_dir)
    assert str(key_file) in str(caught.value)


def test_a_directory_open_to_others_is_refused(keyring: LocalKeyring, keyring_dir: Path) -> None:
    keyring_dir.chmod(0o755)

    with pytest.raises(KeyringError, match="group or others") as caught:
        LocalKeyring.open(keyring_dir)
    assert str(keyring_dir) in str(caught.value)


def test_a_current_file_readable_by_others_is_refused(
    keyring: LocalKeyring, keyring_dir: Path
) -> None:
    (keyring_dir / "current").chmod(0o640)

    with pytest.raises(KeyringError, match="current"):
        LocalKeyring.open(keyring_dir)


def test_a_key_file_of_the_wrong_length_is_refused(
    keyring: LocalKeyring, keyring_dir: Path
) -> None:
    (key_file,) = _key_files(keyring_dir)
    key_file.write_bytes(key_file.read_bytes()[:31])

    with pytest.raises(KeyringError, match="31 bytes") as caught:
        LocalKeyring.open(keyring_dir)
    assert str(key_file) in str(caught.value)


def test_a_key_file_that_is_a_symlink_is_refused(keyring: LocalKeyring, keyring_dir: Path) -> None:
    (key_file,) = _key_files(keyring_dir)
    elsewhere = keyring_dir.parent / "moved.key"
    key_file.rename(elsewhere)
    key_file.symlink_to(elsewhere)

    with pytest.raises(KeyringError, match="cannot open"):
        LocalKeyring.open(keyring_dir)


def test_a_current_file_naming_a_missing_key_is_refused(
    keyring: LocalKeyring, keyring_dir: Path
) -> None:
    missing = uuid.uuid4().hex
    (keyring_dir / "current").write_text(f"{missing}\n")

    with pytest.raises(KeyringError, match=missing):
        LocalKeyring.open(keyring_dir)


def test_keys_without_a_current_file_are_refused(keyring: LocalKeyring, keyring_dir: Path) -> None:
    (keyring_dir / "current").unlink()

    with pytest.raises(KeyringError, match="current"):
        LocalKeyring.open(keyring_dir)


def test_wrap_then_unwrap_returns_the_data_key(keyring: LocalKeyring) -> None:
    dek = new_data_key()

    wrapped = keyring.wrap(dek, OBJECT_ID)

    assert wrapped.kek_id == keyring.current_kek_id
    assert len(wrapped.blob) == 77
    assert wrapped.blob[0] == 0x01
    assert wrapped.blob[1:17] == uuid.UUID(hex=keyring.current_kek_id).bytes
    assert dek not in wrapped.blob
    assert keyring.unwrap(wrapped, OBJECT_ID) == dek


def test_wrapping_the_same_key_twice_gives_different_blobs(keyring: LocalKeyring) -> None:
    dek = new_data_key()

    assert keyring.wrap(dek, OBJECT_ID).blob != keyring.wrap(dek, OBJECT_ID).blob


def test_unwrapping_for_another_object_fails(keyring: LocalKeyring) -> None:
    wrapped = keyring.wrap(new_data_key(), OBJECT_ID)

    with pytest.raises(KeyringError, match="authentication"):
        keyring.unwrap(wrapped, uuid.uuid4())


@pytest.mark.parametrize(
    "offset", [0, 1, 16, 17, 28, 29, 60, 76], ids=lambda offset: f"byte-{offset}"
)
def test_a_tampered_blob_fails(keyring: LocalKeyring, offset: int) -> None:
    wrapped = keyring.wrap(new_data_key(), OBJECT_ID)
    blob = bytearray(wrapped.blob)
    blob[offset] ^= 0x01

    with pytest.raises(KeyringError):
        keyring.unwrap(dataclasses.replace(wrapped, blob=bytes(blob)), OBJECT_ID)


def test_a_truncated_blob_fails(keyring: LocalKeyring) -> None:
    wrapped = keyring.wrap(new_data_key(), OBJECT_ID)

    with pytest.raises(KeyringError, match="format"):
        keyring.unwrap(dataclasses.replace(wrapped, blob=wrapped.blob[:-1]), OBJECT_ID)


def test_a_record_naming_another_kek_than_its_blob_fails(keyring: LocalKeyring) -> None:
    wrapped = keyring.wrap(new_data_key(), OBJECT_ID)
    other = keyring.rotate()

    with pytest.raises(KeyringError, match="different KEK"):
        keyring.unwrap(WrappedKey(other, wrapped.blob), OBJECT_ID)


def test_a_wrap_from_a_kek_not_in_the_keyring_fails(tmp_path: Path) -> None:
    ours = LocalKeyring.open(tmp_path / "ours")
    theirs = LocalKeyring.open(tmp_path / "theirs")
    wrapped = theirs.wrap(new_data_key(), OBJECT_ID)

    with pytest.raises(KeyringError, match="not in the keyring"):
        ours.unwrap(wrapped, OBJECT_ID)


def test_a_data_key_of_the_wrong_length_is_not_wrapped(keyring: LocalKeyring) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        keyring.wrap(b"short", OBJECT_ID)


def test_rotation_makes_a_new_current_key_and_old_wraps_still_open(
    keyring: LocalKeyring, keyring_dir: Path
) -> None:
    old_id = keyring.current_kek_id
    old_dek = new_data_key()
    old_wrap = keyring.wrap(old_dek, OBJECT_ID)

    new_id = keyring.rotate()
    new_dek = new_data_key()
    new_wrap = keyring.wrap(new_dek, OBJECT_ID)

    assert new_id != old_id
    assert keyring.current_kek_id == new_id
    assert new_wrap.kek_id == new_id
    assert keyring.unwrap(old_wrap, OBJECT_ID) == old_dek
    assert _mode(keyring_dir / f"{new_id}.key") == 0o600
    reopened = LocalKeyring.open(keyring_dir, create=False)
    assert reopened.current_kek_id == new_id
    assert reopened.unwrap(old_wrap, OBJECT_ID) == old_dek
    assert reopened.unwrap(new_wrap, OBJECT_ID) == new_dek


def test_a_rotation_by_another_process_is_seen_without_a_restart(keyring_dir: Path) -> None:
    serving = LocalKeyring.open(keyring_dir)
    command = LocalKeyring.open(keyring_dir, create=False)
    new_id = command.rotate()
    dek = new_data_key()
    made_elsewhere = command.wrap(dek, OBJECT_ID)

    assert serving.current_kek_id != new_id
    assert serving.knows(new_id)
    assert serving.unwrap(made_elsewhere, OBJECT_ID) == dek
    assert serving.current_kek_id == new_id


def test_retiring_deletes_an_old_key_for_good_and_never_the_current_one(
    keyring: LocalKeyring, keyring_dir: Path
) -> None:
    old_id = keyring.current_kek_id
    old_wrap = keyring.wrap(new_data_key(), OBJECT_ID)
    new_id = keyring.rotate()

    with pytest.raises(KeyringError, match="current"):
        keyring.retire(new_id)
    assert keyring.retire(old_id)
    assert not (keyring_dir / f"{old_id}.key").exists()
    assert keyring.kek_ids() == [new_id]
    assert not keyring.retire(old_id)
    for reader in (keyring, LocalKeyring.open(keyring_dir, create=False)):
        with pytest.raises(KeyringError, match="not in the keyring"):
            reader.unwrap(old_wrap, OBJECT_ID)


def test_key_material_never_appears_in_repr_or_errors(
    keyring: LocalKeyring, keyring_dir: Path
) -> None:
    (key_file,) = _key_files(keyring_dir)
    material = key_file.read_bytes()
    dek = new_data_key()
    wrapped = keyring.wrap(dek, OBJECT_ID)
    with pytest.raises(KeyringError) as caught:
        keyring.unwrap(wrapped, uuid.uuid4())

    for text in (repr(keyring), repr(wrapped), str(caught.value)):
        for secret in (material, dek):
            assert secret.hex() not in text
            assert repr(secret) not in text
    assert wrapped.blob.hex() not in repr(wrapped)


def test_the_local_keyring_satisfies_the_key_wrapper_protocol(keyring: LocalKeyring) -> None:
    wrapper: KeyWrapper = keyring
    dek = new_data_key()

    assert wrapper.unwrap(wrapper.wrap(dek, OBJECT_ID), OBJECT_ID) == dek
    assert wrapper.current_kek_id == keyring.current_kek_id
