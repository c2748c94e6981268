"""A subject access copy: the requester's channel kept and the other silenced, chosen
stretches muted on every channel, the rest of the audio as it was; made in the media
workers from the stored original's ciphertext, with no plaintext on disk and the
original untouched. A redaction that does not fit the recording is refused, saying why."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import select

from recorder import InvalidRedaction, RedactedAudio, RedactedCopies, Redaction
from recorder.media_jobs import EncryptedInput, Redacted
from storage import NotStored
from storage.db.models import StoredObject
from tests.audio_factory import BY_NAME, decode, encode, make_audio
from tests.push_support import metadata, push_body, push_headers
from tests.service_support import RunningService, running_service

RATE = 16_000
SECONDS = 4.0
WINDOW = RATE // 10  # 100 ms


def two_voices() -> npt.NDArray[np.int16]:
    """Caller and staff apart: 440 Hz on channel 0, 1 kHz on channel 1, each with a
    little noise so no stretch of either is silent by chance."""
    count = round(SECONDS * RATE)
    t = np.arange(count) / RATE
    noise = np.random.default_rng(3).standard_normal((2, count)) * 0.01
    tones = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)])
    return (np.clip(tones + noise, -1, 1) * 32767).astype(np.int16)


async def push(service: RunningService, audio: bytes) -> uuid.UUID:
    started = time.time() - 600
    meta = metadata(
        recording_id=f"sar-{uuid.uuid4().hex[:8]}",
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + SECONDS)),
    )
    body = push_body(meta, audio)
    response = await service.client.post(
        "/webhooks/push/pbx", data=io.BytesIO(body), headers=push_headers(body)
    )
    assert response.status == 201, await response.text()
    return uuid.UUID((await response.json())["id"])


def copies(service: RunningService) -> RedactedCopies:
    """Wired as the service would: originals from storage, the capture media workers, and
    the spool directory as scratch."""
    return RedactedCopies(
        originals=service.services.renditions,
        media=service.services.media,
        scratch_dir=service.services.spool.path,
    )


async def stored_original(service: RunningService, rid: uuid.UUID) -> tuple[str, str]:
    """The SHA-256 of the original's stored ciphertext and of its plaintext."""
    async with service.services.database.read() as session:
        stored = (
            await session.execute(
                select(StoredObject).where(
                    StoredObject.recording_id == rid, StoredObject.kind == "original"
                )
            )
        ).scalar_one()
    ciphertext = await service.services.objects.read_range(
        stored.object_key, 0, stored.ciphertext_size
    )
    plaintext = await service.stored(rid, "original")
    return hashlib.sha256(ciphertext).hexdigest(), hashlib.sha256(plaintext).hexdigest()


def scratch_files(service: RunningService) -> dict[Path, bytes]:
    """Every file in scratch but its lock, with its first bytes."""
    return {
        path: path.read_bytes()[:4]
        for path in service.services.spool.path.rglob("*")
        if path.is_file() and path.name != ".lock"
    }


async def heard(audio: RedactedAudio) -> tuple[wave._wave_params, npt.NDArray[np.int16]]:
    """The copy as a WAV reader sees it (Python's own, not FFmpeg), read in small chunks;
    its samples as (channels, n)."""
    data = b"".join([chunk async for chunk in audio.chunks(64 * 1024)])
    assert len(data) == audio.size
    assert hashlib.sha256(data).hexdigest() == audio.sha256
    with wave.open(io.BytesIO(data)) as reader:
        params = reader.getparams()
        frames = reader.readframes(params.nframes)
    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, params.nchannels).T
    return params, samples


