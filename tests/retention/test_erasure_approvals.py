"""Early erasure under the four-eyes rule (CALLREC_ERASURE_APPROVALS=2, the default): one DPO
asks, a different DPO approves or rejects; nothing is destroyed before the approval."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from storage import RECORDINGS_PREFIX
from storage.db.models import AuditEvent, DataKey, StoredObject
from tests.clock import FakeClock
from tests.service_support import RunningService, running_service

ASK = "the caller asked for erasure, case SAR-2026-118, upheld"
NO = "erasure refused: the recording is evidence in incident IR-2291"
ASKER = "callrec-dev|dpo-ada"
APPROVER = "callrec-dev|dpo-bo"


@dataclass
class Office:
    service: RunningService
    recording: uuid.UUID
    clock: FakeClock

    def dpo(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.service.token('dpo', subject=subject)}"}

    async def ask(self, subject: str = "dpo-ada", reason: str = ASK) -> tuple[int, Any]:
        response = await self.service.client.delete(
            f"/api/v1/recordings/{self.recording}",
            json={"reason": reason},
            headers=self.dpo(subject),
        )
        return response.status, await response.json()

    async def decide(
        self, request_id: str, verb: str, subject: str = "dpo-bo", **body: Any
    ) -> tuple[int, Any]:
        response = await self.service.client.post(
            f"/api/v1/erasure-requests/{request_id}/{verb}",
            json=body or None,
            headers=self.dpo(subject),
        )
        return response.status, await response.json()

    async def pending(self, subject: str = "dpo-bo") -> list[dict[str, Any]]:
        response = await self.service.client.get(
            "/api/v1/erasure-requests", headers=self.dpo(subject)
        )
        assert response.status == 200
        body = await response.json()
        assert body["approvals_required"] == 2
        requests: list[dict[str, Any]] = body["requests"]
        return requests

    async def keys_and_objects(self) -> tuple[int, int]:
        """The recording's wrapped data keys in the database, and its objects in the store."""
        async with self.service.services.database.read() as session:
            keys = await session.scalar(
                select(func.count())
                .select_from(DataKey)
                .join(StoredObject, StoredObject.id == DataKey.object_id)
                .where(StoredObject.recording_id == self.recording)
            )
        objects = [key async for key in self.service.services.objects.iter_keys(RECORDINGS_PREFIX)]
        return keys or 0, len(objects)

    async def events(self) -> list[AuditEvent]:
        async with self.service.services.database.read() as session:
            rows = await session.execute(
                select(AuditEvent)
                .where(
                    AuditEvent.recording_id == self.recording,
                    AuditEvent.action.like("recording.erasure_%")
                    | (AuditEvent.action == "recording.keys_destroyed"),
                )
                .order_by(AuditEvent.seq)
            )
            return list(rows.scalars())


@pytest.fixture
async def office(tmp_path: Path, database_url: str) -> AsyncIterator[Office]:
    clock = FakeClock()
    async with running_service(tmp_path / "var", database_url, clock=clock) as service:
        recording = await service.push_call("to-erase", clock.now.replace(microsecond=0))
        yield Office(service, recording, clock)


async def test_a_request_destroys_nothing_and_a_second_dpo_approval_erases(office: Office) -> None:
    before = await office.keys_and_objects()
    assert min(before) > 0
    status, body = await office.ask()
    assert (status, body["status"]) == (202, "approval_required")
    request = body["request"]
    assert (request["state"], request["requested_by"], request["reason"]) == (
        "pending",
        ASKER,
        ASK,
    )
    # Nothing destroyed: keys in the database, objects in the store, the recording readable.
    assert await office.keys_and_objects() == before
    assert [item["id"] for item in await office.pending()] == [request["id"]]

    status, body = await office.decide(request["id"], "approve")
    assert (status, body["status"]) == (200, "deleted"), body
    assert (body["request"]["state"], body["request"]["decided_by"]) == ("approved", APPROVER)
    assert await office.keys_and_objects() == (0, 0)
    assert await office.pending() == []

    actions = [(event.action, event.actor) for event in await office.events()]
    assert actions == [
        ("recording.erasure_requested", ASKER),
        ("recording.erasure_approved", APPROVER),
        ("recording.keys_destroyed", APPROVER),
    ]
    requested, approved, destroyed = await office.events()
    assert requested.details == {"request_id": request["id"], "reason": ASK}
    assert approved.details == {
        "request_id": request["id"],
        "requested_by": ASKER,
        "approved_by": APPROVER,
        "reason": ASK,
    }
    assert (destroyed.details or {})["authorisation"] == {
        "approvals": 2,
        "requested_by": ASKER,
        "approved_by": APPROVER,
        "rule": "requested and approved by two different DPOs (CALLREC_ERASURE_APPROVALS=2)",
    }
    # Deciding it again is a conflict; the recording is gone.
    assert (await office.decide(request["id"], "approve", subject="dpo-cy"))[0] == 409
    assert (await office.ask())[0] == 410


