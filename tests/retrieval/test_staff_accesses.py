"""``GET /api/v1/me/accesses``: a call handler sees who replayed or downloaded their own
calls, for which purpose, and nothing of anyone else's calls, numbers or audio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.retrieval.document_support import assert_documented
from tests.service_support import RunningService, running_service

REASON = "weekly quality review of call handling"
ACCESSES = "/api/v1/me/accesses"
FIELDS = {"occurred_at", "actor", "kind", "purpose", "recording_id", "call_started_at"}


@dataclass
class Hub:
    service: RunningService
    mine: str
    theirs: str


@pytest.fixture
async def hub(tmp_path: Path, database_url: str) -> AsyncIterator[Hub]:
    """Two calls taken by two agents; a supervisor replays both, a safety reviewer
    downloads the first."""
    async with running_service(tmp_path / "var", database_url) as service:
        ids = []
        for source_id, agent in (("call-mine", "staff-0421"), ("call-theirs", "staff-0999")):
            body = push_body(metadata(recording_id=source_id, agent=agent), make_wav(1))
            pushed = await service.client.post(
                "/webhooks/push/pbx", data=body, headers=push_headers(body)
            )
            assert pushed.status == 201, await pushed.text()
            ids.append((await pushed.json())["id"])
        await service.renditions_made()
        mine, theirs = ids
        supervisor = service.token("supervisor", "mash-children", subject="sup-1")
        for recording in (mine, theirs):
            await hear(service, supervisor, recording, "quality_review")
        reviewer = service.token("safety_reviewer", subject="rev-1")
        await hear(service, reviewer, mine, "staff_safety", download=True)
        yield Hub(service, mine, theirs)


async def hear(
    service: RunningService, token: str, recording: str, purpose: str, download: bool = False
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    granted = await service.client.post(
        f"/api/v1/recordings/{recording}/grants",
        json={"purpose": purpose, "reason": REASON},
        headers=headers,
    )
    assert granted.status == 201, await granted.text()
    path = "/" + (await granted.json())["audio_url"].split("/", 3)[3]
    played = await service.client.get(
        path, params={"variant": "original"} if download else {}, headers=headers
    )
    assert played.status == 200
    await played.read()


async def accesses(
    service: RunningService, token: str, **params: str
) -> tuple[int, dict[str, Any], bytes]:
    response = await service.client.get(
        ACCESSES, params=params, headers={"Authorization": f"Bearer {token}"}
    )
    raw = await response.read()
    assert_documented("GET", ACCESSES, response.status, response.content_type, raw)
    return response.status, await response.json(), raw


async def test_a_call_handler_sees_exactly_the_accesses_to_their_own_calls(hub: Hub) -> None:
    service = hub.service
    status, body, raw = await accesses(service, service.token("staff", subject="staff-0421"))
    assert status == 200
    assert body["next_cursor"] is None
    shown = [
        (access["actor"], access["kind"], access["purpose"], access["recording_id"])
        for access in body["accesses"]
    ]
    # Newest first: the download came after the supervisor's replay.
    assert shown == [
        ("callrec-dev|rev-1", "downloaded", "staff_safety", hub.mine),
        ("callrec-dev|sup-1", "replayed", "quality_review", hub.mine),
    ]
    assert all(set(access) == FIELDS for access in body["accesses"])
    assert hub.theirs.encode() not in raw

    status, body, raw = await accesses(service, service.token("staff", subject="staff-0999"))
    assert status == 200
    assert [(a["actor"], a["recording_id"]) for a in body["accesses"]] == [
        ("callrec-dev|sup-1", hub.theirs)
    ]
    assert hub.mine.encode() not in raw


async def test_the_list_carries_no_numbers_referrals_reasons_or_audio_links(hub: Hub) -> None:
    service = hub.service
    status, _body, raw = await accesses(service, service.token("staff", subject="staff-0421"))
    assert status == 200
    for leak in (b"+44", b"441384", b"MASH-", b"/play/", b"audio_url", REASON.encode(), b"RIFF"):
        assert leak not in raw, leak


async def test_pages_go_back_in_time_with_the_cursor(hub: Hub) -> None:
    service = hub.service
    token = service.token("staff", subject="staff-0421")
    status, first, _ = await accesses(service, token, limit="1")
    assert status == 200
    assert [a["kind"] for a in first["accesses"]] == ["downloaded"]
    status, second, _ = await accesses(service, token, limit="1", cursor=first["next_cursor"])
    assert [a["kind"] for a in second["accesses"]] == ["replayed"]
    assert second["next_cursor"] is None
    status, _, _ = await accesses(service, token, cursor="not-a-cursor")
    assert status == 400


async def test_other_roles_are_refused_and_every_read_is_on_the_record(hub: Hub) -> None:
    service = hub.service
    await accesses(service, service.token("staff", subject="staff-0421"))
    for role in ("supervisor", "auditor", "dpo"):
        status, body, _ = await accesses(service, service.token(role, "mash-children"))
        assert (status, body["error"]) == (403, "forbidden"), role
    response = await service.client.get(
        "/api/v1/audit",
        params={"action": "audit.read", "actor": "callrec-dev|staff-0421"},
        headers={"Authorization": f"Bearer {service.token('auditor', subject='aud-1')}"},
    )
    events = (await response.json())["events"]
    assert [(e["outcome"], e["details"]["scope"], e["details"]["results"]) for e in events] == [
        ("allow", "own_calls", 2)
    ]
