"""The authorisation matrix: every endpoint x every role x own team / other team / no token /
bad token, each cell with its status, and no denied cell ever carrying audio.

Every answer the matrix gets is also checked against the OpenAPI document: its status
must be one the document lists for that operation, and its JSON must fit that schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyrage
import pytest

from retrieval import ROLES
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.retrieval.document_support import assert_documented
from tests.service_support import RunningService, running_service

pytestmark = pytest.mark.long

PURPOSE = {
    "supervisor": "quality_review",
    "safety_reviewer": "staff_safety",
    "dpo": "subject_access",
}
# The DPO's alone: finding a person's calls by number, and their request's case.
SUBJECT_ACCESS_ENDPOINTS = (
    "subject_search",
    "sar_open",
    "sar_list",
    "sar_view",
    "sar_extend",
    "sar_redact",
    "sar_export",
    "sar_close",
)
SUBJECT_ACCESS_STATUS = {"sar_open": 201}
ENDPOINTS = [
    "search",
    "view",
    "peaks",
    "link",
    "unlink",
    "grant",
    "play",
    "retention",
    "hold",
    "release",
    "erase",
    "accesses",
    "unlinked",
    "no_referral",
    "erasure_requests",
    "approve_erasure",
    "reject_erasure",
    *SUBJECT_ACCESS_ENDPOINTS,
]
ERASURE_ENDPOINTS = ("erasure_requests", "approve_erasure", "reject_erasure")
TRIAGE_ENDPOINTS = ("unlinked", "no_referral")
REASON = "matrix check of access"
RECIPIENT = str(pyrage.x25519.Identity.generate().to_public())
# Expected status per role, for a recording of the caller's own team and of another team.
OWN, OTHER = 0, 1
MATRIX: dict[str, dict[str, tuple[int, int]]] = {
    "supervisor": {
        "search": (200, 200),
        "view": (200, 404),
        "peaks": (200, 404),
        "link": (201, 404),
        "unlink": (204, 404),
        "grant": (201, 404),
        "play": (200, 403),
        "retention": (403, 403),
        "hold": (403, 403),
        "release": (403, 403),
        "erase": (403, 403),
        "accesses": (403, 403),
        # The list is of the supervisor's own teams whichever call the cell names.
        "unlinked": (200, 200),
        "no_referral": (201, 404),
        **dict.fromkeys(ERASURE_ENDPOINTS, (403, 403)),
        **dict.fromkeys(SUBJECT_ACCESS_ENDPOINTS, (403, 403)),
    },
    "safety_reviewer": {
        "search": (200, 200),
        "view": (200, 200),
        "peaks": (200, 200),
        "link": (201, 201),
        "unlink": (204, 204),
        "grant": (201, 201),
        "play": (200, 200),
        "retention": (403, 403),
        "hold": (201, 201),
        "release": (200, 200),
        "erase": (403, 403),
        "accesses": (403, 403),
        # Triage is a team supervisor's work: seeing every team's calls is not leading them.
        **dict.fromkeys(TRIAGE_ENDPOINTS, (403, 403)),
        **dict.fromkeys(ERASURE_ENDPOINTS, (403, 403)),
        **dict.fromkeys(SUBJECT_ACCESS_ENDPOINTS, (403, 403)),
    },
    "dpo": {
        "search": (200, 200),
        "view": (200, 200),
        "peaks": (200, 200),
        "link": (403, 403),
        "unlink": (403, 403),
        "grant": (201, 201),
        "play": (200, 200),
        "retention": (403, 403),
        "hold": (201, 201),
        "release": (200, 200),
        # The default needs two DPOs: the first one's erasure is a request.
        "erase": (202, 202),
        "accesses": (403, 403),
        **dict.fromkeys(TRIAGE_ENDPOINTS, (403, 403)),
        **dict.fromkeys(ERASURE_ENDPOINTS, (200, 200)),
        **{
            endpoint: (SUBJECT_ACCESS_STATUS.get(endpoint, 200),) * 2
            for endpoint in SUBJECT_ACCESS_ENDPOINTS
        },
    },
    # A call handler reaches only the accesses to their own calls: no recording, no audio,
    # no team's anything. Every other role is refused that list (the trail serves them).
    "staff": {
        endpoint: (200, 200) if endpoint == "accesses" else (403, 403) for endpoint in ENDPOINTS
    },
    **{
        role: {
            endpoint: (200, 200) if endpoint == "retention" and role != "admin" else (403, 403)
            for endpoint in ENDPOINTS
        }
        for role in ("retention_operator", "auditor", "admin")
    },
}


@dataclass
class Setting:
    service: RunningService
    ids: dict[str, str]
    numbers: dict[str, str]

    def token(self, role: str, subject: str) -> str:
        return self.service.token(role, "mash-children", subject=subject)


@pytest.fixture(scope="module")
async def service(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> AsyncIterator[RunningService]:
    """One service per database for the whole matrix: each cell works on its own calls."""
    data_dir = tmp_path_factory.mktemp("matrix") / "var"
    async with running_service(data_dir, module_database_url) as started:
        yield started


@pytest.fixture
async def setting(service: RunningService) -> Setting:
    """Two new calls for one cell: one of the caller's team and one of another team."""
    ids, numbers = {}, {}
    for name, team in (("own", "mash-children"), ("other", "mash-adults")):
        # A caller's number of its own, so a subject access case finds this call alone.
        numbers[name] = f"+441384{uuid.uuid4().int % 10**6:06d}"
        document = metadata(recording_id=f"{name}-{uuid.uuid4()}", team=team)
        body = push_body({**document, "from": numbers[name]}, make_wav(1))
        response = await service.client.post(
            "/webhooks/push/pbx", data=body, headers=push_headers(body)
        )
        assert response.status == 201, await response.text()
        ids[name] = (await response.json())["id"]
    return Setting(service, ids, numbers)


