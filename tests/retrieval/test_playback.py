"""Grants and playback: purpose-bound links, exact Range semantics, audit before serve."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from recorder.formats import CONTENT_TYPES
from retrieval.playback import file_extension
from storage import PLAYBACK, DatabaseUnavailable
from storage.db.models import StoredObject
from tests.push_support import make_wav
from tests.retrieval.playback_support import (
    AUDIO,
    REASON,
    WEBM,
    Room,
    RoomTemplate,
    granted_url,
    push,
    room_at,
    room_from,
    room_template,
)
from tests.service_support import running_service

pytestmark = pytest.mark.long


@pytest.fixture(scope="module")
async def template(
    tmp_path_factory: pytest.TempPathFactory, template_database_url: str
) -> AsyncIterator[RoomTemplate]:
    """The room's calls, pushed and rendered once for the module on each database."""
    folder = tmp_path_factory.mktemp("playback-room")
    async with room_template(folder, template_database_url) as made:
        yield made


@pytest.fixture
async def room(tmp_path: Path, template: RoomTemplate) -> AsyncIterator[Room]:
    """A service of its own, for a test that looks at the trail or changes what is stored:
    started on copies of the template's store and database."""
    async with room_from(template, tmp_path) as made:
        yield made


@pytest.fixture(scope="module")
async def shared_room(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> AsyncIterator[Room]:
    """One service for the tests that only ask for grants and ranges and check the answers."""
    async with room_at(tmp_path_factory.mktemp("playback") / "var", module_database_url) as made:
        yield made


async def test_a_grant_is_audited_with_its_reason_and_plays_the_recording(room: Room) -> None:
    token = room.token()
    status, body = await room.grant(token)
    assert status == 201
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    (grant,) = await room.events("recording.grant")
    assert grant.details is not None
    assert (grant.purpose, grant.details["reason"]) == ("quality_review", REASON)
    assert await room.events("recording.play") == []

    response = await room.play(body["audio_url"], token)
    assert response.status == 200
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "audio/webm"
    assert response.headers["Cache-Control"] == "no-store"
    served = await response.read()
    assert served == room.rendition
    assert served.startswith(WEBM)
    (opened,) = await room.events("recording.play_open")
    assert opened.details == {"grant": grant.details["grant"]}


async def test_what_was_heard_is_written_as_merged_ranges_and_seconds(room: Room) -> None:
    token = room.token()
    url = await granted_url(room, token)
    size = len(room.rendition)
    for header in ("bytes=0-63999", "bytes=64000-127999", "bytes=140000-140099"):
        await (await room.play(url, token, Range=header)).read()
    assert await room.events("recording.played") == []  # written when the session goes quiet
    await room.service.services.journal.flush(idle_only=False)
    (session,) = await room.events("recording.played")
    assert session.details is not None
    assert session.details["ranges"] == [[0, 128000], [140000, 140100]]
    # Seconds in proportion to bytes: close for a rendition of nearly constant bit rate.
    assert session.details["seconds"] == [
        [0.0, round(128000 / size * 45, 2)],
        [round(140000 / size * 45, 2), round(140100 / size * 45, 2)],
    ]
    assert session.details["requests"] == 3
    assert len(await room.events("recording.play_open")) == 1


async def test_listening_sessions_still_open_are_written_when_the_service_stops(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        room = Room(service, await push(service, "own", "mash-children", AUDIO), "")
        token = room.token()
        url = await granted_url(room, token)
        await (await room.play(url, token, Range="bytes=0-999")).read()
        assert await room.events("recording.played") == []
    async with running_service(tmp_path / "var", database_url) as service:
        (session,) = await Room(service, "", "").events("recording.played")
        assert session.details is not None
        assert session.details["ranges"] == [[0, 1000]]


def _at(offset: int) -> Callable[[int], int]:
    return lambda _size: offset


def _from_end(back: int) -> Callable[[int], int]:
    return lambda size: size - back


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", _at(0), _at(1)),
        ("bytes=0-99", _at(0), _at(100)),
        ("bytes={last}-", _from_end(1), _from_end(0)),
        ("bytes=-500", _from_end(500), _from_end(0)),
        ("bytes=65530-65545", _at(65530), _at(65546)),  # across a segment boundary
        ("bytes=100000-", _at(100000), _from_end(0)),
        ("bytes=140000-{over}", _at(140000), _from_end(0)),
        ("bytes=-{over}", _at(0), _from_end(0)),
    ],
    ids=["first", "hundred", "last", "suffix", "boundary", "open", "overlong", "whole-suffix"],
)
async def test_single_ranges_are_exact(
    shared_room: Room, header: str, start: Callable[[int], int], end: Callable[[int], int]
) -> None:
    size = len(shared_room.rendition)
    assert size > 2 * 65536, "the rendition must span several encrypted segments"
    sizes = {"size": size, "last": size - 1, "over": size + 5000}
    first, stop = start(size), end(size)
    token = shared_room.token()
    response = await shared_room.play(
        await granted_url(shared_room, token), token, Range=header.format(**sizes)
    )
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes {first}-{stop - 1}/{size}"
    assert int(response.headers["Content-Length"]) == stop - first
    assert await response.read() == shared_room.rendition[first:stop]


