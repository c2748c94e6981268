"""A running service with two pushed calls, and the requests a playback test makes of it."""

from __future__ import annotations

import asyncio
import io
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage import PLAYBACK
from storage.db.models import AuditEvent, StoredObject
from tests.audio_factory import noisy_wav
from tests.fixtures_db import database_copy
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.service_support import RunningService, running_service

# Noise encodes at the full bit rate: a rendition of about 170 KB, three encrypted segments.
AUDIO = noisy_wav(45)
REASON = "weekly quality review of call handling"
WEBM = b"\x1a\x45\xdf\xa3"


@dataclass
class Room:
    service: RunningService
    recording_id: str
    other_team_id: str
    # What the playback URL must serve: the stored rendition, read behind the API.
    rendition: bytes = b""

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
        "/webhooks/push/pbx", data=io.BytesIO(body), headers=push_headers(body)
    )
    assert response.status == 201
    answer: dict[str, str] = await response.json()
    return answer["id"]


@asynccontextmanager
async def room_at(data_dir: Path, database_url: str) -> AsyncIterator[Room]:
    async with running_service(data_dir, database_url) as service:
        own = await push(service, "own", "mash-children", AUDIO)
        other = await push(service, "other", "mash-adults", make_wav(1))
        # Playback serves the rendition once made: the tests play what the room's people hear.
        await service.renditions_made()
        yield Room(service, own, other, await service.stored(own, PLAYBACK))


@dataclass(frozen=True)
class RoomTemplate:
    """A room's data directory and database as its pushes left them, with the service
    stopped: made once for a module, copied for each test that needs a room of its own."""

    data_dir: Path
    database_url: str
    recording_id: str
    other_team_id: str
    rendition: bytes


@asynccontextmanager
async def room_template(folder: Path, database_url: str) -> AsyncIterator[RoomTemplate]:
    """Push a room's two calls, once, through the real service; stop it; hand the result
    on to be copied (``room_from``). The database must be one no other service uses."""
    async with room_at(folder / "var", database_url) as made:
        recording_id, other_team_id = made.recording_id, made.other_team_id
        rendition = made.rendition
    yield RoomTemplate(folder / "var", database_url, recording_id, other_team_id, rendition)


@asynccontextmanager
async def room_from(template: RoomTemplate, folder: Path) -> AsyncIterator[Room]:
    """A room of its own, as ``room_at`` makes one, without pushing again: the service
    starts on copies of the template's data directory (store, keyring, spool) and
    database, so what a test changes or reads on the trail is its own."""
    data_dir = folder / "var"
    await asyncio.to_thread(shutil.copytree, template.data_dir, data_dir, symlinks=True)
    async with (
        database_copy(template.database_url, folder) as database_url,
        running_service(data_dir, database_url) as service,
    ):
        yield Room(service, template.recording_id, template.other_team_id, template.rendition)


async def granted_url(room: Room, token: str) -> str:
    status, body = await room.grant(token)
    assert status == 201, body
    url: str = body["audio_url"]
    return url


async def stored_object_path(room: Room, recording_id: str, kind: str) -> Path:
    """Where the filesystem store keeps one of a recording's objects, to damage it."""
    async with room.service.services.database.read() as session:
        key = (
            await session.execute(
                select(StoredObject.object_key).where(
                    StoredObject.recording_id == uuid.UUID(recording_id),
                    StoredObject.kind == kind,
                )
            )
        ).scalar_one()
    return room.service.data_dir / "objects" / key


def flip_byte(path: Path, offset: int) -> None:
    """Change one stored byte in place, as someone with write access to the store could."""
    with path.open("r+b") as stored:
        stored.seek(offset)
        value = stored.read(1)[0]
        stored.seek(offset)
        stored.write(bytes([value ^ 0x01]))
