"""``GET /api/v1/audit``: the trail for auditors and the DPO, filtered, paged, itself audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.service_support import RunningService, running_service

REASON = "weekly quality review of call handling"


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path / "var", database_url) as running:
        yield running


async def audit(service: RunningService, token: str, **params: str) -> tuple[int, dict[str, Any]]:
    response = await service.client.get(
        "/api/v1/audit", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, await response.json()


async def test_an_auditor_sees_a_recordings_grant_and_filters_by_actor_and_action(
    service: RunningService,
) -> None:
    recording = await service.push_call("call-1", datetime.now(UTC) - timedelta(hours=1))
    other = await service.push_call("call-2", datetime.now(UTC) - timedelta(hours=2))
    supervisor = service.token("supervisor", "mash-children", subject="sup-1")
    granted = await service.client.post(
        f"/api/v1/recordings/{recording}/grants",
        json={"purpose": "quality_review", "reason": REASON},
        headers={"Authorization": f"Bearer {supervisor}"},
    )
    assert granted.status == 201
    auditor = service.token("auditor", subject="aud-1")

    status, body = await audit(service, auditor, recording=str(recording))
    assert status == 200
    actions = [event["action"] for event in body["events"]]
    assert actions == ["recording.captured", "recording.grant"]
    grant = body["events"][1]
    assert grant["actor"] == "callrec-dev|sup-1"
    assert grant["purpose"] == "quality_review"
    assert grant["details"]["reason"] == REASON
    assert all(event["recording_id"] == str(recording) for event in body["events"])
    assert str(other) not in str(body)

    status, body = await audit(
        service, auditor, actor="callrec-dev|sup-1", action="recording.grant"
    )
    assert status == 200
    assert [event["recording_id"] for event in body["events"]] == [str(recording)]


async def test_pages_follow_the_sequence_and_reading_is_itself_on_the_record(
    service: RunningService,
) -> None:
    for n in range(5):
        await service.push_call(f"call-{n}", datetime.now(UTC) - timedelta(hours=n + 1))
    dpo = service.token("dpo", subject="dpo-1")
    seen: list[int] = []
    after = "0"
    while True:
        status, body = await audit(
            service, dpo, action="recording.captured", limit="2", after=after
        )
        assert status == 200
        seen += [event["seq"] for event in body["events"]]
        if body["next_after"] is None:
            break
        after = str(body["next_after"])
    assert len(seen) == 5
    assert seen == sorted(seen)
    status, body = await audit(service, dpo, action="audit.read")
    reads = body["events"]
    assert len(reads) == 3  # one per page read above
    assert {event["actor"] for event in reads} == {"callrec-dev|dpo-1"}


async def test_newest_first_pages_back_through_the_same_events(service: RunningService) -> None:
    for n in range(5):
        await service.push_call(f"call-{n}", datetime.now(UTC) - timedelta(hours=n + 1))
    dpo = service.token("dpo", subject="dpo-1")
    _, oldest_first = await audit(service, dpo, action="recording.captured")
    seen: list[int] = []
    cursor: dict[str, str] = {}
    while True:
        status, body = await audit(
            service, dpo, action="recording.captured", order="newest", limit="2", **cursor
        )
        assert status == 200
        assert body["next_after"] is None
        seen += [event["seq"] for event in body["events"]]
        if body["next_before"] is None:
            break
        cursor = {"before": str(body["next_before"])}
    assert seen == [event["seq"] for event in reversed(oldest_first["events"])]
    assert len(seen) == 5
    assert oldest_first["next_before"] is None


@pytest.mark.parametrize("role", ["supervisor", "safety_reviewer", "retention_operator", "admin"])
async def test_other_roles_are_refused_and_the_refusal_is_recorded(
    service: RunningService, role: str
) -> None:
    status, body = await audit(service, service.token(role, "mash-children", subject="x-1"))
    assert status == 403
    assert body["error"] == "forbidden"
    status, body = await audit(service, service.token("auditor"), action="audit.read")
    assert [(e["actor"], e["outcome"]) for e in body["events"]] == [("callrec-dev|x-1", "deny")]


@pytest.mark.parametrize(
    "params",
    [
        {"recording": "not-a-uuid"},
        {"after": "-1"},
        {"after": "1e9"},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "\u00b2"},
        {"after": "9" * 5000},
        {"action": "DROP TABLE"},
        {"actor": "x" * 201},
        {"colour": "blue"},
        {"order": "random"},
        {"before": "0"},
    ],
)
async def test_malformed_filters_are_a_clear_400(
    service: RunningService, params: dict[str, str]
) -> None:
    status, body = await audit(service, service.token("auditor"), **params)
    assert status == 400
    assert body["error"] == "bad_request"


async def test_without_a_token_the_trail_is_a_401(service: RunningService) -> None:
    response = await service.client.get("/api/v1/audit")
    assert response.status == 401