async def test_random_ranges_equal_the_same_slice_of_the_audio(shared_room: Room) -> None:
    token = shared_room.token()
    url = await granted_url(shared_room, token)
    chooser = random.Random(20261125)
    size = len(shared_room.rendition)
    for _ in range(40):
        start = chooser.randrange(size)
        end = chooser.randrange(start, size)
        response = await shared_room.play(url, token, Range=f"bytes={start}-{end}")
        assert await response.read() == shared_room.rendition[start : end + 1]


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes=-0", "bytes={over}-"])
async def test_a_range_past_the_end_is_416(shared_room: Room, header: str) -> None:
    size = len(shared_room.rendition)
    token = shared_room.token()
    asked = header.format(size=size, over=size + 9)
    response = await shared_room.play(await granted_url(shared_room, token), token, Range=asked)
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert (await response.json())["error"] == "range_not_satisfiable"


async def test_several_ranges_get_the_whole_recording_and_a_flood_of_them_is_refused(
    shared_room: Room,
) -> None:
    token = shared_room.token()
    url = await granted_url(shared_room, token)
    several = await shared_room.play(url, token, Range="bytes=0-9,100-199")
    assert (several.status, await several.read()) == (200, shared_room.rendition)
    flood = ",".join(f"{n}-{n}" for n in range(0, 200, 2))
    refused = await shared_room.play(url, token, Range=f"bytes={flood}")
    assert refused.status == 416


async def test_if_range_and_head(shared_room: Room) -> None:
    token = shared_room.token()
    url = await granted_url(shared_room, token)
    head = await shared_room.play(url, token, method="HEAD", Range="bytes=0-9")
    etag = head.headers["ETag"]
    assert (head.status, head.headers["Content-Length"], await head.read()) == (206, "10", b"")
    same = await shared_room.play(url, token, Range="bytes=0-9", **{"If-Range": etag})
    assert (same.status, await same.read()) == (206, shared_room.rendition[:10])
    changed = await shared_room.play(url, token, Range="bytes=0-9", **{"If-Range": '"elsewhere"'})
    assert (changed.status, await changed.read()) == (200, shared_room.rendition)


async def test_every_playback_answer_carries_its_request_id(shared_room: Room) -> None:
    # Audio is streamed: its headers leave before the request middleware sees the answer.
    token = shared_room.token()
    url = await granted_url(shared_room, token)
    whole = await shared_room.play(url, token, **{"X-Request-Id": "trace-0001-play"})
    assert (whole.status, whole.headers.get("X-Request-Id")) == (200, "trace-0001-play")
    await whole.read()
    part = await shared_room.play(url, token, Range="bytes=0-9")
    assert part.status == 206
    assert re.fullmatch(r"[0-9a-f]{32}", part.headers.get("X-Request-Id", ""))
    head = await shared_room.play(url, token, method="HEAD")
    assert head.headers.get("X-Request-Id")


@pytest.mark.parametrize(
    ("role", "purpose", "status"),
    [
        ("supervisor", "staff_safety", 403),
        ("supervisor", "subject_access", 403),
        ("safety_reviewer", "staff_safety", 201),
        ("safety_reviewer", "quality_review", 403),
        ("dpo", "subject_access", 201),
        ("retention_operator", "quality_review", 403),
        ("auditor", "subject_access", 403),
        ("admin", "staff_safety", 403),
        ("supervisor", "entertainment", 403),
    ],
)
async def test_each_role_may_ask_only_for_its_own_purpose(
    shared_room: Room, role: str, purpose: str, status: int
) -> None:
    answer_status, body = await shared_room.grant(shared_room.token(role), purpose=purpose)
    assert answer_status == status, body
    assert ("audio_url" in body) == (status == 201)


async def test_a_supervisor_cannot_get_a_grant_for_another_teams_recording(room: Room) -> None:
    status, body = await room.grant(room.token(), recording_id=room.other_team_id)
    assert (status, body["error"]) == (404, "not_found")
    (denied,) = await room.events("recording.grant")
    assert (denied.outcome, denied.details) == ("deny", {"reason": "team"})


@pytest.mark.parametrize(
    "reason", [None, "", "   ", "test", "n/a", "x" * 40, "ok ok ok ok ok", "aaaa bbbb", "x" * 501]
)
async def test_an_empty_or_trivial_reason_is_refused(room: Room, reason: str | None) -> None:
    status, body = await room.grant(room.token(), reason=reason)
    assert (status, body["error"]) == (422, "invalid_request")
    assert await room.events("recording.grant") == []


