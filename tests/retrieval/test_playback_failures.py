"""Playback when something is wrong: audio that fails its checks before or after its answer
began, an object rewritten behind an open one, and grants kept out of the request log.

Answers are read off a raw socket here: a client library would hide a second response
written into a body, or a body that never ends, which is exactly what must not happen.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import ORIGINAL, PLAYBACK
from storage.crypto.format import HEADER_LENGTH, SEGMENT_CIPHERTEXT, SEGMENT_PLAINTEXT
from tests.push_support import make_wav
from tests.retrieval.playback_support import (
    Room,
    RoomTemplate,
    flip_byte,
    granted_url,
    push,
    room_from,
    room_template,
    stored_object_path,
)

# Eighty seconds of 8 kHz PCM16: 1.28 MB, more than the first 1 MiB piece a stream sends.
LONG_CALL = make_wav(80)
# Offsets of the header's fields (storage.crypto.format.HEADER): magic, version, algorithm,
# ..., salt at 8, nonce prefix at 40, key commitment at 48.
HEADER_FIELDS = {"algorithm": 5, "salt": 8, "commitment": 48}
REPLY_WAIT_S = 10.0


@pytest.fixture(scope="module")
async def template(
    tmp_path_factory: pytest.TempPathFactory, template_database_url: str
) -> AsyncIterator[RoomTemplate]:
    """The room's calls, pushed and rendered once for the module on each database."""
    folder = tmp_path_factory.mktemp("failing-room")
    async with room_template(folder, template_database_url) as made:
        yield made


@pytest.fixture
async def room(tmp_path: Path, template: RoomTemplate) -> AsyncIterator[Room]:
    """A service of its own on copies of the template's store and database: each test
    damages what it plays."""
    async with room_from(template, tmp_path) as made:
        yield made


async def raw_get(room: Room, url: str, token: str, **headers: str) -> bytes:
    """Every byte the service sends for one GET, until it closes the connection."""
    server = room.service.client.server
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    reader, writer = await asyncio.open_connection(server.host, server.port)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {server.host}:{server.port}",
        f"Authorization: Bearer {token}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    try:
        # A body that is neither finished nor cut would leave this waiting: it must not.
        return await asyncio.wait_for(reader.read(), REPLY_WAIT_S)
    finally:
        writer.close()


def split_answer(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return status_line, {name.lower(): value for name, value in fields.items()}, body


async def test_a_range_whose_first_segment_is_altered_is_one_plain_500(room: Room) -> None:
    token = room.token()
    url = await granted_url(room, token)
    # The first segment's ciphertext, not the header: opening checks pass, reading fails.
    flip_byte(await stored_object_path(room, room.recording_id, PLAYBACK), HEADER_LENGTH + 10)
    raw = await raw_get(room, url, token, Range="bytes=0-99")
    status_line, _, body = split_answer(raw)
    assert status_line == "HTTP/1.1 500 Internal Server Error"
    assert raw.count(b"HTTP/1.1") == 1
    assert b'"integrity_failure"' in body
    (failure,) = await room.events("recording.integrity_failure")
    assert failure.details is not None
    assert (failure.details["start"], failure.details["sent"]) == (0, 0)


async def test_audio_that_fails_after_its_answer_began_is_cut_off_not_answered_twice(
    room: Room,
) -> None:
    room.recording_id = await push(room.service, "long", "mash-children", LONG_CALL)
    token = room.token("safety_reviewer")
    _, body = await room.grant(token, purpose="staff_safety")
    # The seventeenth segment: the first 1 MiB (16 segments) verifies and goes out.
    damaged = HEADER_LENGTH + 16 * SEGMENT_CIPHERTEXT + 10
    flip_byte(await stored_object_path(room, room.recording_id, ORIGINAL), damaged)

    raw = await raw_get(room, body["audio_url"] + "?variant=original", token)

    status_line, headers, audio = split_answer(raw)
    assert status_line == "HTTP/1.1 200 OK"
    assert raw.count(b"HTTP/1.1") == 1
    assert b"integrity_failure" not in raw
    assert int(headers["content-length"]) == len(LONG_CALL)
    # Cut short where verification stopped, and every byte sent is the real audio.
    assert len(audio) == 16 * SEGMENT_PLAINTEXT
    assert audio == LONG_CALL[: len(audio)]
    (failure,) = await room.events("recording.integrity_failure")
    assert failure.details is not None
    assert failure.details["sent"] == 16 * SEGMENT_PLAINTEXT


@pytest.mark.parametrize("field", sorted(HEADER_FIELDS))
async def test_a_header_altered_after_the_first_play_is_refused_at_the_next(
    room: Room, field: str
) -> None:
    token = room.token()
    url = await granted_url(room, token)
    first = await room.play(url, token, Range="bytes=0-99")
    assert (first.status, await first.read()) == (206, room.rendition[:100])
    path = await stored_object_path(room, room.recording_id, PLAYBACK)
    before = path.stat()
    flip_byte(path, HEADER_FIELDS[field])
    # Its times put back, as a careful intruder would: the change time still moves.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    again = await room.play(url, token, Range="bytes=0-99")

    assert again.status == 500
    assert (await again.json())["error"] == "integrity_failure"
    (failure,) = await room.events("recording.integrity_failure")
    assert failure.outcome == "error"


async def test_the_request_log_names_a_grant_by_a_digest_never_by_itself(
    room: Room, caplog: pytest.LogCaptureFixture
) -> None:
    token = room.token()
    url = await granted_url(room, token)
    grant = url.rsplit("/", 1)[1]
    with caplog.at_level(logging.INFO, logger="callrec"):
        played = await room.play(url, token, Range="bytes=0-9")
        await played.read()
        refused = await room.play(url, room.token(subject="sup-2"))
        await refused.read()
        # A path no route matches (a trailing slash) still carries the grant.
        stray = await room.play(url + "/", token)
        assert stray.status == 404
        await stray.read()
    paths = [record.__dict__["path"] for record in caplog.records if record.msg == "request"]
    assert len(paths) == 3
    assert all(path.startswith("/api/v1/play/sha256:") for path in paths)
    assert len(set(paths[:2])) == 1  # the same grant, the same digest
    assert paths[2] == paths[0] + "/"
    assert all(grant not in record.getMessage() for record in caplog.records)
    assert all(grant not in str(record.__dict__) for record in caplog.records)
