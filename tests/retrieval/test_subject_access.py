"""Subject access: a person's calls found by their number in any format, their request
opened as a case with its statutory deadline, the recordings held while it is open and
released when it closes, redactions chosen, and every step audited without the number."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from retention import extended_deadline, statutory_deadline
from storage.db.models import AuditEvent
from storage.db.sar_models import SubjectAccessCase
from tests.cli_support import invoke
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.retrieval.document_support import assert_documented
from tests.service_support import RunningService, running_service

REASON = "subject access request from a caller about their own calls"
CASES = "/api/v1/subject-access-requests"
SEARCH = "/api/v1/recordings/search"
# The caller's line, written three ways: a PBX's national format, E.164, and spaced E.164.
NATIONAL, E164, SPACED = "020 7946 0000", "+442079460000", "+44 20 7946 0000"


@dataclass
class Hub:
    service: RunningService
    caller_calls: list[str]
    other_call: str
    stereo_call: str

    def dpo(self, subject: str = "dpo-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.service.token('dpo', subject=subject)}"}

    async def send(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        kwargs.setdefault("headers", self.dpo())
        response = await self.service.client.request(method, path, **kwargs)
        raw = await response.read()
        assert_documented(method, response.url.path, response.status, response.content_type, raw)
        return response.status, json.loads(raw) if raw else None

    async def open_case(self, reference: str, **fields: Any) -> dict[str, Any]:
        body = {
            "reference": reference,
            "received": datetime.now(UTC).date().isoformat(),
            "reason": REASON,
            "phone_numbers": [SPACED],
            **fields,
        }
        status, case = await self.send("POST", CASES, json=body)
        assert status == 201, case
        return dict(case)

    async def holds(self, recording_id: str) -> list[str]:
        status, view = await self.send("GET", f"/api/v1/recordings/{recording_id}")
        assert status == 200
        return [hold["type"] for hold in view["holds"]]

    async def audit(self, action: str) -> list[dict[str, Any]]:
        async with self.service.services.database.read() as session:
            rows = await session.execute(
                select(AuditEvent.details).where(AuditEvent.action == action)
            )
            return [dict(details or {}) for details in rows.scalars()]


async def push(service: RunningService, source_id: str, wav: bytes, **fields: Any) -> str:
    body = push_body(metadata(recording_id=source_id, **fields), wav)
    response = await service.client.post(
        "/webhooks/push/pbx", data=body, headers=push_headers(body)
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


@pytest.fixture
async def hub(tmp_path: Path, database_url: str) -> AsyncIterator[Hub]:
    """Three calls from the caller (one sent with a national number, one as the called
    party), one from somebody else, and a two-channel call of the caller's."""
    async with running_service(tmp_path / "var", database_url) as service:
        wav = make_wav(2)
        calls = [
            await push(service, "in-1", wav, **{"from": NATIONAL}),
            await push(service, "in-2", wav, **{"from": E164}),
            await push(service, "out-1", wav, **{"from": "+441384812345", "to": NATIONAL}),
        ]
        other = await push(service, "other-1", wav, **{"from": "+441384000099"})
        stereo = await push(
            service, "in-3", make_wav(3, channels=2), **{"from": E164, "referrals": []}
        )
        yield Hub(service, calls, other, stereo)


async def test_a_persons_calls_are_found_by_their_number_in_any_format(hub: Hub) -> None:
    status, found = await hub.send(
        "POST", SEARCH, json={"phone_numbers": [NATIONAL], "reason": REASON}
    )
    assert status == 200
    ids = {item["id"] for item in found["recordings"]}
    assert ids == {*hub.caller_calls, hub.stereo_call}
    assert hub.other_call not in ids
    # Stored in E.164 whatever the source sent, so what the DPO sees matches what they typed.
    sent_national = next(item for item in found["recordings"] if item["id"] == hub.caller_calls[0])
    assert sent_national["from"] == E164
    # The search is on the record with its reason and results, never the number.
    [event] = await hub.audit("recording.subject_search")
    assert event["reason"] == REASON
    assert sorted(event["results"]) == sorted(ids)
    assert "7946" not in json.dumps(event)


