"""Grants and playback: purpose-bound links, exact Range semantics, audit before serve."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from storage import DatabaseUnavailable
from storage.models import AuditEvent, StoredObject
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.service_support import RunningService, running_service

AUDIO = make_wav(12, rate=16000)  # 384 KB: six encrypted segments
REASON = "weekly quality review of call handling"


@dataclass
class Room:
    service: RunningService
    recording_id: str
    other_team_id: str

    def token(
        self, role: str = "supervisor", subject: str = "sup-1", team: str = "mash-children"
    ) -> str:
        return self.service.token(role, team, subject=subject)

    async def grant(
        self, token: str, recording_id: str | None = None, **body: Any
    ) -> tuple[int, dict[str, Any]]:
        payload = {"purpose": "quality_review", "reason": REASON} | body
        response = await self.service.client.post(
            f"/api/v1/recordings/{recording_id or self.recording_id}/grants",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.status, await response.json()

    async def play(self, url: str, token: str, method: str = "GET", **headers: str) -> Any:
        path = url.split("://", 1)[1].split("/", 1)[1]
        return await self.service.client.request(
            method, f"/{path}", headers={"Authorization": f"Bearer {token}", **headers}
        )

    async def events(self, action: str) -> list[AuditEvent]:
        async with self.service.services.database.read() as session:
            found = await session.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
            return list(found.scalars())


async def push(service: RunningService, source_id: str, team: str, audio: bytes) -> str:
    body = push_body(metadata(recording_id=source_id, team=team), audio)
    response = await service.client.post(
        "/webhooks/push/pbx", data=body, headers=push_headers(body)
    )
    assert response.status == 201
    answer: dict[str, str] = await response.json()
    return answer["id"]


@pytest.fixture
async def room(tmp_path: Path, database_url: str) -> AsyncIterator[Room]:
    async with running_service(tmp_path / "var", database_url) as service:
        own = await push(service, "own", "mash-children", AUDIO)
        other = await push(service, "other", "mash-adults", make_wav(1))
        yield Room(service, own, other)


async def granted_url(room: Room, token: str) -> str:
    status, body = await room.grant(token)
    assert status == 201, body
    url: str = body["audio_url"]
    return url


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
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.read() == AUDIO
    (opened,) = await room.events("recording.play_open")
    assert opened.details == {"grant": grant.details["grant"]}


async def test_what_was_heard_is_written_as_merged_ranges_and_seconds(room: Room) -> None:
    token = room.token()
    url = await granted_url(room, token)
    for header in ("bytes=0-63999", "bytes=64000-127999", "bytes=300000-300099"):
        await (await room.play(url, token, Range=header)).read()
    assert await room.events("recording.played") == []  # written when the session goes quiet
    await room.service.services.journal.flush(idle_only=False)
    (session,) = await room.events("recording.played")
    assert session.details is not None
    assert session.details["ranges"] == [[0, 128000], [300000, 300100]]
    assert session.details["seconds"] == [[0.0, 4.0], [9.37, 9.38]]
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


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=0-99", 0, 100),
        (f"bytes={len(AUDIO) - 1}-", len(AUDIO) - 1, len(AUDIO)),
        ("bytes=-500", len(AUDIO) - 500, len(AUDIO)),
        ("bytes=65530-65545", 65530, 65546),  # across a segment boundary
        ("bytes=100000-", 100000, len(AUDIO)),
        (f"bytes=200000-{len(AUDIO) + 5000}", 200000, len(AUDIO)),
        (f"bytes=-{len(AUDIO) + 10}", 0, len(AUDIO)),
    ],
)
async def test_single_ranges_are_exact(room: Room, header: str, start: int, end: int) -> None:
    token = room.token()
    response = await room.play(await granted_url(room, token), token, Range=header)
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(AUDIO)}"
    assert int(response.headers["Content-Length"]) == end - start
    assert await response.read() == AUDIO[start:end]


async def test_random_ranges_equal_the_same_slice_of_the_audio(room: Room) -> None:
    token = room.token()
    url = await granted_url(room, token)
    chooser = random.Random(20261125)
    for _ in range(40):
        start = chooser.randrange(len(AUDIO))
        end = chooser.randrange(start, len(AUDIO))
        response = await room.play(url, token, Range=f"bytes={start}-{end}")
        assert await response.read() == AUDIO[start : end + 1]


@pytest.mark.parametrize("header", [f"bytes={len(AUDIO)}-", "bytes=-0", f"bytes={len(AUDIO) + 9}-"])
async def test_a_range_past_the_end_is_416(room: Room, header: str) -> None:
    token = room.token()
    response = await room.play(await granted_url(room, token), token, Range=header)
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{len(AUDIO)}"
    assert (await response.json())["error"] == "range_not_satisfiable"


async def test_several_ranges_get_the_whole_recording_and_a_flood_of_them_is_refused(
    room: Room,
) -> None:
    token = room.token()
    url = await granted_url(room, token)
    several = await room.play(url, token, Range="bytes=0-9,100-199")
    assert (several.status, await several.read()) == (200, AUDIO)
    flood = ",".join(f"{n}-{n}" for n in range(0, 200, 2))
    refused = await room.play(url, token, Range=f"bytes={flood}")
    assert refused.status == 416


async def test_if_range_and_head(room: Room) -> None:
    token = room.token()
    url = await granted_url(room, token)
    head = await room.play(url, token, method="HEAD", Range="bytes=0-9")
    etag = head.headers["ETag"]
    assert (head.status, head.headers["Content-Length"], await head.read()) == (206, "10", b"")
    same = await room.play(url, token, Range="bytes=0-9", **{"If-Range": etag})
    assert (same.status, await same.read()) == (206, AUDIO[:10])
    changed = await room.play(url, token, Range="bytes=0-9", **{"If-Range": '"elsewhere"'})
    assert (changed.status, await changed.read()) == (200, AUDIO)


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
    room: Room, role: str, purpose: str, status: int
) -> None:
    answer_status, body = await room.grant(room.token(role), purpose=purpose)
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
    assert b"RIFF" not in await other.read() + await tampered.read()
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
    assert b"RIFF" not in await response.read()


@pytest.mark.parametrize("damage", ["flip-last-byte", "truncate-last-segment", "remove"])
async def test_a_damaged_object_never_plays(room: Room, damage: str) -> None:
    token = room.token()
    url = await granted_url(room, token)
    async with room.service.services.database.read() as session:
        key = (
            await session.execute(
                select(StoredObject.object_key).where(
                    StoredObject.recording_id == uuid.UUID(room.recording_id)
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
        path.write_bytes(bytes(data[: 80 + 65552 * 5]))
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
        room = Room(service, await push(service, "own", "mash-children", AUDIO), "")
        token = room.token()
        url = await granted_url(room, token)
        response = await room.play(url, token, Range="bytes=131000-131100")
        assert response.status == 206
        assert await response.read() == AUDIO[131000:131101]


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
