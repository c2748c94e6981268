"""The recordings API: need to know per role and team, 404 for the unseen, paging, 410."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from storage.db.models import AuditEvent, Recording
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.service_support import RunningService, running_service

API = "/api/v1/recordings"
AUDIO = make_wav(1)
HOUR = timedelta(hours=1)


@dataclass
class Hub:
    service: RunningService
    ids: dict[str, str]  # source recording id -> API id

    def token(self, role: str, *teams: str, subject: str = "staff-1") -> str:
        return self.service.token(role, *teams, subject=subject)

    async def get(self, path: str, token: str | None, **params: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = await self.service.client.get(path, headers=headers, params=params)
        return response.status, await response.json()


CALLS = [
    # source id, team, agent, hours ago, referrals
    ("c1", "mash-children", "staff-0421", 1, ["MASH-1"]),
    ("c2", "mash-children", "staff-0422", 2, ["MASH-1", "MASH-2"]),
    ("c3", "mash-adults", "staff-0500", 3, ["MASH-3"]),
    ("c4", "mash-children", "staff-0421", 4, []),
    ("c5", "mash-adults", "staff-0501", 5, ["MASH-2"]),
]


async def push_call(service: RunningService, source_id: str, **fields: Any) -> str:
    body = push_body(metadata(recording_id=source_id, **fields), AUDIO)
    response = await service.client.post(
        "/webhooks/push/pbx", data=body, headers=push_headers(body)
    )
    assert response.status == 201, await response.text()
    answer: dict[str, str] = await response.json()
    return answer["id"]


def started(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@asynccontextmanager
async def hub_with_calls(data_dir: Path, database_url: str) -> AsyncIterator[Hub]:
    async with running_service(data_dir, database_url) as service:
        ids = {}
        for source_id, team, agent, hours_ago, referrals in CALLS:
            ids[source_id] = await push_call(
                service,
                source_id,
                team=team,
                agent=agent,
                referrals=referrals,
                started_at=started(hours_ago),
                ended_at=None,
            )
        yield Hub(service, ids)


@pytest.fixture
async def hub(tmp_path: Path, database_url: str) -> AsyncIterator[Hub]:
    """The calls, for one test that changes them (or counts what changed)."""
    async with hub_with_calls(tmp_path / "var", database_url) as made:
        yield made


@pytest.fixture(scope="module")
async def calls(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> AsyncIterator[Hub]:
    """The same calls, shared by the tests that only read them (and make no recordings)."""
    data_dir = tmp_path_factory.mktemp("recordings-api") / "var"
    async with hub_with_calls(data_dir, module_database_url) as made:
        yield made


# The authorisation matrix: role x (own team / other team) for both endpoints.
ROLES_THAT_SEE = {
    # role: (sees own-team c1, sees other-team c3)
    "supervisor": (True, False),
    "safety_reviewer": (True, True),
    "dpo": (True, True),
}
ROLES_REFUSED = ["retention_operator", "auditor", "admin"]


@pytest.mark.parametrize("role", list(ROLES_THAT_SEE))
async def test_metadata_follows_need_to_know(calls: Hub, role: str) -> None:
    token = calls.token(role, "mash-children")
    sees_own, sees_other = ROLES_THAT_SEE[role]
    own_status, own = await calls.get(f"{API}/{calls.ids['c1']}", token)
    other_status, other = await calls.get(f"{API}/{calls.ids['c3']}", token)
    assert own_status == (200 if sees_own else 404)
    assert other_status == (200 if sees_other else 404)
    if sees_own:
        assert own["team"] == "mash-children"
        assert own["referrals"] == ["MASH-1"]
        assert own["audio"]["codec"] == "pcm_s16le"
    if not sees_other:
        assert other == {"error": "not_found", "detail": "no such recording"}


@pytest.mark.parametrize("role", ROLES_REFUSED)
async def test_roles_that_never_see_recordings_are_refused_everywhere(
    calls: Hub, role: str
) -> None:
    token = calls.token(role, "mash-children")
    for path in (API, f"{API}/{calls.ids['c1']}"):
        status, body = await calls.get(path, token)
        assert (status, body["error"]) == (403, "forbidden")
        assert "recordings" not in body
        assert "from" not in body


@pytest.mark.parametrize("token", [None, "", "not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
async def test_no_token_or_a_bad_one_is_401_everywhere(calls: Hub, token: str | None) -> None:
    for path in (API, f"{API}/{calls.ids['c1']}", f"{API}/{uuid.uuid4()}"):
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        response = await calls.service.client.get(path, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"] == "unauthenticated"


async def test_another_teams_recording_looks_exactly_like_a_missing_one(calls: Hub) -> None:
    token = calls.token("supervisor", "mash-children")
    hidden = await calls.get(f"{API}/{calls.ids['c3']}", token)
    missing = await calls.get(f"{API}/{uuid.uuid4()}", token)
    not_an_id = await calls.get(f"{API}/../../etc", token)
    assert hidden == missing
    assert not_an_id[0] == 404


async def test_views_and_refusals_are_audited(calls: Hub) -> None:
    token = calls.token("supervisor", "mash-children", subject="staff-0421")
    await calls.get(f"{API}/{calls.ids['c1']}", token)
    await calls.get(f"{API}/{calls.ids['c3']}", token)
    async with calls.service.services.database.read() as session:
        by_staff = (
            select(AuditEvent).where(AuditEvent.actor.like("%staff-0421")).order_by(AuditEvent.seq)
        )
        events = (await session.execute(by_staff)).scalars().all()
    seen = [(e.action, str(e.recording_id), e.outcome) for e in events]
    assert seen == [
        ("recording.view", calls.ids["c1"], "allow"),
        ("recording.view", calls.ids["c3"], "deny"),
    ]


async def test_a_supervisor_searches_only_their_teams_newest_first(calls: Hub) -> None:
    status, body = await calls.get(API, calls.token("supervisor", "mash-children"))
    assert status == 200
    assert [r["source_recording_id"] for r in body["recordings"]] == ["c1", "c2", "c4"]
    assert body["next_cursor"] is None
    _, other = await calls.get(API, calls.token("supervisor", "mash-children"), team="mash-adults")
    assert other["recordings"] == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"referral": "MASH-2"}, ["c2", "c5"]),
        ({"team": "mash-adults"}, ["c3", "c5"]),
        ({"agent": "staff-0421"}, ["c1", "c4"]),
        ({"started_after": started(3.5)}, ["c1", "c2", "c3"]),
        ({"started_before": started(3.5)}, ["c4", "c5"]),
        ({"referral": "MASH-404"}, []),
    ],
)
async def test_search_filters(calls: Hub, params: dict[str, str], expected: list[str]) -> None:
    _, body = await calls.get(API, calls.token("safety_reviewer"), **params)
    assert [r["source_recording_id"] for r in body["recordings"]] == expected


async def test_a_search_by_date_starts_at_that_days_midnight_utc(calls: Hub) -> None:
    token = calls.token("safety_reviewer")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    status, after = await calls.get(API, token, started_after=tomorrow)
    assert (status, after["recordings"]) == (200, [])
    _, before = await calls.get(API, token, started_before=tomorrow)
    assert len(before["recordings"]) == 5


async def test_paging_is_complete_and_stable_while_recordings_arrive(hub: Hub) -> None:
    token = hub.token("dpo")
    seen: list[str] = []
    status, page = await hub.get(API, token, limit="2")
    seen += [r["source_recording_id"] for r in page["recordings"]]
    # A newer call and an older one arrive between pages.
    await push_call(hub.service, "new", started_at=started(0.5), ended_at=None)
    await push_call(hub.service, "old", started_at=started(9), ended_at=None)
    while page["next_cursor"]:
        status, page = await hub.get(API, token, limit="2", cursor=page["next_cursor"])
        assert status == 200
        seen += [r["source_recording_id"] for r in page["recordings"]]
    assert seen == ["c1", "c2", "c3", "c4", "c5", "old"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"limit": "\u00b2"},  # a superscript two: str.isdigit says yes, int says no
        {"limit": "\u0663"},  # an Arabic-Indic three: int would read it
        {"limit": "9" * 5000},  # more digits than int() converts
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJ4IiwgInkiXQ"},
        {"started_after": "yesterday"},
        {"started_after": "2026-11-24T09:00:00"},
        {"started_after": "2026-13-01"},
        {"started_before": "2026-11-24" + " " * 40},
        {"team": "x" * 200},
        {"sort": "oldest"},
    ],
)
async def test_malformed_search_parameters_are_400(calls: Hub, params: dict[str, str]) -> None:
    status, body = await calls.get(API, calls.token("dpo"), **params)
    assert (status, body["error"]) == (400, "bad_request")


async def test_a_deleted_recording_is_410_with_when(hub: Hub) -> None:
    deleted_at = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    async with hub.service.services.database.transaction() as session:
        await session.execute(
            update(Recording)
            .where(Recording.id == uuid.UUID(hub.ids["c1"]))
            .values(state="deleted", deleted_at=deleted_at)
        )
    status, body = await hub.get(f"{API}/{hub.ids['c1']}", hub.token("dpo"))
    assert status == 410
    assert (body["status"], body["deleted_at"]) == ("deleted", "2026-11-25T09:00:00Z")


async def test_a_recording_past_its_deadline_is_410_before_any_sweep(hub: Hub) -> None:
    async with hub.service.services.database.transaction() as session:
        await session.execute(
            update(Recording)
            .where(Recording.id == uuid.UUID(hub.ids["c2"]))
            .values(retention_deadline=datetime.now(UTC) - HOUR)
        )
    status, body = await hub.get(f"{API}/{hub.ids['c2']}", hub.token("safety_reviewer"))
    assert (status, body["status"]) == (410, "deleted")


async def send(hub: Hub, method: str, path: str, token: str) -> tuple[int, Any]:
    response = await hub.service.client.request(
        method, path, headers={"Authorization": f"Bearer {token}"}
    )
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body


async def test_referrals_are_linked_and_unlinked_with_an_audit_event_each(hub: Hub) -> None:
    token = hub.token("supervisor", "mash-children", subject="sup-7")
    path = f"{API}/{hub.ids['c4']}/referrals/MASH-2026-009999"
    assert (await send(hub, "POST", path, token))[0] == 201
    assert (await send(hub, "POST", path, token))[0] == 200  # already linked
    _, view = await hub.get(f"{API}/{hub.ids['c4']}", token)
    assert view["referrals"] == ["MASH-2026-009999"]
    _, found = await hub.get(API, token, referral="MASH-2026-009999")
    assert [r["source_recording_id"] for r in found["recordings"]] == ["c4"]
    assert (await send(hub, "DELETE", path, token))[0] == 204
    assert (await send(hub, "DELETE", path, token))[0] == 404
    async with hub.service.services.database.read() as session:
        changes = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.details)
                .where(AuditEvent.action.like("referral.%"))
                .order_by(AuditEvent.seq)
            )
        ).all()
    assert [(action, (details or {})["referral"]) for action, details in changes] == [
        ("referral.link", "MASH-2026-009999"),
        ("referral.unlink", "MASH-2026-009999"),
    ]


@pytest.mark.parametrize(
    ("role", "recording", "status"),
    [
        ("supervisor", "c3", 404),  # another team's
        ("dpo", "c1", 403),
        ("auditor", "c1", 403),
        ("retention_operator", "c1", 403),
        ("admin", "c1", 403),
        ("safety_reviewer", "c3", 201),
    ],
)
async def test_who_may_change_referrals(hub: Hub, role: str, recording: str, status: int) -> None:
    token = hub.token(role, "mash-children")
    answer, _ = await send(hub, "POST", f"{API}/{hub.ids[recording]}/referrals/MASH-X", token)
    assert answer == status


async def test_a_malformed_referral_reference_is_400(calls: Hub) -> None:
    token = calls.token("supervisor", "mash-children")
    status, body = await send(calls, "POST", f"{API}/{calls.ids['c1']}/referrals/-bad ref", token)
    assert (status, body["error"]) == (400, "bad_request")


async def test_peaks_are_drawn_from_the_audio_and_follow_need_to_know(calls: Hub) -> None:
    own = await calls.get(
        f"{API}/{calls.ids['c1']}/peaks", calls.token("supervisor", "mash-children")
    )
    other = await calls.get(
        f"{API}/{calls.ids['c3']}/peaks", calls.token("supervisor", "mash-children")
    )
    status, body = own
    assert (status, body["status"], body["per_second"], body["scale"]) == (200, "ready", 20, 127)
    # One second of a tone at 12000 of 32767: every twentieth of a second peaks near 46.
    (channel,) = body["peaks"]
    assert body["buckets"] == len(channel["max"]) == len(channel["min"]) == 20
    assert all(44 <= high <= 47 for high in channel["max"])
    assert all(-48 <= low <= -45 for low in channel["min"])
    assert other[0] == 404