async def test_numbers_only_in_the_body_and_never_echoed(hub: Hub) -> None:
    status, error = await hub.send(
        "POST", SEARCH, json={"phone_numbers": ["call me maybe 12"], "reason": REASON}
    )
    assert status == 422
    assert "phone_numbers[0]" in error["detail"]
    assert "maybe" not in error["detail"]
    status, _ = await hub.send("POST", SEARCH, json={"phone_numbers": [E164]})
    assert status == 422  # no reason, no search
    status, _ = await hub.send("POST", SEARCH, json={"reason": REASON})
    assert status == 422  # nothing to search by
    staff = {"Authorization": f"Bearer {hub.service.token('supervisor', 'mash-children')}"}
    status, _ = await hub.send(
        "POST", SEARCH, headers=staff, json={"phone_numbers": [E164], "reason": REASON}
    )
    assert status == 403


async def test_a_case_holds_its_recordings_while_open_and_releases_them_when_closed(
    hub: Hub,
) -> None:
    first = await hub.open_case("SAR-2026-0001")
    received = datetime.now(UTC).date()
    assert first["deadline"] == statutory_deadline(received).isoformat()
    assert first["state"] == "open"
    assert first["recording_count"] == 4
    assert all(item["held"] for item in first["recordings"])
    assert await hub.holds(hub.caller_calls[0]) == ["subject_access_pending"]
    assert await hub.holds(hub.other_call) == []
    # A second case covering one of the same calls: closing the first keeps that one held.
    second = await hub.open_case(
        "SAR-2026-0002", phone_numbers=["+441384000777"], referrals=["MASH-2026-004211"]
    )
    assert hub.caller_calls[2] in {item["id"] for item in second["recordings"]}
    status, closed = await hub.send(
        "POST", f"{CASES}/{first['id']}/close", json={"reason": "answered the request in full"}
    )
    assert status == 200
    assert closed["state"] == "closed"
    assert closed["closed"]["by"]
    assert await hub.holds(hub.caller_calls[2]) == ["subject_access_pending"]
    assert await hub.holds(hub.stereo_call) == []  # only the first case covered it
    # A closed case forgets the requester's numbers: how many there were is what stays.
    async with hub.service.services.database.read() as session:
        row = await session.get(SubjectAccessCase, uuid.UUID(first["id"]))
        assert row is not None
        assert row.criteria["phone_numbers"] == 1
    status, _ = await hub.send(
        "POST", f"{CASES}/{first['id']}/extend", json={"reason": "complex request needs time"}
    )
    assert status == 409
    opened = await hub.audit("subject_access.opened")
    assert len(opened) == 2
    assert "7946" not in json.dumps(opened)


async def test_the_deadline_extends_once_and_cases_list_nearest_deadline_first(hub: Hub) -> None:
    today = datetime.now(UTC).date()
    later = await hub.open_case("SAR-LATER", received=today.isoformat())
    sooner = await hub.open_case("SAR-SOONER", received=(today - timedelta(days=20)).isoformat())
    status, listed = await hub.send("GET", CASES)
    assert status == 200
    assert [case["reference"] for case in listed["cases"]] == ["SAR-SOONER", "SAR-LATER"]
    status, extended = await hub.send(
        "POST",
        f"{CASES}/{sooner['id']}/extend",
        json={"reason": "complex request with many calls"},
    )
    assert status == 200
    assert extended["deadline"] == extended_deadline(today - timedelta(days=20)).isoformat()
    assert extended["extension"]["reason"] == "complex request with many calls"
    status, error = await hub.send(
        "POST",
        f"{CASES}/{sooner['id']}/extend",
        json={"reason": "complex request with many calls"},
    )
    assert status == 422
    assert "once" in error["detail"]
    status, listed = await hub.send("GET", CASES)
    assert [case["reference"] for case in listed["cases"]] == ["SAR-LATER", "SAR-SOONER"]
    assert later["days_left"] >= 28