async def test_a_grant_is_useless_to_another_person_and_when_tampered(room: Room) -> None:
    url = await granted_url(room, room.token(subject="sup-1"))
    other = await room.play(url, room.token(subject="sup-2"))
    assert other.status == 403
    head = url.rpartition("/")[2].partition(".")[0]
    flipped = ("A" if head[5] != "A" else "B").join([head[:5], head[6:]])
    tampered = await room.play(url.replace(head, flipped), room.token(subject="sup-1"))
    assert tampered.status == 403
    refused = await other.read() + await tampered.read()
    assert b"RIFF" not in refused
    assert WEBM not in refused
    reasons = [(event.details or {})["reason"] for event in await room.events("recording.play")]
    assert reasons == ["another_person", "invalid_grant"]


async def test_an_expired_grant_is_refused(tmp_path: Path, database_url: str) -> None:
    async with running_service(
        tmp_path / "var", database_url, grant_lifetime=timedelta(seconds=1)
    ) as service:
        room = Room(service, await push(service, "own", "mash-children", make_wav(1)), "")
        token = room.token()
        url = await granted_url(room, token)
        await asyncio.sleep(1.2)
        response = await room.play(url, token)
        assert response.status == 403
        assert "expired" in (await response.json())["detail"]


async def test_nothing_is_served_when_the_audit_trail_cannot_be_written(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = room.token()
    url = await granted_url(room, token)

    async def unavailable(_record: object) -> None:
        raise DatabaseUnavailable("down")

    monkeypatch.setattr(room.service.services.audit_log, "record", unavailable)
    response = await room.play(url, token)
    assert response.status == 503
    body = await response.read()
    assert b"RIFF" not in body
    assert WEBM not in body


@pytest.mark.parametrize("damage", ["flip-last-byte", "truncate-last-segment", "remove"])
async def test_a_damaged_object_never_plays(room: Room, damage: str) -> None:
    token = room.token()
    url = await granted_url(room, token)
    async with room.service.services.database.read() as session:
        key = (
            await session.execute(
                select(StoredObject.object_key).where(
                    StoredObject.recording_id == uuid.UUID(room.recording_id),
                    StoredObject.kind == PLAYBACK,
                )
            )
        ).scalar_one()
    path = room.service.data_dir / "objects" / key
    data = bytearray(path.read_bytes())
    path.unlink()
    if damage == "flip-last-byte":
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    elif damage == "truncate-last-segment":
        whole_segments = (len(data) - 80) // 65552
        path.write_bytes(bytes(data[: 80 + 65552 * whole_segments]))
    # A range at the very start would decrypt fine from a truncated object: it must not.
    response = await room.play(url, token, Range="bytes=0-99")
    assert response.status == 500
    assert (await response.json())["error"] == "integrity_failure"
    (failure,) = await room.events("recording.integrity_failure")
    assert failure.outcome == "error"


@pytest.mark.s3
async def test_ranges_play_from_the_s3_backend(
    tmp_path: Path,
    database_url: str,
    s3_endpoint: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    async with running_service(
        tmp_path / "var", database_url, store_url=f"s3://{s3_bucket}/hub"
    ) as service:
        own = await push(service, "own", "mash-children", AUDIO)
        room = Room(service, own, "", await service.stored(own, PLAYBACK))
        token = room.token()
        url = await granted_url(room, token)
        response = await room.play(url, token, Range="bytes=131000-131100")
        assert response.status == 206
        assert await response.read() == room.rendition[131000:131101]


@pytest.mark.parametrize(
    ("role", "purpose", "status"),
    [
        ("safety_reviewer", "staff_safety", 200),
        ("dpo", "subject_access", 200),
        ("supervisor", "quality_review", 403),
    ],
)
async def test_downloading_the_original_is_separate_and_separately_audited(
    room: Room, role: str, purpose: str, status: int
) -> None:
    token = room.token(role)
    _, body = await room.grant(token, purpose=purpose)
    response = await room.play(body["audio_url"] + "?variant=original", token)
    assert response.status == status
    downloads = await room.events("recording.download")
    if status == 200:
        assert await response.read() == AUDIO
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert [event.outcome for event in downloads] == ["allow"]
    else:
        assert [event.outcome for event in downloads] == ["deny"]
    assert await room.events("recording.play") == []


@pytest.mark.parametrize(
    ("container", "extension"),
    [
        ("wav", "wav"),
        ("mp3", "mp3"),
        ("ogg", "ogg"),
        ("flac", "flac"),
        ("matroska", "webm"),
        ("mp4", "m4a"),
        ("au", "au"),
    ],
)
def test_an_original_downloads_with_its_formats_usual_extension(
    container: str, extension: str
) -> None:
    # Every media type capture stores an original as, named as people and players expect.
    assert file_extension(CONTENT_TYPES[container]) == extension


def test_an_unknown_media_type_downloads_as_bin() -> None:
    assert file_extension("application/x-something") == "bin"
