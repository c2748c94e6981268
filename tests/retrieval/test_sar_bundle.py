"""The subject access bundle: written streamed and encrypted, read back and checked, and
every kind of damage or forgery refused with a message naming it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from retrieval.sar_bundle import (
    MANIFEST_NAME,
    BundleEntry,
    BundleInvalid,
    BundleRefused,
    BundleReport,
    BundleUnopenable,
    Decryption,
    ToPassphrase,
    ToRecipients,
    WithIdentities,
    WithPassphrase,
    bytes_entry,
    private_bundle_file,
    trusted_keys,
    verify_bundle,
    write_bundle,
)
from storage import ReceiptSigner
from tests.bundle_support import (
    AUDIO,
    AUDIO_NAME,
    CASE,
    CREATED_AT,
    Member,
    case_entries,
    chunks_of,
    file_member,
    make_bundle,
    new_signer,
    retar,
    to_identity,
)

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def signer() -> ReceiptSigner:
    return new_signer()


@pytest.fixture(scope="module")
def identity() -> Any:
    return pyrage.x25519.Identity.generate()


@pytest.fixture(scope="module")
def bundle(signer: ReceiptSigner, identity: Any) -> bytes:
    ciphertext, _ = asyncio.run(make_bundle(signer, to_identity(identity)))
    return ciphertext


def verify(ciphertext: bytes, key: Decryption, signer: ReceiptSigner) -> BundleReport:
    return verify_bundle(io.BytesIO(ciphertext), key, trusted_keys([signer.public_pem]))


def refusal(ciphertext: bytes, identity: Any, signer: ReceiptSigner) -> str:
    with pytest.raises(BundleInvalid) as refused:
        verify(ciphertext, WithIdentities((identity,)), signer)
    return str(refused.value)


async def test_a_bundle_to_an_age_key_verifies_and_summarises_what_it_holds(
    signer: ReceiptSigner, identity: Any
) -> None:
    ciphertext, summary = await make_bundle(signer, to_identity(identity))

    report = verify(ciphertext, WithIdentities((identity,)), signer)

    assert report.case == CASE
    assert report.files == 4
    assert report.key_id == signer.key_id
    assert report.created_at == "2026-12-04T09:30:00Z"
    assert report.manifest_sha256 == summary.manifest_sha256
    assert summary.ciphertext_sha256 == hashlib.sha256(ciphertext).hexdigest()
    assert summary.ciphertext_bytes == len(ciphertext)
    audio = next(file for file in summary.files if file.name == AUDIO_NAME)
    assert (audio.size, audio.sha256) == (len(AUDIO), hashlib.sha256(AUDIO).hexdigest())
    details = summary.audit_details()
    assert details["encrypted_to"] == [str(identity.to_public())]
    assert json.dumps(details)  # fit for the audit trail as it is


def test_the_plaintext_is_a_tar_any_tool_reads_with_the_signed_manifest_last(
    bundle: bytes, identity: Any, signer: ReceiptSigner
) -> None:
    plaintext = pyrage.decrypt(bundle, [identity])
    with tarfile.open(fileobj=io.BytesIO(plaintext), mode="r:") as archive:
        members = archive.getmembers()
        names = [member.name for member in members]
        manifest_file = archive.extractfile(members[-1])
        assert manifest_file is not None
        manifest = json.loads(manifest_file.read())
    assert names[-1] == MANIFEST_NAME
    assert names[1] == AUDIO_NAME
    assert all(member.mode == 0o600 and not member.uname for member in members)
    assert [file["name"] for file in manifest["files"]] == names[:-1]
    assert manifest["key_id"] == signer.key_id
    assert manifest["case"] == {"id": CASE.id, "reference": CASE.reference}


async def test_a_bundle_to_a_passphrase_opens_with_it_and_not_with_another(
    signer: ReceiptSigner,
) -> None:
    ciphertext, summary = await make_bundle(signer, ToPassphrase(PASSPHRASE))

    report = verify(ciphertext, WithPassphrase(PASSPHRASE), signer)
    assert report.files == 4
    assert summary.encrypted_to == ("passphrase",)
    with pytest.raises(BundleUnopenable, match="wrong passphrase"):
        verify(ciphertext, WithPassphrase("incorrect horse"), signer)


async def test_a_passphrase_bundle_over_its_limit_is_refused_with_a_pointer_to_a_key(
    signer: ReceiptSigner,
) -> None:
    with pytest.raises(BundleRefused, match="encrypt it to an age recipient key"):
        await make_bundle(signer, ToPassphrase(PASSPHRASE, limit_bytes=len(AUDIO) // 2))


def test_another_identity_cannot_open_it(bundle: bytes, signer: ReceiptSigner) -> None:
    stranger = pyrage.x25519.Identity.generate()
    with pytest.raises(BundleUnopenable, match="not encrypted to this identity"):
        verify(bundle, WithIdentities((stranger,)), signer)


def test_a_bundle_cut_short_is_refused(bundle: bytes, identity: Any, signer: ReceiptSigner) -> None:
    message = refusal(bundle[: len(bundle) - 100], identity, signer)
    assert "damaged or cut short" in message
    with pytest.raises(BundleUnopenable, match="not a complete age-encrypted file"):
        verify(bundle[:60], WithIdentities((identity,)), signer)


def test_a_damaged_ciphertext_byte_is_refused(
    bundle: bytes, identity: Any, signer: ReceiptSigner
) -> None:
    damaged = bytearray(bundle)
    damaged[-500] ^= 0x01
    assert "damaged or cut short" in refusal(bytes(damaged), identity, signer)


def test_a_changed_byte_in_a_member_is_named_with_both_hashes(
    bundle: bytes, identity: Any, signer: ReceiptSigner
) -> None:
    def flip(members: list[Member]) -> list[Member]:
        info, data = members[1]
        changed = bytearray(data)
        changed[1000] ^= 0x01
        return [members[0], (info, bytes(changed)), *members[2:]]

    message = refusal(retar(bundle, identity, flip), identity, signer)
    assert message.startswith(f"{AUDIO_NAME} has sha256 ")
    assert f"the manifest says {hashlib.sha256(AUDIO).hexdigest()}" in message


def test_a_missing_member_is_named(bundle: bytes, identity: Any, signer: ReceiptSigner) -> None:
    tampered = retar(bundle, identity, lambda members: [members[0], *members[2:]])
    assert refusal(tampered, identity, signer) == (
        f"{AUDIO_NAME} is listed in the manifest but missing"
    )


def test_a_member_the_manifest_does_not_list_is_named(
    bundle: bytes, identity: Any, signer: ReceiptSigner
) -> None:
    extra = file_member("recordings/someone-else/audio.wav", b"RIFF")
    tampered = retar(bundle, identity, lambda members: [*members[:-1], extra, members[-1]])
    assert refusal(tampered, identity, signer) == (
        "recordings/someone-else/audio.wav is in the bundle but not in the manifest"
    )


def test_a_member_after_the_manifest_is_refused(
    bundle: bytes, identity: Any, signer: ReceiptSigner
) -> None:
    extra = file_member("notes.txt", b"added later")
    tampered = retar(bundle, identity, lambda members: [*members, extra])
    assert "'notes.txt' comes after the manifest" in refusal(tampered, identity, signer)


def test_a_repeated_member_is_refused(bundle: bytes, identity: Any, signer: ReceiptSigner) -> None:
    tampered = retar(bundle, identity, lambda members: [members[0], *members])
    assert refusal(tampered, identity, signer) == "member case.json appears twice"


@pytest.mark.parametrize(
    "name", ["../outside.wav", "/etc/cron.d/job", "recordings/../../outside", ".hidden", "a\\b"]
)
def test_a_name_that_could_escape_an_unpacking_directory_is_refused(
    bundle: bytes, identity: Any, signer: ReceiptSigner, name: str
) -> None:
    evil = file_member(name, b"x")
    tampered = retar(bundle, identity, lambda members: [evil, *members])
    assert refusal(tampered, identity, signer).startswith(f"member {name!r} is refused: ")


def test_a_link_member_is_refused(bundle: bytes, identity: Any, signer: ReceiptSigner) -> None:
    link = tarfile.TarInfo("recordings/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    tampered = retar(bundle, identity, lambda members: [(link, b""), *members])
    assert refusal(tampered, identity, signer) == "member recordings/link is not a regular file"


def test_a_manifest_edited_after_signing_is_refused(
    bundle: bytes, identity: Any, signer: ReceiptSigner
) -> None:
    """The usual forgery: change a member, and its hash in the manifest to match."""
    replacement = b"RIFF" + b"\0" * 100

    def forge(members: list[Member]) -> list[Member]:
        info, data = members[-1]
        manifest = json.loads(data)
        manifest["files"][1].update(
            size=len(replacement), sha256=hashlib.sha256(replacement).hexdigest()
        )
        return [
            members[0],
            (members[1][0], replacement),
            *members[2:-1],
            (info, json.dumps(manifest).encode()),
        ]

    message = refusal(retar(bundle, identity, forge), identity, signer)
    assert message == (
        f"the manifest's signature by key {signer.key_id} does not verify: "
        "it was altered after signing, or forged"
    )


def test_a_manifest_signed_by_another_key_is_refused(
    bundle: bytes, identity: Any, signer: ReceiptSigner
) -> None:
    forger = new_signer()

    def resign(members: list[Member]) -> list[Member]:
        info, data = members[-1]
        manifest = json.loads(data)
        facts = {
            name: value
            for name, value in manifest.items()
            if name not in {"signature", "key_id", "receipt_version"}
        }
        return [*members[:-1], (info, json.dumps(forger.sign(facts)).encode())]

    message = refusal(retar(bundle, identity, resign), identity, signer)
    assert message == (
        f"the manifest is signed by key {forger.key_id}, which is not among the public "
        f"keys given ({signer.key_id})"
    )


def test_the_right_bundle_against_the_wrong_public_key_is_refused(
    bundle: bytes, identity: Any
) -> None:
    other = new_signer()
    with pytest.raises(
        BundleInvalid, match=f"which is not among the public keys given \\({other.key_id}\\)"
    ):
        verify(bundle, WithIdentities((identity,)), other)


def test_a_public_key_file_may_hold_several_keys_and_one_without_any_is_named() -> None:
    first, second = new_signer(), new_signer()
    together = b"# the current key\n" + first.public_pem + b"\n" + second.public_pem

    assert set(trusted_keys([together])) == {first.key_id, second.key_id}
    with pytest.raises(BundleUnopenable, match="public key file 2: not a PEM public key"):
        trusted_keys([together, b"-----BEGIN NOTHING-----"])
    not_ed25519 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(BundleUnopenable, match="public key file 1: not an Ed25519 public key"):
        trusted_keys([not_ed25519])


@pytest.mark.parametrize(
    ("entries", "refused"),
    [
        ([bytes_entry("../up.json", b"{}")], "'../up.json': a member name with '..'"),
        ([bytes_entry(MANIFEST_NAME, b"{}")], "the manifest name is taken"),
        ([bytes_entry("a.json", b"{}"), bytes_entry("a.json", b"{}")], "a.json is given twice"),
        ([BundleEntry("a.wav", 10, chunks_of(b"x" * 11))], "a.wav is longer than its 10 bytes"),
        ([BundleEntry("a.wav", 10, chunks_of(b"x" * 9))], "a.wav ended at 9 of its 10 bytes"),
    ],
)
async def test_the_writer_refuses_entries_it_could_not_describe_truly(
    signer: ReceiptSigner, identity: Any, entries: list[BundleEntry], refused: str
) -> None:
    with pytest.raises(BundleRefused, match=refused.replace("(", r"\(").replace(".", r"\.")):
        await make_bundle(signer, to_identity(identity), entries)


async def test_entries_may_come_one_at_a_time_from_an_async_source(
    signer: ReceiptSigner, identity: Any
) -> None:
    opened: list[str] = []

    async def entries() -> AsyncIterator[BundleEntry]:
        for entry in case_entries():
            opened.append(entry.name)  # each recording is looked up only when its turn comes
            yield entry

    ciphertext, summary = await make_bundle(signer, to_identity(identity), entries())
    assert [file.name for file in summary.files] == opened
    assert verify(ciphertext, WithIdentities((identity,)), signer).files == len(opened)


def test_a_recipient_that_is_not_an_age_key_is_refused() -> None:
    with pytest.raises(BundleRefused, match="not an age recipient"):
        ToRecipients(("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",))
    with pytest.raises(BundleRefused, match="no age recipient given"):
        ToRecipients(())


async def test_a_bundle_file_is_private_and_holds_only_ciphertext(
    tmp_path: Path, signer: ReceiptSigner, identity: Any
) -> None:
    seen_while_writing: list[list[str]] = []

    async def audio() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(AUDIO):
            seen_while_writing.append(sorted(os.listdir(tmp_path)))
            yield chunk

    out = tmp_path / "case.age"
    async with private_bundle_file(out) as sink:
        await write_bundle(
            [BundleEntry(AUDIO_NAME, len(AUDIO), audio())],
            case=CASE,
            created_at=CREATED_AT,
            signer=signer,
            encryption=to_identity(identity),
            sink=sink,
        )

    # While it was written: one hidden partial file, no other (no plaintext spooled).
    assert all(
        len(names) == 1 and names[0].startswith(".case.age.") for names in seen_while_writing
    )
    assert os.listdir(tmp_path) == ["case.age"]
    assert out.stat().st_mode & 0o777 == 0o600
    ciphertext = out.read_bytes()
    assert AUDIO[:64] not in ciphertext
    assert verify(ciphertext, WithIdentities((identity,)), signer).files == 1


async def test_a_failed_bundle_leaves_no_file(
    tmp_path: Path, signer: ReceiptSigner, identity: Any
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"RIFF"
        raise OSError("the store went away")

    with pytest.raises(OSError, match="the store went away"):
        async with private_bundle_file(tmp_path / "case.age") as sink:
            await write_bundle(
                [BundleEntry(AUDIO_NAME, 100, failing())],
                case=CASE,
                created_at=CREATED_AT,
                signer=signer,
                encryption=to_identity(identity),
                sink=sink,
            )
    assert os.listdir(tmp_path) == []


async def test_an_existing_file_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "case.age").write_bytes(b"earlier")
    with pytest.raises(BundleRefused, match="already exists"):
        async with private_bundle_file(tmp_path / "case.age"):
            pass
    assert os.listdir(tmp_path) == ["case.age"]


async def test_a_cancelled_bundle_stops_its_encrypting_thread(
    tmp_path: Path, signer: ReceiptSigner, identity: Any
) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            started.set()
            yield b"\0" * 65536

    async def export() -> None:
        async with private_bundle_file(tmp_path / "case.age") as sink:
            await write_bundle(
                [BundleEntry(AUDIO_NAME, 10**12, endless())],
                case=CASE,
                created_at=CREATED_AT,
                signer=signer,
                encryption=to_identity(identity),
                sink=sink,
            )

    task = asyncio.create_task(export())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
    assert os.listdir(tmp_path) == []


async def test_a_bundle_streams_as_an_http_response(signer: ReceiptSigner, identity: Any) -> None:
    """The sink may be aiohttp's StreamResponse: the bundle goes out as it is made."""

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        await write_bundle(
            case_entries(),
            case=CASE,
            created_at=CREATED_AT,
            signer=signer,
            encryption=to_identity(identity),
            sink=response,
        )
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/bundle", download)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/bundle")
        assert answer.status == 200
        ciphertext = await answer.read()
    assert verify(ciphertext, WithIdentities((identity,)), signer).files == 4


