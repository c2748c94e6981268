"""The encrypted spool: no plaintext on disk, waits for its thread, and sweeps only the dead."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from storage import EncryptedSpool, SpoolDirectory, sweep_spool
from tests.push_support import make_wav


async def test_spooled_audio_is_ciphertext_that_reads_back_as_the_audio(tmp_path: Path) -> None:
    audio = make_wav(3)
    spool = EncryptedSpool(tmp_path)
    for offset in range(0, len(audio), 10_000):
        await spool.write(audio[offset : offset + 10_000])
    facts = await spool.finish()
    on_disk = spool.path.read_bytes()
    assert b"RIFF" not in on_disk
    assert audio[5000:5064] not in on_disk
    assert facts.plaintext_size == len(audio)
    assert facts.ciphertext_size == len(on_disk)
    assert spool.path.stat().st_mode & 0o777 == 0o600
    with spool.open_plaintext() as plaintext:
        assert plaintext.read() == audio
    await spool.discard()
    assert not spool.path.exists()


async def test_discard_waits_for_the_batch_being_written_even_when_cancelled(
    tmp_path: Path,
) -> None:
    spool = EncryptedSpool(tmp_path)
    started = asyncio.Event()
    original = spool._absorb
    loop = asyncio.get_running_loop()

    outcome: list[str] = []

    def slow_absorb(chunks: list[bytes | memoryview]) -> None:
        loop.call_soon_threadsafe(started.set)
        time.sleep(0.3)
        try:
            original(chunks)
        except Exception as exc:
            outcome.append(repr(exc))
            raise
        outcome.append("written")

    spool._absorb = slow_absorb  # type: ignore[method-assign]
    await spool.write(os.urandom(2 * 1024 * 1024))  # starts a batch on a thread
    await started.wait()
    discarding = asyncio.create_task(spool.discard())
    await asyncio.sleep(0.05)
    discarding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await discarding
    # The thread finished writing before the file was closed and removed.
    assert outcome == ["written"]
    assert spool._fd == -1
    assert not spool.path.exists()


def test_sweeping_removes_dead_processes_spool_but_not_a_live_one(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    live = SpoolDirectory(root)
    (live.path / "live.spool").write_bytes(b"x")
    dead = root / "0123456789abcdef0123456789abcdef"
    dead.mkdir()
    (dead / ".lock").write_bytes(b"")
    (dead / "left-behind.spool").write_bytes(b"x")
    assert sweep_spool(root) == 1
    assert not dead.exists()
    assert (live.path / "live.spool").exists()
    live.release()
    assert not live.path.exists()