async def call(
    setting: Setting, endpoint: str, recording: str, role: str, token: str | None
) -> tuple[int, bytes]:
    """Make the request one matrix cell stands for; return its status and body."""
    client = setting.service.client
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/recordings/{setting.ids[recording]}"
    if endpoint == "search":
        response = await client.get("/api/v1/recordings", headers=headers)
    elif endpoint == "view":
        response = await client.get(base, headers=headers)
    elif endpoint == "peaks":
        response = await client.get(f"{base}/peaks", headers=headers)
    elif endpoint == "link":
        response = await client.post(f"{base}/referrals/MASH-M1", headers=headers)
    elif endpoint == "unlink":
        # Linked first by someone allowed to, so only the caller's rights decide.
        reviewer = setting.token("safety_reviewer", "matrix-setup")
        await client.post(
            f"{base}/referrals/MASH-M2", headers={"Authorization": f"Bearer {reviewer}"}
        )
        response = await client.delete(f"{base}/referrals/MASH-M2", headers=headers)
    elif endpoint == "accesses":
        response = await client.get("/api/v1/me/accesses", headers=headers)
    elif endpoint == "unlinked":
        response = await client.get("/api/v1/unlinked-recordings", headers=headers)
    elif endpoint == "no_referral":
        # The pushed call's referral unlinked first by someone allowed to, so only the
        # caller's rights decide.
        reviewer = setting.token("safety_reviewer", "matrix-setup")
        await client.delete(
            f"{base}/referrals/MASH-2026-004211", headers={"Authorization": f"Bearer {reviewer}"}
        )
        response = await client.post(
            f"{base}/no-referral", headers=headers, json={"reason": REASON}
        )
    elif endpoint == "retention":
        response = await client.get("/api/v1/retention", headers=headers)
    elif endpoint == "hold":
        review_by = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        body = {"type": "legal", "reason": REASON, "review_by": review_by}
        response = await client.post(f"{base}/hold", headers=headers, json=body)
    elif endpoint == "release":
        # Held first by someone allowed to, so only the caller's rights decide.
        reviewer = setting.token("safety_reviewer", "matrix-setup")
        review_by = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        await client.post(
            f"{base}/hold",
            headers={"Authorization": f"Bearer {reviewer}"},
            json={"type": "legal", "reason": REASON, "review_by": review_by},
        )
        response = await client.delete(f"{base}/hold", headers=headers, json={"reason": REASON})
    elif endpoint == "erase":
        response = await client.delete(base, headers=headers, json={"reason": REASON})
    elif endpoint == "erasure_requests":
        response = await client.get("/api/v1/erasure-requests", headers=headers)
    elif endpoint in ("approve_erasure", "reject_erasure"):
        # Asked for first by another DPO, so only the caller's rights decide.
        asker = setting.token("dpo", "matrix-setup")
        asked = await client.delete(
            base, headers={"Authorization": f"Bearer {asker}"}, json={"reason": REASON}
        )
        assert asked.status == 202, await asked.text()
        decision = f"/api/v1/erasure-requests/{(await asked.json())['request']['id']}"
        if endpoint == "approve_erasure":
            response = await client.post(f"{decision}/approve", headers=headers)
        else:
            response = await client.post(
                f"{decision}/reject", headers=headers, json={"reason": REASON}
            )
    elif endpoint in SUBJECT_ACCESS_ENDPOINTS:
        response = await subject_access_call(setting, endpoint, recording, headers)
    elif endpoint == "grant":
        body = {"purpose": PURPOSE.get(role, "quality_review"), "reason": "matrix check of access"}
        response = await client.post(f"{base}/grants", headers=headers, json=body)
    else:
        # The caller's own grant where their role can get one; otherwise one made for
        # somebody else, which must be refused to them.
        grant_role = role if role in PURPOSE else "safety_reviewer"
        grantee = token if role in PURPOSE and token else setting.token(grant_role, "someone")
        made = await client.post(
            f"{base}/grants",
            headers={"Authorization": f"Bearer {grantee}"},
            json={"purpose": PURPOSE[grant_role], "reason": "matrix check of access"},
        )
        if made.status != 201:
            grantee = setting.token("safety_reviewer", "someone")
            made = await client.post(
                f"{base}/grants",
                headers={"Authorization": f"Bearer {grantee}"},
                json={"purpose": "staff_safety", "reason": "matrix check of access"},
            )
        url = (await made.json())["audio_url"]
        response = await client.get("/" + url.split("/", 3)[3], headers=headers)
    answer = await response.read()
    assert_documented(
        response.method, response.url.path, response.status, response.content_type, answer
    )
    return response.status, answer