STREAMING_PROBE = """
import asyncio, os, resource, sys
from datetime import UTC, datetime
import pyrage
from retrieval.sar_bundle import BundleCase, BundleEntry, ToRecipients, write_bundle
from storage import ReceiptSigner
from storage.keys.signing import signing_key_from_seed

SIZE = int(sys.argv[1])

async def audio():
    block = bytes(range(256)) * 256
    for _ in range(SIZE // len(block)):
        yield block

class Counter:
    total = 0
    async def write(self, data):
        self.total += len(data)

async def main():
    identity = pyrage.x25519.Identity.generate()
    await write_bundle(
        [BundleEntry("recordings/r/audio.wav", SIZE, audio())],
        case=BundleCase("c", "r"), created_at=datetime.now(UTC),
        signer=ReceiptSigner(signing_key_from_seed(os.urandom(32))),
        encryption=ToRecipients((str(identity.to_public()),)), sink=Counter(),
    )

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
asyncio.run(main())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_large_bundle_to_a_key_is_streamed_in_flat_memory() -> None:
    """100 MiB through the writer and age in a fresh process: its peak resident memory
    grows by a few megabytes, not by the bundle."""
    size = 100 * 1024 * 1024
    probe = subprocess.run(
        [sys.executable, "-c", STREAMING_PROBE, str(size)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    grown_kib = int(probe.stdout.strip())
    assert grown_kib < 32 * 1024, f"peak memory grew by {grown_kib} KiB for {size} bytes"