async def test_a_dpo_cannot_approve_their_own_request(office: Office) -> None:
    _, body = await office.ask()
    status, refused = await office.decide(body["request"]["id"], "approve", subject="dpo-ada")
    assert status == 403
    assert refused["error"] == "forbidden"
    assert "different DPO" in refused["detail"]
    assert (await office.keys_and_objects())[0] > 0
    assert [item["state"] for item in await office.pending()] == ["pending"]


async def test_a_rejection_keeps_the_recording_and_records_why(office: Office) -> None:
    before = await office.keys_and_objects()
    _, body = await office.ask()
    request_id = body["request"]["id"]
    assert (await office.decide(request_id, "reject"))[0] == 422  # no reason
    status, rejected = await office.decide(request_id, "reject", reason=NO)
    assert status == 200
    assert (rejected["request"]["state"], rejected["request"]["decision_reason"]) == (
        "rejected",
        NO,
    )
    assert await office.keys_and_objects() == before
    assert (await office.decide(request_id, "approve"))[0] == 409
    (event,) = [e for e in await office.events() if e.action == "recording.erasure_rejected"]
    assert (event.actor, event.details) == (
        APPROVER,
        {"request_id": request_id, "requested_by": ASKER, "reason": NO},
    )
    # Rejected, so it may be asked for again.
    assert (await office.ask())[0] == 202


async def test_held_deleted_and_already_requested_recordings_are_refused(office: Office) -> None:
    status, _ = await office.ask()
    assert status == 202
    status, body = await office.ask(subject="dpo-bo")
    assert (status, body["error"]) == (409, "conflict")
    assert "awaiting approval" in body["detail"]
    assert (await office.decide(str(uuid.uuid4()), "approve"))[0] == 404
    assert (await office.decide("not-an-id", "approve"))[0] == 404

    (request,) = await office.pending()
    await office.decide(request["id"], "reject", reason=NO)
    review_by = office.clock.now + timedelta(days=30)
    hold = await office.service.client.post(
        f"/api/v1/recordings/{office.recording}/hold",
        json={"type": "legal", "reason": NO, "review_by": review_by.date().isoformat()},
        headers=office.dpo("dpo-bo"),
    )
    assert hold.status == 201, await hold.text()
    status, body = await office.ask()
    assert (status, body["error"]) == (409, "conflict")
    assert "held" in body["detail"]
    assert await office.pending() == []


async def test_a_request_is_durable_across_a_restart(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock()
    async with running_service(tmp_path / "var", database_url, clock=clock) as service:
        recording = await service.push_call("kept-asked", clock.now.replace(microsecond=0))
        office = Office(service, recording, clock)
        _, body = await office.ask()
    async with running_service(tmp_path / "var", database_url, clock=clock) as service:
        office = Office(service, recording, clock)
        assert [item["id"] for item in await office.pending()] == [body["request"]["id"]]
        assert (await office.keys_and_objects())[0] > 0
        status, approved = await office.decide(body["request"]["id"], "approve")
        assert (status, approved["status"]) == (200, "deleted")
        assert await office.keys_and_objects() == (0, 0)


async def test_only_the_dpo_asks_lists_and_decides(office: Office) -> None:
    _, body = await office.ask()
    request_id = body["request"]["id"]
    client = office.service.client
    for role in ("supervisor", "safety_reviewer", "auditor", "retention_operator", "admin"):
        headers = {"Authorization": f"Bearer {office.service.token(role, 'mash-children')}"}
        listed = await client.get("/api/v1/erasure-requests", headers=headers)
        approved = await client.post(
            f"/api/v1/erasure-requests/{request_id}/approve", headers=headers
        )
        assert (listed.status, approved.status) == (403, 403), role
    assert (await office.keys_and_objects())[0] > 0


async def test_a_hold_placed_after_the_request_stops_the_approval_and_the_request_waits(
    office: Office,
) -> None:
    _, body = await office.ask()
    review_by = office.clock.now + timedelta(days=30)
    hold = await office.service.client.post(
        f"/api/v1/recordings/{office.recording}/hold",
        json={"type": "legal", "reason": NO, "review_by": review_by.date().isoformat()},
        headers=office.dpo("dpo-cy"),
    )
    assert hold.status == 201, await hold.text()
    status, refused = await office.decide(body["request"]["id"], "approve")
    assert (status, refused["error"]) == (409, "conflict")
    assert (await office.keys_and_objects())[0] > 0
    # Nothing of the refused approval stands: the request still waits, unapproved.
    assert [item["state"] for item in await office.pending()] == ["pending"]
    assert [e.action for e in await office.events()] == ["recording.erasure_requested"]