async def subject_access_call(
    setting: Setting, endpoint: str, recording: str, headers: dict[str, str]
) -> Any:
    """One subject access cell; a case on the recording is opened first by another DPO
    where the cell acts on one, so only the caller's rights decide."""
    client = setting.service.client
    number = setting.numbers[recording]
    today = datetime.now(UTC).date().isoformat()
    if endpoint == "subject_search":
        body = {"phone_numbers": [number], "reason": REASON}
        return await client.post("/api/v1/recordings/search", headers=headers, json=body)
    opening = {
        "reference": f"SAR-{uuid.uuid4().hex[:12]}",
        "received": today,
        "reason": REASON,
        "phone_numbers": [number],
    }
    if endpoint == "sar_open":
        return await client.post("/api/v1/subject-access-requests", headers=headers, json=opening)
    if endpoint == "sar_list":
        return await client.get("/api/v1/subject-access-requests", headers=headers)
    opener = setting.token("dpo", "matrix-setup")
    opened = await client.post(
        "/api/v1/subject-access-requests",
        headers={"Authorization": f"Bearer {opener}"},
        json=opening,
    )
    assert opened.status == 201, await opened.text()
    case = f"/api/v1/subject-access-requests/{(await opened.json())['id']}"
    if endpoint == "sar_view":
        return await client.get(case, headers=headers)
    if endpoint == "sar_extend":
        return await client.post(f"{case}/extend", headers=headers, json={"reason": REASON})
    if endpoint == "sar_close":
        return await client.post(f"{case}/close", headers=headers, json={"reason": REASON})
    redaction = {"keep_channel": None, "muted": [[0.5, 1.0]]}
    if endpoint == "sar_export":
        # Decided first by the DPO who opened it, so only the caller's rights decide.
        decided = await client.put(
            f"{case}/recordings/{setting.ids[recording]}/redaction",
            headers={"Authorization": f"Bearer {opener}"},
            json=redaction,
        )
        assert decided.status == 200, await decided.text()
        # To an age key, not a passphrase: scrypt would cost seconds a cell.
        body = {"recipients": [RECIPIENT]}
        return await client.post(f"{case}/export", headers=headers, json=body)
    return await client.put(
        f"{case}/recordings/{setting.ids[recording]}/redaction", headers=headers, json=redaction
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("recording", ["own", "other"])
async def test_each_cell(setting: Setting, role: str, endpoint: str, recording: str) -> None:
    token = setting.token(role, f"{role}-caller")
    status, body = await call(setting, endpoint, recording, role, token)
    expected = MATRIX[role][endpoint][OWN if recording == "own" else OTHER]
    assert status == expected, body[:200]
    if status >= 400:
        assert b"RIFF" not in body


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("token", [None, "not.a.token"])
async def test_no_token_or_a_bad_one_is_401_on_every_endpoint(
    setting: Setting, endpoint: str, token: str | None
) -> None:
    status, body = await call(setting, endpoint, "own", "supervisor", token)
    assert status == 401
    assert b"RIFF" not in body


async def test_a_grant_is_refused_once_its_holder_is_no_longer_in_the_recordings_team(
    setting: Setting,
) -> None:
    # Issued while the supervisor was in the recording's team; played with the token they
    # hold after moving to another team. The grant narrows access, it never widens it.
    client = setting.service.client
    before = setting.service.token("supervisor", "mash-children", subject="mover")
    after = setting.service.token("supervisor", "mash-adults", subject="mover")
    made = await client.post(
        f"/api/v1/recordings/{setting.ids['own']}/grants",
        headers={"Authorization": f"Bearer {before}"},
        json={"purpose": "quality_review", "reason": REASON},
    )
    assert made.status == 201
    path = "/" + (await made.json())["audio_url"].split("/", 3)[3]
    still = await client.get(path, headers={"Authorization": f"Bearer {before}"})
    assert still.status == 200
    await still.read()
    response = await client.get(path, headers={"Authorization": f"Bearer {after}"})
    answer = await response.read()
    assert_documented(
        response.method, response.url.path, response.status, response.content_type, answer
    )
    assert response.status == 403
    assert b"RIFF" not in answer


def test_the_matrix_covers_every_role_and_endpoint() -> None:
    assert set(MATRIX) == set(ROLES)
    assert all(set(cells) == set(ENDPOINTS) for cells in MATRIX.values())