def rms(samples: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Root mean square of each 100 ms window, per channel: (channels, windows)."""
    windows = samples.shape[1] // WINDOW
    shaped = samples[:, : windows * WINDOW].astype(np.float64).reshape(-1, windows, WINDOW)
    return np.asarray(np.sqrt(np.mean(shaped**2, axis=2)))


def dominant_hz(samples: npt.NDArray[Any], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


async def test_a_two_channel_call_keeps_only_the_requesters_side_and_mutes_what_was_chosen(
    tmp_path: Path, database_url: str
) -> None:
    original = two_voices()
    audio = encode("wav", "pcm_s16le", original, RATE)
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        rid = await push(service, audio)
        before = await stored_original(service, rid)
        view = await service.services.catalog.get(rid)
        assert view is not None
        # Two overlapping stretches, the second ending off any window's edge.
        redaction = Redaction.checked(
            0, [[1.5, 2.05], [1.0, 1.6]], channels=view.channels, duration_s=view.duration_s
        )
        assert redaction.muted == ((1.0, 2.05),)
        lead_in = scratch_files(service)

        async with copies(service).open(rid, redaction) as redacted:
            # In scratch meanwhile: ciphertext only, the copy among it, no WAV anywhere.
            during = scratch_files(service)
            assert any(path.name.endswith(".redacted.spool") for path in during)
            assert set(during.values()) == {b"SGRC"}
            params, samples = await heard(redacted)

        assert scratch_files(service) == lead_in
        assert await stored_original(service, rid) == before
        assert before[1] == hashlib.sha256(audio).hexdigest()

    assert (redacted.content_type, redacted.sample_rate, redacted.channels) == (
        "audio/wav",
        RATE,
        2,
    )
    assert redacted.duration_s == SECONDS
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, RATE)
    assert samples.shape == original.shape

    # The other party's channel: exact digital silence, all of it.
    assert not samples[1].any()
    # The muted stretch: zeros on every channel, to the sample.
    start, end = round(1.0 * RATE), round(2.05 * RATE)
    assert not samples[:, start:end].any()
    assert samples[0, start - 1] != 0
    assert samples[0, end] != 0

    # The rest of the requester's channel is what was recorded: level and pitch alike.
    levels, recorded = rms(samples[:1])[0], rms(original[:1])[0]
    for window, level in enumerate(levels):
        first, last = window * WINDOW, (window + 1) * WINDOW
        if last <= start or first >= end:
            assert level == pytest.approx(recorded[window], rel=1e-9)
            assert level > 3000
        elif start <= first and last <= end:
            assert level == 0
        else:  # the window the stretch ends in: part silence, part the call
            assert 0 < level < recorded[window]
    for kept in (samples[0, :start], samples[0, end:]):
        assert dominant_hz(kept, RATE) == pytest.approx(440, abs=2)
    assert np.array_equal(samples[0, :start], original[0, :start])
    assert np.array_equal(samples[0, end:], original[0, end:])


async def test_a_mono_call_gets_its_stretches_muted_and_cannot_keep_a_channel(
    tmp_path: Path, database_url: str
) -> None:
    audio = make_audio(BY_NAME["mulaw-wav"], SECONDS)
    recorded = decode(audio).samples
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        rid = await push(service, audio)
        before = await stored_original(service, rid)
        lead_in = scratch_files(service)
        redaction = Redaction.checked(None, [[0.25, 0.5], [3.0, 9.0]], channels=1, duration_s=4.0)
        assert redaction.muted == ((0.25, 0.5), (3.0, 4.0))
        async with copies(service).open(rid, redaction) as redacted:
            params, samples = await heard(redacted)

        # As a case keeps it, checked against what the catalog says before any work.
        with pytest.raises(InvalidRedaction, match="needs a two-channel recording; this one has 1"):
            copies(service).open_chosen(
                rid, {"keep_channel": 0, "muted": []}, channels=1, duration_s=4.0
            )
        # A redaction made without knowing the channels is refused by what decodes.
        unchecked = Redaction.checked(1, (), channels=None, duration_s=None)
        with pytest.raises(InvalidRedaction, match="needs a two-channel recording; this one has 1"):
            async with copies(service).open(rid, unchecked):
                pytest.fail("a mono recording cannot keep channel 1")
        with pytest.raises(NotStored):
            async with copies(service).open(uuid.uuid4(), redaction):
                pytest.fail("no such recording")

        assert scratch_files(service) == lead_in
        assert await stored_original(service, rid) == before

    rate = BY_NAME["mulaw-wav"].rate
    assert (params.nchannels, params.framerate, redacted.channels) == (1, rate, 1)
    assert samples.shape == recorded.shape
    muted = np.zeros(samples.shape[1], dtype=bool)
    muted[round(0.25 * rate) : round(0.5 * rate)] = True
    muted[round(3.0 * rate) :] = True
    assert not samples[0, muted].any()
    # Elsewhere, the decoded original's samples exactly (G.711 decodes to 16 bits).
    assert np.array_equal(samples[0, ~muted], recorded[0, ~muted])
    assert rms(samples[:, ~muted]).mean() == pytest.approx(rms(recorded[:, ~muted]).mean())


async def test_no_redaction_is_a_faithful_wav_of_what_decodes(
    tmp_path: Path, database_url: str
) -> None:
    # A lossy original: the copy is its decode, at its own rate, both channels kept.
    audio = make_audio(BY_NAME["mp3"], SECONDS, channels=2)
    recorded = decode(audio)
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        rid = await push(service, audio)
        whole = copies(service).open_chosen(rid, None, channels=None, duration_s=None)
        async with whole as redacted:
            params, samples = await heard(redacted)
            again = await redacted.read_all()
        async with copies(service).open(rid, Redaction(None)) as twice:
            # Nothing in the copy depends on when it was made.
            assert (twice.sha256, await twice.read_all()) == (redacted.sha256, again)

    assert (params.nchannels, params.framerate) == (2, recorded.rate)
    assert samples.shape[1] == recorded.samples.shape[1]
    scale = 32767 if np.abs(recorded.samples).max() <= 1.0 else 1
    assert rms(samples) == pytest.approx(rms(recorded.samples * scale), rel=0.01, abs=2)


class StuckRedactor:
    """A worker that takes the original and never finishes, until it is cancelled."""

    def __init__(self) -> None:
        self.given: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def redact(self, source: EncryptedInput, redaction: Redaction) -> Redacted:
        self.given.set_result(source.path.read_bytes()[:4])
        await asyncio.Event().wait()
        raise AssertionError("never finishes")


async def test_a_copy_abandoned_half_way_leaves_nothing_in_scratch(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        rid = await push(service, make_audio(BY_NAME["pcm-wav"], SECONDS, channels=2))
        lead_in = scratch_files(service)

        # Cancelled while the worker holds the original's copy (ciphertext, as stored).
        stuck = StuckRedactor()
        stuck_copies = RedactedCopies(
            originals=service.services.renditions,
            media=stuck,
            scratch_dir=service.services.spool.path,
        )

        async def make() -> None:
            async with stuck_copies.open(rid, Redaction(0)):
                pytest.fail("the copy never finishes")

        making = asyncio.create_task(make())
        assert await stuck.given == b"SGRC"
        making.cancel()
        with pytest.raises(asyncio.CancelledError):
            await making
        assert scratch_files(service) == lead_in

        # Left after the first chunk, by an error in whoever was reading it.
        async def give_up_reading() -> None:
            async with copies(service).open(rid, Redaction(1)) as redacted:
                async for chunk in redacted.chunks(1024):
                    assert chunk.startswith(b"RIFF")
                    raise RuntimeError("the reader gave up")

        with pytest.raises(RuntimeError, match="the reader gave up"):
            await give_up_reading()
        assert scratch_files(service) == lead_in


@pytest.mark.parametrize(
    ("keep", "muted", "channels", "duration", "says"),
    [
        (2, [], 2, 4.0, "keep_channel must be 0, 1 or null"),
        (True, [], 2, 4.0, "keep_channel must be 0, 1 or null"),
        ("0", [], 2, 4.0, "keep_channel must be 0, 1 or null"),
        (0, [], 1, 4.0, "keep_channel needs a two-channel recording; this one has 1"),
        (1, [], 3, 4.0, "keep_channel needs a two-channel recording; this one has 3"),
        (None, [[1.0]], 2, 4.0, r"muted\[0\] must be \[start, end\] in seconds"),
        (None, [[0, 1], "0-1"], 2, 4.0, r"muted\[1\] must be \[start, end\] in seconds"),
        (None, [[0, True]], 2, 4.0, r"muted\[0\] must be \[start, end\] in seconds"),
        (None, [[0, float("nan")]], 2, 4.0, r"muted\[0\] must be \[start, end\] in seconds"),
        (None, [[0, float("inf")]], 2, 4.0, r"muted\[0\] must be \[start, end\] in seconds"),
        (None, [[2.0, 1.0]], 2, 4.0, r"muted\[0\] must start at 0 or later and end after"),
        (None, [[1.0, 1.0]], 2, 4.0, r"muted\[0\] must start at 0 or later and end after"),
        (None, [[-0.5, 1.0]], 2, 4.0, r"muted\[0\] must start at 0 or later and end after"),
        (None, [[4.0, 5.0]], 2, 4.0, r"muted\[0\] starts at 4 s, after the recording ends"),
        (None, [[i, i + 0.5] for i in range(101)], 2, 200.0, "at most 100 ranges"),
    ],
)
def test_a_redaction_that_does_not_fit_is_refused_saying_why(
    keep: Any, muted: list[Any], channels: int, duration: float, says: str
) -> None:
    with pytest.raises(InvalidRedaction, match=says) as refused:
        Redaction.checked(keep, muted, channels=channels, duration_s=duration)
    assert isinstance(refused.value, ValueError)


def test_a_chosen_redaction_reads_back_as_it_was_kept_with_the_case() -> None:
    choice = {"keep_channel": 1, "muted": [[3, 4.5], [0, 1], [0.5, 2], [2, 2.5]]}
    redaction = Redaction.from_choice(choice, channels=2, duration_s=4.0)
    assert redaction == Redaction(1, ((0.0, 2.5), (3.0, 4.0)))
    assert redaction.as_choice() == {"keep_channel": 1, "muted": [[0.0, 2.5], [3.0, 4.0]]}
    assert Redaction.from_choice(redaction.as_choice(), channels=2, duration_s=4.0) == redaction
    assert Redaction.from_choice({}, channels=1, duration_s=None) == Redaction(None)
    with pytest.raises(InvalidRedaction, match="unknown redaction fields: mute"):
        Redaction.from_choice({"mute": [[0, 1]]}, channels=2, duration_s=4.0)
    with pytest.raises(InvalidRedaction, match="muted must be a list"):
        Redaction.from_choice({"muted": "0-1"}, channels=2, duration_s=4.0)


def test_a_redaction_built_directly_must_already_be_in_order_and_apart() -> None:
    assert Redaction(0, ((0.0, 1.0), (1.5, 2.0))).muted == ((0.0, 1.0), (1.5, 2.0))
    with pytest.raises(InvalidRedaction, match="in order and apart"):
        Redaction(None, ((1.5, 2.0), (0.0, 1.0)))
    with pytest.raises(InvalidRedaction, match="in order and apart"):
        Redaction(None, ((0.0, 1.0), (1.0, 2.0)))
    with pytest.raises(InvalidRedaction, match="keep_channel must be 0, 1 or null"):
        Redaction(2)
    with pytest.raises(InvalidRedaction, match=r"muted\[0\] must start at 0 or later"):
        Redaction(None, ((2.0, 1.0),))
    with pytest.raises(InvalidRedaction, match="at most 100 ranges"):
        Redaction(None, tuple((float(i), i + 0.5) for i in range(101)))
