"""``callrec sar verify``: a bundle checked offline, with no settings or data directory.

Exit 0 and one line for an intact bundle; 1 and one line naming the problem for a bundle
that is not; 2 and one line when it cannot be checked at all.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pyrage
import pytest

from config.services import build_services
from config.settings import Settings
from retrieval.sar_bundle import ToPassphrase
from storage import ReceiptSigner
from tests.bundle_support import (
    AUDIO_NAME,
    CASE,
    Member,
    case_entries,
    make_bundle,
    new_signer,
    retar,
    to_identity,
)
from tests.cli_support import invoke

PASSPHRASE = "a long passphrase for the requester"


@pytest.fixture(scope="module")
def signer() -> ReceiptSigner:
    return new_signer()


@pytest.fixture(scope="module")
def identity() -> Any:
    return pyrage.x25519.Identity.generate()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, signer: ReceiptSigner, identity: Any) -> Path:
    """A folder as a bundle's recipient holds it: the bundle, their identity, the public key."""
    folder = tmp_path_factory.mktemp("delivered")
    ciphertext, _ = asyncio.run(make_bundle(signer, to_identity(identity)))
    (folder / "case.age").write_bytes(ciphertext)
    (folder / "identity.txt").write_text(f"# created for {CASE.reference}\n{identity}\n")
    (folder / "receipts.pem").write_bytes(signer.public_pem)
    return folder


def sar_verify(files: Path, bundle: str, *options: str, **settings: str) -> tuple[int, str, str]:
    result = invoke("sar", "verify", str(files / bundle), *options, **settings)
    return result.returncode, result.stdout, result.stderr


def with_key(files: Path) -> tuple[str, ...]:
    return ("--identity", str(files / "identity.txt"), "--public-key", str(files / "receipts.pem"))


def test_an_intact_bundle_passes_with_one_line(files: Path, signer: ReceiptSigner) -> None:
    content = sum(entry.size for entry in case_entries())

    code, out, err = sar_verify(files, "case.age", *with_key(files))

    assert code == 0, err
    assert out == (
        f"bundle {files / 'case.age'} intact: case {CASE.reference} ({CASE.id}), 4 files of "
        f"{content} bytes, created 2026-12-04T09:30:00Z, signed by receipt key "
        f"{signer.key_id}\n"
    )
    # Checked in memory: nothing was extracted beside the bundle.
    assert sorted(os.listdir(files)) == ["case.age", "identity.txt", "receipts.pem"]


def test_a_changed_member_fails_with_exit_1_naming_it(
    files: Path, tmp_path: Path, identity: Any
) -> None:
    def flip(members: list[Member]) -> list[Member]:
        info, data = members[1]
        return [members[0], (info, data[:-1] + bytes([data[-1] ^ 1])), *members[2:]]

    changed = retar((files / "case.age").read_bytes(), identity, flip)
    (tmp_path / "changed.age").write_bytes(changed)
    code, out, err = sar_verify(tmp_path, "changed.age", *with_key(files))

    assert (code, out) == (1, "")
    bundle = tmp_path / "changed.age"
    assert err.startswith(f"bundle {bundle} is not intact: {AUDIO_NAME} has sha256 ")
    assert err.count("\n") == 1


def test_another_services_key_fails_with_exit_1(files: Path, tmp_path: Path) -> None:
    stranger = new_signer()
    (tmp_path / "other.pem").write_bytes(stranger.public_pem)
    code, _, err = sar_verify(
        files,
        "case.age",
        "--identity",
        str(files / "identity.txt"),
        "--public-key",
        str(tmp_path / "other.pem"),
    )
    assert code == 1
    assert f"which is not among the public keys given ({stranger.key_id})" in err