async def test_a_request_is_refused_clearly_and_nothing_is_half_opened(hub: Hub) -> None:
    await hub.open_case("SAR-DUP")
    status, _ = await hub.send(
        "POST",
        CASES,
        json={
            "reference": "SAR-DUP",
            "received": datetime.now(UTC).date().isoformat(),
            "reason": REASON,
            "phone_numbers": [E164],
        },
    )
    assert status == 409
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    for body in (
        {"reference": "SAR-X", "received": tomorrow, "reason": REASON, "phone_numbers": [E164]},
        {"reference": "SAR-X", "received": "yesterday", "reason": REASON, "phone_numbers": [E164]},
        {"reference": "../x", "received": tomorrow, "reason": REASON, "phone_numbers": [E164]},
        {"reference": "SAR-X", "received": tomorrow, "reason": REASON, "phone_numbers": []},
    ):
        status, _ = await hub.send("POST", CASES, json=body)
        assert status == 422, body
    status, listed = await hub.send("GET", f"{CASES}?state=all")
    assert [case["reference"] for case in listed["cases"]] == ["SAR-DUP"]
    status, _ = await hub.send("GET", f"{CASES}/{uuid.uuid4()}")
    assert status == 404


async def test_redactions_are_checked_against_the_recording_and_merged(hub: Hub) -> None:
    case = await hub.open_case("SAR-REDACT")
    path = f"{CASES}/{case['id']}/recordings"
    status, changed = await hub.send(
        "PUT",
        f"{path}/{hub.stereo_call}/redaction",
        json={"keep_channel": 1, "muted": [[1.0, 1.5], [0.2, 0.4], [1.4, 2.0]]},
    )
    assert status == 200
    chosen = next(item for item in changed["recordings"] if item["id"] == hub.stereo_call)
    assert chosen["redaction"] == {"keep_channel": 1, "muted": [[0.2, 0.4], [1.0, 2.0]]}
    mono = hub.caller_calls[0]
    for body in (
        {"keep_channel": 0, "muted": []},  # one channel only: nothing to keep apart
        {"keep_channel": None, "muted": [[5.0, 6.0]]},  # after the end of a 2 s call
        {"keep_channel": None, "muted": [[1.0, 0.5]]},
        {"keep_channel": 2, "muted": []},
        {"keep_channel": None, "muted": "all"},
    ):
        status, _ = await hub.send("PUT", f"{path}/{mono}/redaction", json=body)
        assert status == 422, body
    status, _ = await hub.send(
        "PUT", f"{path}/{hub.other_call}/redaction", json={"keep_channel": None, "muted": []}
    )
    assert status == 404
    [event] = await hub.audit("subject_access.redaction_chosen")
    assert event["redaction"]["keep_channel"] == 1


async def test_the_retention_cycle_puts_back_a_case_hold_that_was_released(hub: Hub) -> None:
    case = await hub.open_case("SAR-UPKEEP")
    target = hub.caller_calls[1]
    status, _ = await hub.send(
        "DELETE",
        f"/api/v1/recordings/{target}/hold",
        json={"type": "subject_access_pending", "reason": "released by mistake during review"},
    )
    assert status == 200
    assert await hub.holds(target) == []
    upkeep = await hub.service.services.subject_access.keep_holds(actor="retention")
    assert upkeep.placed == 1
    assert await hub.holds(target) == ["subject_access_pending"]
    status, viewed = await hub.send("GET", f"{CASES}/{case['id']}")
    assert all(item["held"] for item in viewed["recordings"])


async def test_sar_list_shows_open_requests_nearest_deadline_first_and_fails_when_overdue(
    hub: Hub,
) -> None:
    settings = hub.service.services.settings
    assert settings.database_url is not None
    env = {
        "CALLREC_DATA_DIR": str(settings.data_dir),
        "CALLREC_DATABASE_URL": settings.database_url.get_secret_value(),
        "CALLREC_SINGLE_NODE": "true",
    }
    today = datetime.now(UTC).date()
    await hub.open_case("SAR-NEW", received=today.isoformat())
    listed = await asyncio.to_thread(invoke, "sar", "list", **env)
    assert listed.returncode == 0, listed.stderr
    assert "SAR-NEW  open" in listed.stdout
    assert "1 request (open)" in listed.stdout
    # Received 40 days ago and never extended: overdue, which the command's exit says.
    await hub.open_case("SAR-OLD", received=(today - timedelta(days=40)).isoformat())
    listed = await asyncio.to_thread(invoke, "sar", "list", "--json", **env)
    assert listed.returncode == 1
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["reference"] for row in rows] == ["SAR-OLD", "SAR-NEW"]
    assert rows[0]["overdue"] is True
    assert rows[0]["days_left"] < 0
    assert E164 not in listed.stdout
