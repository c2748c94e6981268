"""Calls without a referral: a team's supervisors list their calls still linked to no
referral CALLREC_UNLINKED_REVIEW_AFTER after they started, link them or mark them as needing
none (audited); the retention status, the command line and a metric count what waits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from storage.db.models import AuditEvent, RecordingNoReferral
from tests.cli_support import invoke
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.retrieval.document_support import assert_documented
from tests.service_support import RunningService, running_service

UNLINKED = "/api/v1/unlinked-recordings"
REASON = "caller dialled the wrong number by mistake"
CHILDREN, ADULTS = "mash-children", "mash-adults"
FIELDS = {"id", "started_at", "ended_at", "team", "agent", "duration_s", "retention_deadline"}


@dataclass
class Hub:
    service: RunningService
    ids: dict[str, str]

    def supervisor(self, *teams: str, subject: str = "sup-1") -> str:
        return self.service.token("supervisor", *teams, subject=subject)


async def push(
    service: RunningService, name: str, ago: timedelta, team: str, referrals: list[str]
) -> str:
    """A one-second call of ``team`` that started ``ago``, linked to ``referrals``."""
    started = time.gmtime(time.time() - ago.total_seconds())
    meta = metadata(
        recording_id=name,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
        ended_at=None,
        team=team,
        referrals=referrals,
    )
    body = push_body(meta, make_wav(1))
    response = await service.client.post(
        "/webhooks/push/pbx", data=body, headers=push_headers(body)
    )
    assert response.status == 201, await response.text()
    recording_id: str = (await response.json())["id"]
    return recording_id


@pytest.fixture
async def hub(tmp_path: Path, database_url: str) -> AsyncIterator[Hub]:
    """Calls of two teams: some past the review delay without a referral, one past it with
    a referral, one too recent to list."""
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        days = timedelta(days=1)
        calls = {
            "oldest": (10 * days, CHILDREN, []),
            "older": (8 * days, CHILDREN, []),
            "recent": (timedelta(hours=1), CHILDREN, []),
            "linked": (9 * days, CHILDREN, ["MASH-2026-004211"]),
            "adults": (9 * days, ADULTS, []),
        }
        ids = {
            name: await push(service, name, ago, team, referrals)
            for name, (ago, team, referrals) in calls.items()
        }
        yield Hub(service, ids)


async def ask(
    hub: Hub, method: str, path: str, token: str, **options: Any
) -> tuple[int, dict[str, Any], bytes]:
    """One request, its answer checked against the OpenAPI document."""
    response = await hub.service.client.request(
        method, path, headers={"Authorization": f"Bearer {token}"}, **options
    )
    raw = await response.read()
    assert_documented(method, path, response.status, response.content_type, raw)
    return response.status, json.loads(raw) if raw else {}, raw


async def listed(hub: Hub, token: str, **params: str) -> list[str]:
    status, body, _ = await ask(hub, "GET", UNLINKED, token, params=params)
    assert status == 200, body
    return [recording["id"] for recording in body["recordings"]]


async def mark(hub: Hub, name: str, token: str, body: Any) -> tuple[int, dict[str, Any]]:
    path = f"/api/v1/recordings/{hub.ids.get(name, name)}/no-referral"
    status, answer, _ = await ask(hub, "POST", path, token, json=body)
    return status, answer


async def decisions(hub: Hub) -> tuple[int, int]:
    """The "no referral" rows stored, and the audit events of decisions made."""
    async with hub.service.services.database.read() as session:
        rows = await session.scalar(select(func.count()).select_from(RecordingNoReferral))
        events = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "recording.no_referral", AuditEvent.outcome == "allow")
        )
    return rows or 0, events or 0


async def test_a_supervisor_sees_their_teams_unlinked_calls_past_the_delay_oldest_first(
    hub: Hub,
) -> None:
    status, body, raw = await ask(hub, "GET", UNLINKED, hub.supervisor(CHILDREN))
    assert status == 200
    assert body["review_after_days"] == 7
    assert [r["id"] for r in body["recordings"]] == [hub.ids["oldest"], hub.ids["older"]]
    assert all(set(recording) == FIELDS for recording in body["recordings"])
    assert body["recordings"][0]["team"] == CHILDREN
    assert body["next_cursor"] is None
    for leak in (b"+44", b"441384", b"MASH-"):
        assert leak not in raw, leak
    assert await listed(hub, hub.supervisor(ADULTS)) == [hub.ids["adults"]]
    assert await listed(hub, hub.supervisor(CHILDREN, ADULTS), team=ADULTS) == [hub.ids["adults"]]
    # A team the supervisor does not lead is no wider a list, only an empty one.
    assert await listed(hub, hub.supervisor(CHILDREN), team=ADULTS) == []
    assert await listed(hub, hub.supervisor()) == []


async def test_the_review_delay_is_a_setting(tmp_path: Path, database_url: str) -> None:
    async with running_service(
        tmp_path / "var",
        database_url,
        rendition_workers=0,
        unlinked_review_after=timedelta(minutes=30),
    ) as service:
        recent = await push(service, "recent", timedelta(hours=1), CHILDREN, [])
        hub = Hub(service, {})
        status, body, _ = await ask(hub, "GET", UNLINKED, hub.supervisor(CHILDREN))
        assert status == 200
        assert body["review_after_days"] == pytest.approx(1 / 48)
        assert [recording["id"] for recording in body["recordings"]] == [recent]


async def test_pages_go_forward_in_time_with_the_cursor(hub: Hub) -> None:
    token = hub.supervisor(CHILDREN, ADULTS)
    status, first, _ = await ask(hub, "GET", UNLINKED, token, params={"limit": "2"})
    assert status == 200
    assert [r["id"] for r in first["recordings"]] == [hub.ids["oldest"], hub.ids["adults"]]
    second = await listed(hub, token, limit="2", cursor=first["next_cursor"])
    assert second == [hub.ids["older"]]


async def test_linking_or_marking_no_referral_takes_a_call_off_the_list_on_the_record(
    hub: Hub,
) -> None:
    token = hub.supervisor(CHILDREN)
    linked, _, _ = await ask(
        hub, "POST", f"/api/v1/recordings/{hub.ids['oldest']}/referrals/MASH-2026-000777", token
    )
    assert linked == 201
    assert await listed(hub, token) == [hub.ids["older"]]

    status, body = await mark(hub, "older", token, {"reason": f"  {REASON}  "})
    assert status == 201
    assert body["id"] == hub.ids["older"]
    assert body["no_referral"]["reason"] == REASON
    assert body["no_referral"]["decided_by"] == "callrec-dev|sup-1"
    assert await listed(hub, token) == []

    auditor = hub.service.token("auditor", subject="aud-1")
    status, trail, _ = await ask(
        hub, "GET", "/api/v1/audit", auditor, params={"action": "recording.no_referral"}
    )
    assert status == 200
    assert [
        (e["actor"], e["recording_id"], e["outcome"], e["details"]) for e in trail["events"]
    ] == [("callrec-dev|sup-1", hub.ids["older"], "allow", {"reason": REASON})]
    status, reads, _ = await ask(
        hub, "GET", "/api/v1/audit", auditor, params={"action": "recording.unlinked_list"}
    )
    assert {(e["actor"], e["outcome"]) for e in reads["events"]} == {("callrec-dev|sup-1", "allow")}


async def test_a_call_is_marked_once_and_never_when_linked(hub: Hub) -> None:
    token = hub.supervisor(CHILDREN)
    assert (await mark(hub, "older", token, {"reason": REASON}))[0] == 201
    for name in ("older", "linked"):
        status, body = await mark(hub, name, token, {"reason": REASON})
        assert (status, body["error"]) == (409, "conflict"), name
    # A call too recent to list may still be settled early.
    assert (await mark(hub, "recent", token, {"reason": REASON}))[0] == 201
    assert await decisions(hub) == (2, 2)


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": "no"}, {"reason": 12}, [REASON], "text"],
)
async def test_a_missing_or_trivial_reason_is_refused_and_nothing_is_stored(
    hub: Hub, body: Any
) -> None:
    status, answer = await mark(hub, "older", hub.supervisor(CHILDREN), body)
    assert (status, answer["error"]) == (422, "invalid_request")
    assert await decisions(hub) == (0, 0)
    assert hub.ids["older"] in await listed(hub, hub.supervisor(CHILDREN))


async def test_malformed_queries_are_400(hub: Hub) -> None:
    token = hub.supervisor(CHILDREN)
    for params in ({"cursor": "not-a-cursor"}, {"limit": "0"}, {"limit": "201"}, {"x": "1"}):
        status, body, _ = await ask(hub, "GET", UNLINKED, token, params=params)
        assert (status, body["error"]) == (400, "bad_request"), params


async def test_another_teams_or_a_missing_call_is_404_and_other_roles_are_403(hub: Hub) -> None:
    children = hub.supervisor(CHILDREN)
    for name in ("adults", str(uuid.uuid4()), "not-a-uuid"):
        status, body = await mark(hub, name, children, {"reason": REASON})
        assert (status, body["error"]) == (404, "not_found"), name
    for role in ("safety_reviewer", "dpo", "auditor", "retention_operator", "admin", "staff"):
        token = hub.service.token(role, CHILDREN)
        status, body, _ = await ask(hub, "GET", UNLINKED, token)
        assert (status, body["error"]) == (403, "forbidden"), role
        status, body = await mark(hub, "older", token, {"reason": REASON})
        assert (status, body["error"]) == (403, "forbidden"), role
    assert await decisions(hub) == (0, 0)


async def test_the_retention_status_the_command_and_a_metric_count_what_waits(
    hub: Hub, tmp_path: Path, database_url: str
) -> None:
    operator = hub.service.token("retention_operator", subject="ops-1")
    status, body, _ = await ask(hub, "GET", "/api/v1/retention", operator)
    assert status == 200
    assert body["triage"] == {
        "review_after_days": 7,
        "awaiting": 3,
        "by_team": {ADULTS: 1, CHILDREN: 2},
    }
    await mark(hub, "older", hub.supervisor(CHILDREN), {"reason": REASON})
    metrics = await (await hub.service.client.get("/metrics")).text()
    assert "callrec_recordings_unlinked_awaiting_triage 2.0" in metrics.splitlines()
    result = invoke(
        "retention",
        "status",
        CALLREC_DATA_DIR=str(tmp_path / "var"),
        CALLREC_DATABASE_URL=database_url,
        CALLREC_SINGLE_NODE="true",
    )
    assert result.returncode == 0, result.stderr
    shown = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert json.loads(shown["triage"])["awaiting"] == 2


async def test_deleting_a_call_deletes_its_no_referral_decision(hub: Hub) -> None:
    assert (await mark(hub, "older", hub.supervisor(CHILDREN), {"reason": REASON}))[0] == 201
    deleter = hub.service.services.deleter
    recording_id = uuid.UUID(hub.ids["older"])
    assert await deleter.begin_one(recording_id, actor="dpo", reason="erasure_request")
    await deleter.finish(recording_id)
    assert (await decisions(hub))[0] == 0