def test_any_of_several_public_keys_may_have_signed(files: Path, tmp_path: Path) -> None:
    (tmp_path / "other.pem").write_bytes(new_signer().public_pem)
    code, _, err = sar_verify(
        files, "case.age", *with_key(files), "--public-key", str(tmp_path / "other.pem")
    )
    assert code == 0, err


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ((), "give exactly one of --identity FILE, --passphrase-file FILE or"),
        (("--identity", "identity.txt"), "give the service's receipt public key with --public-key"),
        (
            ("--identity", "nowhere.txt", "--public-key", "receipts.pem"),
            "cannot read identity file",
        ),
        (("--identity", "receipts.pem", "--public-key", "receipts.pem"), "is not an age identity"),
        (("--identity", "identity.txt", "--public-key", "identity.txt"), "not a PEM public key"),
        (
            ("--identity", "identity.txt", "--passphrase-file", "identity.txt"),
            "(given: --identity, --passphrase-file)",
        ),
        (("--passphrase", "hunter2"), "never give a passphrase on the command line"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(files: Path, options: tuple[str, ...], says: str) -> None:
    paths = [
        str(files / option) if option.endswith((".txt", ".pem")) else option for option in options
    ]
    code, out, err = sar_verify(files, "case.age", *paths)
    assert (code, out) == (2, "")
    assert err.startswith("callrec: ")
    assert err.count("\n") == 1
    assert says in err
    assert "hunter2" not in err


def test_a_missing_bundle_is_exit_2(files: Path) -> None:
    code, _, err = sar_verify(files, "absent.age", *with_key(files))
    assert code == 2
    assert err == f"callrec: cannot read {files / 'absent.age'}: No such file or directory\n"


def test_another_identity_is_exit_2(files: Path, tmp_path: Path) -> None:
    (tmp_path / "stranger.txt").write_text(f"{pyrage.x25519.Identity.generate()}\n")
    code, _, err = sar_verify(
        files,
        "case.age",
        "--identity",
        str(tmp_path / "stranger.txt"),
        "--public-key",
        str(files / "receipts.pem"),
    )
    assert code == 2
    assert "is not encrypted to this identity or passphrase" in err
    assert "AGE-SECRET-KEY" not in err


def test_a_truncated_bundle_is_exit_1(files: Path, tmp_path: Path) -> None:
    whole = (files / "case.age").read_bytes()
    (tmp_path / "cut.age").write_bytes(whole[: len(whole) // 2])
    code, _, err = sar_verify(tmp_path, "cut.age", *with_key(files))
    assert code == 1
    assert err.endswith(
        "is not intact: the encrypted bundle is damaged or cut short: a chunk fails "
        "authentication\n"
    )


async def test_a_passphrase_bundle_opens_from_a_file_or_the_environment(
    files: Path, tmp_path: Path, signer: ReceiptSigner
) -> None:
    ciphertext, _ = await make_bundle(signer, ToPassphrase(PASSPHRASE))
    (tmp_path / "case.age").write_bytes(ciphertext)
    (tmp_path / "passphrase.txt").write_text(PASSPHRASE + "\n")
    public_key = ("--public-key", str(files / "receipts.pem"))

    from_file = sar_verify(
        tmp_path, "case.age", "--passphrase-file", str(tmp_path / "passphrase.txt"), *public_key
    )
    from_environment = sar_verify(
        tmp_path, "case.age", *public_key, CALLREC_SAR_PASSPHRASE=PASSPHRASE
    )
    wrong = sar_verify(tmp_path, "case.age", *public_key, CALLREC_SAR_PASSPHRASE="not it")

    assert from_file[0] == 0, from_file[2]
    assert from_environment[0] == 0, from_environment[2]
    assert from_file[1] == from_environment[1]
    assert wrong[0] == 2
    assert wrong[2] == f"callrec: cannot open {tmp_path / 'case.age'}: wrong passphrase\n"
    assert PASSPHRASE not in json.dumps([from_file, from_environment, wrong])


@pytest.mark.parametrize("command", [["sar"], ["sar", "verify"]])
def test_the_commands_have_help_that_offers_no_passphrase_option(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: callrec sar")
    assert "--passphrase " not in result.stdout


async def test_a_bundle_signed_by_the_service_verifies_against_its_printed_receipt_keys(
    tmp_path: Path, identity: Any
) -> None:
    data_dir = tmp_path / "var"
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(data_dir)).returncode == 0
    services = build_services(Settings(data_dir=data_dir))
    try:
        signer = await services.receipt_signer()
        ciphertext, _ = await make_bundle(signer, to_identity(identity))
    finally:
        await services.close()
    (tmp_path / "case.age").write_bytes(ciphertext)
    (tmp_path / "identity.txt").write_text(f"{identity}\n")

    printed = invoke("keys", "receipt-keys", CALLREC_DATA_DIR=str(data_dir))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith(f"# receipt key {signer.key_id}\n-----BEGIN PUBLIC KEY-----")
    (tmp_path / "receipts.pem").write_text(printed.stdout)

    code, out, err = sar_verify(
        tmp_path,
        "case.age",
        "--identity",
        str(tmp_path / "identity.txt"),
        "--public-key",
        str(tmp_path / "receipts.pem"),
    )
    assert code == 0, err
    assert out.endswith(f"signed by receipt key {signer.key_id}\n")
