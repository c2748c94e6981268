"""Hostile and malformed pushes: each gets its status and JSON error, and nothing is stored."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import recorder.capture
import recorder.handlers
from recorder import sign_preauth
from storage import RECORDINGS_PREFIX
from tests.push_support import (
    BOUNDARY,
    SECRET,
    make_wav,
    metadata,
    part,
    push_body,
    push_headers,
)
from tests.service_support import (
    KEYS_PER_RECORDING,
    RunningService,
    keys_read_before_the_database_went,
    running_service,
)

URL = "/webhooks/push/pbx"
LIMIT = 256 * 1024
AUDIO = make_wav(1)
NOTHING = {"recordings": 0, "objects": 0, "spool": 0, "audit": 0}


@dataclass(frozen=True)
class Push:
    body: bytes
    headers: dict[str, str]
    url: str = URL
    chunked: bool = False


@dataclass(frozen=True)
class Case:
    build: Callable[[], Push]
    status: int
    error: str
    detail_mentions: str = ""
    stored: dict[str, int] = field(default_factory=lambda: dict(NOTHING))


def signed(body: bytes, **overrides: str) -> Push:
    headers = push_headers(body)
    headers.update(overrides)
    return Push(body, {k: v for k, v in headers.items() if v != "-"})


def good_body(**fields: Any) -> bytes:
    return push_body(metadata(**fields), AUDIO)


def closed(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def zero_bit_wav() -> bytes:
    """A WAV whose format chunk says 0 bits per sample: FFmpeg has no decoder for it."""
    wav = bytearray(make_wav(1))
    wav[34:36] = (0).to_bytes(2, "little")  # bits per sample, in the 16-byte fmt chunk
    return bytes(wav)


META = part("metadata", json.dumps(metadata()).encode(), content_type="application/json")
AUDIO_PART = part("audio", AUDIO, filename="call.wav", content_type="audio/wav")

CASES: dict[str, Case] = {
    # Authentication: who is sending, and is it fresh?
    "no-signature": Case(
        lambda: signed(good_body(), **{"X-Callrec-Signature": "-"}), 401, "unauthenticated"
    ),
    "no-timestamp": Case(
        lambda: signed(good_body(), **{"X-Callrec-Timestamp": "-"}), 401, "unauthenticated"
    ),
    "signed-with-another-secret": Case(
        lambda: Push(good_body(), push_headers(good_body(), secret="someone-elses-secret-000")),
        401,
        "unauthenticated",
    ),
    "body-changed-after-signing": Case(
        lambda: Push(good_body(agent="staff-9999"), push_headers(good_body())),
        401,
        "unauthenticated",
    ),
    "stale-timestamp": Case(
        lambda: Push(good_body(), push_headers(good_body(), timestamp=int(time.time()) - 301)),
        401,
        "unauthenticated",
        "300 s",
    ),
    "timestamp-from-the-future": Case(
        lambda: Push(good_body(), push_headers(good_body(), timestamp=int(time.time()) + 400)),
        401,
        "unauthenticated",
    ),
    "timestamp-not-a-number": Case(
        lambda: signed(good_body(), **{"X-Callrec-Timestamp": "yesterday"}), 401, "unauthenticated"
    ),
    "signature-of-another-scheme": Case(
        lambda: signed(good_body(), **{"X-Callrec-Signature": "v0=" + "ab" * 32}),
        401,
        "unauthenticated",
    ),
    "unknown-source": Case(
        lambda: Push(good_body(), push_headers(good_body()), url="/webhooks/push/stranger"),
        401,
        "unauthenticated",
    ),
    "gzip-compressed-body": Case(
        lambda: signed(good_body(), **{"Content-Encoding": "gzip"}),
        415,
        "unsupported_media_type",
        "compressed",
    ),
    "content-type-not-ascii": Case(
        lambda: signed(good_body(), **{"Content-Type": "multipart/form-data; boundary=\u20ac"}),
        415,
        "unsupported_media_type",
    ),
    "body-full-of-false-boundaries": Case(
        lambda: signed(
            closed(META, AUDIO_PART[:200], (f"\r\n--{BOUNDARY}X" * 2000).encode(), b"\r\n")
        ),
        400,
        "malformed_body",
        "part boundaries",
    ),
    "unsigned-body-with-a-repeated-part": Case(
        lambda: Push(closed(META, META, AUDIO_PART), push_headers(good_body())),
        401,
        "unauthenticated",
    ),
    "unsigned-body-full-of-false-boundaries": Case(
        lambda: Push(
            closed(META, AUDIO_PART[:200], (f"\r\n--{BOUNDARY}X" * 2000).encode(), b"\r\n"),
            push_headers(good_body()),
        ),
        401,
        "unauthenticated",
    ),
    "unsigned-body-with-oversized-metadata": Case(
        lambda: Push(push_body(metadata(notes="x" * 70_000), AUDIO), push_headers(good_body())),
        401,
        "unauthenticated",
    ),
    # Framing.
    "json-instead-of-multipart": Case(
        lambda: signed(good_body(), **{"Content-Type": "application/json"}),
        415,
        "unsupported_media_type",
    ),
    "multipart-without-boundary": Case(
        lambda: signed(good_body(), **{"Content-Type": "multipart/form-data"}),
        415,
        "unsupported_media_type",
    ),
    "body-cut-before-closing-boundary": Case(
        lambda: signed(META + AUDIO_PART), 400, "malformed_body", "closing boundary"
    ),
    "body-over-the-size-limit": Case(
        lambda: signed(push_body(metadata(), make_wav(20))), 413, "payload_too_large"
    ),
    "chunked-body-over-the-size-limit": Case(
        lambda: Push(**{**signed(push_body(metadata(), make_wav(20))).__dict__, "chunked": True}),
        413,
        "payload_too_large",
    ),
    # Parts.
    "no-metadata-part": Case(lambda: signed(closed(AUDIO_PART)), 422, "invalid_metadata"),
    "no-audio-part": Case(lambda: signed(closed(META)), 422, "undecodable_audio"),
    "metadata-part-twice": Case(
        lambda: signed(closed(META, META, AUDIO_PART)), 422, "invalid_part", "more than once"
    ),
    "unexpected-part": Case(
        lambda: signed(closed(META, AUDIO_PART, part("script", b"x", content_type="text/plain"))),
        422,
        "invalid_part",
    ),
    "path-traversal-filename": Case(
        lambda: signed(push_body(metadata(), AUDIO, filename="../../etc/cron.d/x")),
        422,
        "invalid_part",
        "plain file name",
    ),
    "absolute-path-filename": Case(
        lambda: signed(push_body(metadata(), AUDIO, filename="/etc/passwd")), 422, "invalid_part"
    ),
    # Metadata.
    "metadata-not-json": Case(
        lambda: signed(push_body(b"recording_id=1", AUDIO)), 422, "invalid_metadata"
    ),
    "metadata-a-json-array": Case(
        lambda: signed(push_body(b"[1, 2]", AUDIO)), 422, "invalid_metadata", "object"
    ),
    "metadata-deeply-nested": Case(
        lambda: signed(push_body(b"[" * 20000 + b"]" * 20000, AUDIO)), 422, "invalid_metadata"
    ),
    "metadata-over-64-kib": Case(
        lambda: signed(push_body(metadata(notes="x" * 70_000), AUDIO)), 413, "payload_too_large"
    ),
    "missing-recording-id": Case(
        lambda: signed(push_body({"started_at": "2026-11-24T09:15:02Z"}, AUDIO)),
        422,
        "invalid_metadata",
        "recording_id",
    ),
    "missing-started-at": Case(
        lambda: signed(push_body({"recording_id": "abc"}, AUDIO)),
        422,
        "invalid_metadata",
        "started_at",
    ),
    "started-at-without-time-zone": Case(
        lambda: signed(good_body(started_at="2026-11-24T09:15:02", ended_at=None)),
        422,
        "invalid_metadata",
        "started_at",
    ),
    "started-at-not-a-time": Case(
        lambda: signed(good_body(started_at="last tuesday", ended_at=None)),
        422,
        "invalid_metadata",
    ),
    "started-at-in-the-future": Case(
        lambda: signed(
            good_body(
                started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400)),
                ended_at=None,
            )
        ),
        422,
        "invalid_metadata",
        "future",
    ),
    "ended-before-it-started": Case(
        lambda: signed(
            good_body(started_at="2026-11-24T09:15:02Z", ended_at="2026-11-24T09:00:00Z")
        ),
        422,
        "invalid_metadata",
        "before",
    ),
    "recording-id-with-control-characters": Case(
        lambda: signed(good_body(recording_id="abc\n\x00def")), 422, "invalid_metadata"
    ),
    "referral-that-names-a-path": Case(
        lambda: signed(good_body(referrals=["../../MASH-1"])), 422, "invalid_metadata"
    ),
    "nan-in-metadata": Case(
        lambda: signed(
            push_body(json.dumps(metadata()).replace("}", ', "score": NaN}').encode(), AUDIO)
        ),
        422,
        "invalid_metadata",
    ),
    "infinite-number-in-metadata": Case(
        lambda: signed(
            push_body(json.dumps(metadata()).replace("}", ', "score": 1e999}').encode(), AUDIO)
        ),
        422,
        "invalid_metadata",
    ),
    "started-at-as-a-number": Case(
        lambda: signed(good_body(started_at=1764000000, ended_at=None)),
        422,
        "invalid_metadata",
        "started_at",
    ),
    "started-at-in-year-one": Case(
        lambda: signed(good_body(started_at="0001-01-01T00:30:00+01:00", ended_at=None)),
        422,
        "invalid_metadata",
        "2000",
    ),
    "started-at-at-the-end-of-the-calendar": Case(
        lambda: signed(good_body(started_at="9999-12-31T23:59:59-01:00", ended_at=None)),
        422,
        "invalid_metadata",
        "2099",
    ),
    "ended-at-at-the-end-of-the-calendar": Case(
        lambda: signed(good_body(ended_at="9999-12-31T23:59:59-01:00")),
        422,
        "invalid_metadata",
        "2099",
    ),
    "unknown-direction": Case(
        lambda: signed(good_body(direction="sideways")), 422, "invalid_metadata", "direction"
    ),
    # Audio.
    "zero-byte-audio": Case(
        lambda: signed(push_body(metadata(), b"")), 422, "undecodable_audio", "empty"
    ),
    "text-instead-of-audio": Case(
        lambda: signed(push_body(metadata(), b"hello, this is not a recording\n" * 50)),
        422,
        "undecodable_audio",
    ),
    "random-bytes-instead-of-audio": Case(
        lambda: signed(push_body(metadata(), bytes(range(256)) * 40)), 422, "undecodable_audio"
    ),
    "wav-of-zero-bits-per-sample": Case(
        lambda: signed(push_body(metadata(), zero_bit_wav())),
        422,
        "undecodable_audio",
        "encoding",
    ),
    "wav-header-with-no-samples": Case(
        lambda: signed(push_body(metadata(), make_wav(1)[:44])), 422, "undecodable_audio"
    ),
}


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path / "var", database_url, max_upload_bytes=LIMIT) as running:
        yield running


async def send(service: RunningService, push: Push) -> tuple[int, dict[str, str]]:
    data: bytes | AsyncIterator[bytes] = push.body
    if push.chunked:

        async def stream() -> AsyncIterator[bytes]:
            for offset in range(0, len(push.body), 16384):
                yield push.body[offset : offset + 16384]

        data = stream()
    response = await service.client.post(push.url, data=data, headers=push.headers)
    assert response.content_type == "application/json"
    return response.status, await response.json()


@pytest.fixture(scope="module")
async def refusing_service(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> AsyncIterator[RunningService]:
    """One service for every refused push: each must leave it exactly as it found it."""
    data_dir = tmp_path_factory.mktemp("hostile") / "var"
    async with running_service(data_dir, module_database_url, max_upload_bytes=LIMIT) as running:
        yield running


@pytest.mark.parametrize("name", list(CASES))
async def test_a_bad_push_is_refused_with_a_json_error_and_stores_nothing(
    refusing_service: RunningService, name: str
) -> None:
    case = CASES[name]
    before = await refusing_service.counts()
    status, body = await send(refusing_service, case.build())
    assert (status, body.get("error")) == (case.status, case.error), body
    assert case.detail_mentions in body["detail"]
    after = await refusing_service.counts()
    assert {kind: after[kind] - before[kind] for kind in after} == case.stored


def test_the_table_covers_at_least_25_distinct_refusals() -> None:
    assert len(CASES) >= 25


async def test_the_service_keeps_serving_after_every_bad_push(service: RunningService) -> None:
    for case in CASES.values():
        await send(service, case.build())
    status, body = await send(service, signed(good_body()))
    assert status == 201, body
    assert (await service.counts())["recordings"] == 1


async def test_a_duplicate_delivery_is_answered_without_storing_again(
    service: RunningService,
) -> None:
    first_status, first = await send(service, signed(good_body()))
    second_status, second = await send(service, signed(good_body()))
    assert (first_status, second_status) == (201, 200)
    assert first == second
    assert await service.counts() == {
        "recordings": 1,
        "objects": KEYS_PER_RECORDING,
        "spool": 0,
        "audit": 1,
    }


async def test_503_with_retry_after_when_the_store_is_gone_and_nothing_stays(
    service: RunningService,
) -> None:
    objects = service.data_dir / "objects"
    objects.rename(objects.with_name("objects-gone"))
    objects.write_text("not a directory any more")
    response = await service.client.post(URL, data=good_body(), headers=signed(good_body()).headers)
    body = await response.json()
    assert (response.status, body["error"]) == (503, "unavailable")
    assert response.headers["Retry-After"].isdigit()
    objects.unlink()
    objects.with_name("objects-gone").rename(objects)
    assert await service.counts() == NOTHING


async def test_503_with_retry_after_when_the_database_is_unreachable(tmp_path: Path) -> None:
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:9/callrec"
    async with running_service(
        tmp_path / "var", unreachable, parts=keys_read_before_the_database_went()
    ) as service:
        response = await service.client.post(
            URL, data=good_body(), headers=signed(good_body()).headers
        )
        body = await response.json()
        assert (response.status, body["error"]) == (503, "unavailable")
        assert response.headers["Retry-After"].isdigit()
        assert [key async for key in service.services.objects.iter_keys(RECORDINGS_PREFIX)] == []
        assert list((tmp_path / "var" / "spool").rglob("*.spool")) == []


async def test_an_unknown_source_is_refused_in_the_same_words_as_a_bad_signature(
    service: RunningService,
) -> None:
    _, unknown = await send(service, CASES["unknown-source"].build())
    _, unsigned = await send(service, CASES["no-signature"].build())
    _, stale = await send(service, CASES["stale-timestamp"].build())
    _, wrong = await send(service, CASES["signed-with-another-secret"].build())
    assert unknown == unsigned == stale == wrong


@pytest.mark.parametrize(
    "filename",
    ["2026-11-24T09:15:02Z.wav", "_call.wav", "rec,1.wav", "call [1].wav", "Anruf-\u00e4.wav"],
)
async def test_ordinary_pbx_file_names_are_accepted(service: RunningService, filename: str) -> None:
    status, body = await send(
        service,
        signed(push_body(metadata(recording_id=filename.encode().hex()), AUDIO, filename=filename)),
    )
    assert status == 201, body


async def test_pushes_beyond_the_concurrency_limit_are_told_to_retry(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The newcomer waits this long for a slot before it is refused, while the first body
    # waits on it: well inside the first's grace before it counts as too slow, however
    # slowly a loaded machine runs the two.
    monkeypatch.setattr(recorder.capture, "PROOF_WAIT_S", 0.5)
    async with running_service(tmp_path / "var", database_url, max_concurrent_pushes=1) as service:
        gate = asyncio.Event()
        body = good_body()

        async def slow_body() -> AsyncIterator[bytes]:
            yield body[:100]
            await gate.wait()
            yield body[100:]

        # Pre-authenticated, the first holds its slot as a proven sender: a newcomer cannot
        # take it, however slowly its body comes (a crawling stranger's could be taken).
        headers = push_headers(body) | {"Content-Length": str(len(body))}
        when = int(headers["X-Callrec-Timestamp"])
        headers["X-Callrec-Preauth"] = sign_preauth(SECRET.encode(), when, len(body), "pbx")
        first = asyncio.create_task(service.client.post(URL, data=slow_body(), headers=headers))
        await asyncio.sleep(0.2)
        status, refused = await send(service, signed(good_body(recording_id="second")))
        gate.set()
        assert (await first).status == 201
    assert (status, refused["error"]) == (503, "busy")


async def test_a_sender_that_goes_quiet_is_timed_out(
    service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder.handlers, "BODY_IDLE_TIMEOUT_S", 0.3)
    body = good_body()

    async def stalled() -> AsyncIterator[bytes]:
        yield body[:100]
        await asyncio.sleep(5)  # longer than the idle timeout: the rest comes too late
        yield body[100:]

    response = await service.client.post(URL, data=stalled(), headers=push_headers(body))
    assert response.status == 408
    assert (await response.json())["error"] == "request_timeout"
    assert await service.counts() == NOTHING


def hang_ups(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [record for record in records if getattr(record, "error", "") == "sender_hung_up"]


async def test_a_sender_hanging_up_mid_upload_is_logged_at_info_and_stores_nothing(
    service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    body = good_body()
    headers = {**push_headers(body), "Host": "localhost", "Content-Length": str(len(body))}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    # Served as `callrec serve` serves it: aiohttp's test server cancels the handler of a
    # connection that drops, where a real server lets the handler see the reset.
    app = service.client.app
    assert app is not None
    listener = await asyncio.get_running_loop().create_server(
        app._make_handler(access_log=None), "127.0.0.1", 0
    )
    port = listener.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    caplog.set_level(logging.INFO)
    writer.write(f"POST {URL} HTTP/1.1\r\n{head}\r\n".encode() + body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(0.3)  # the capture is reading the body
    writer.transport.abort()  # the line drops: the rest of the body never comes
    for _ in range(100):
        if hang_ups(caplog.records):
            break
        await asyncio.sleep(0.05)
    assert [record.levelno for record in hang_ups(caplog.records)] == [logging.INFO]
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert await service.counts() == NOTHING
    listener.close()
