"""Holds and early erasure through the API: who may, their effect on sweeps and reads, records."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from retention import attest, sweep_expired_recordings
from storage import RECORDINGS_PREFIX, verify_receipt
from storage.db.models import AuditEvent, Recording
from tests.clock import FakeClock
from tests.service_support import (
    KEYS_PER_RECORDING,
    RunningService,
    running_service,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HORIZON = timedelta(minutes=20)
TEAM = "mash-children"  # the team of the pushed calls
REASON = "staff member threatened on this call, incident IR-2291"
ACTOR = "callrec-dev|staff-1"  # the issuer and subject of the tokens the tests use
RELEASE = "incident IR-2291 closed by the panel, no further need"


@dataclass
class Desk:
    service: RunningService
    clock: FakeClock
    recording: uuid.UUID
    deadline: datetime

    def headers(self, role: str, *teams: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.service.token(role, *teams)}"}

    async def hold(self, role: str = "safety_reviewer", **body: Any) -> tuple[int, Any]:
        payload = {"type": "staff_safety_incident", "reason": REASON, "review_by": "P"} | body
        if payload["review_by"] == "P":
            payload["review_by"] = _iso(self.clock.now + timedelta(days=30))
        response = await self.service.client.post(
            f"/api/v1/recordings/{self.recording}/hold", json=payload, headers=self.headers(role)
        )
        return response.status, await response.json()

    async def release(self, role: str = "safety_reviewer", **body: Any) -> tuple[int, Any]:
        response = await self.service.client.delete(
            f"/api/v1/recordings/{self.recording}/hold",
            json={"reason": RELEASE} | body,
            headers=self.headers(role),
        )
        return response.status, await response.json()

    async def erase(self, role: str = "dpo", reason: str = REASON) -> tuple[int, Any]:
        response = await self.service.client.delete(
            f"/api/v1/recordings/{self.recording}",
            json={"reason": reason},
            headers=self.headers(role),
        )
        return response.status, await response.json()

    async def get(self, role: str = "supervisor", *teams: str) -> tuple[int, Any]:
        response = await self.service.client.get(
            f"/api/v1/recordings/{self.recording}", headers=self.headers(role, *(teams or (TEAM,)))
        )
        return response.status, await response.json()

    async def sweep(self) -> list[uuid.UUID]:
        report = await sweep_expired_recordings(
            self.service.services.deleter, now=self.clock.now, horizon=HORIZON
        )
        return report.deleted

    async def state(self) -> str:
        async with self.service.services.database.read() as session:
            row = await session.get(Recording, self.recording)
            assert row is not None
            return row.state

    async def events(self, *actions: str) -> list[AuditEvent]:
        async with self.service.services.database.read() as session:
            rows = await session.execute(
                select(AuditEvent)
                .where(AuditEvent.action.in_(actions), AuditEvent.recording_id == self.recording)
                .order_by(AuditEvent.seq)
            )
            return list(rows.scalars())

    def to_deadline(self, offset: timedelta = timedelta(0)) -> None:
        """Move the clock to the recording's deadline (plus ``offset``)."""
        self.clock.now = self.deadline + offset


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def desk(tmp_path: Path, database_url: str) -> AsyncIterator[Desk]:
    clock = FakeClock()
    # One DPO erases at once here; the two-DPO rule has its own tests (test_erasure_approvals).
    async with running_service(
        tmp_path / "var", database_url, clock=clock, erasure_approvals=1
    ) as service:
        started = clock.now.replace(microsecond=0) - timedelta(hours=1)
        recording = await service.push_call("held-call", started)
        yield Desk(service, clock, recording, started + timedelta(days=90))


async def test_a_held_recording_outlives_its_deadline_until_released(desk: Desk) -> None:
    desk.to_deadline(-timedelta(days=1))
    assert (await desk.hold())[0] == 201
    desk.to_deadline(timedelta(hours=1))
    assert await desk.sweep() == []
    status, body = await desk.get()
    assert status == 200  # held: still readable past the deadline
    assert [hold["type"] for hold in body["holds"]] == ["staff_safety_incident"]
    assert (await desk.release())[0] == 200
    # Released past its deadline: refused at once, deleted at the next sweep.
    assert (await desk.get())[0] == 410
    assert await desk.sweep() == [desk.recording]
    assert await desk.state() == "deleted"


async def test_a_hold_lapses_at_its_review_date(desk: Desk) -> None:
    review_by = desk.deadline + timedelta(days=2)
    desk.to_deadline(-timedelta(days=1))
    assert (await desk.hold(review_by=_iso(review_by)))[0] == 201
    desk.clock.now = review_by - timedelta(seconds=1)
    assert await desk.sweep() == []
    assert (await desk.get())[0] == 200
    desk.clock.now = review_by
    assert (await desk.get())[0] == 410
    assert await desk.sweep() == [desk.recording]


async def test_renewing_replaces_reason_and_date_and_everything_is_audited(desk: Desk) -> None:
    status, placed = await desk.hold()
    assert status == 201
    assert placed["renewed"] is False
    later = _iso(desk.clock.now + timedelta(days=60))
    status, renewed = await desk.hold(reason="panel asked for another sixty days", review_by=later)
    assert status == 200
    assert renewed["renewed"] is True
    assert renewed["hold"]["review_by"] == later
    assert (await desk.hold(type="legal"))[0] == 201  # another kind is another hold
    assert await desk.release(type="legal") == (
        200,
        {"id": str(desk.recording), "released": ["legal"]},
    )
    events = await desk.events("hold.placed", "hold.renewed", "hold.released")
    assert [(e.action, (e.details or {})["kind"]) for e in events] == [
        ("hold.placed", "staff_safety_incident"),
        ("hold.renewed", "staff_safety_incident"),
        ("hold.placed", "legal"),
        ("hold.released", "legal"),
    ]
    assert (events[1].details or {})["reason"] == "panel asked for another sixty days"
    assert {e.actor for e in events} == {ACTOR}


async def test_only_safety_reviewers_and_the_dpo_hold_and_only_they_see_the_reason(
    desk: Desk,
) -> None:
    for role in ("supervisor", "auditor", "retention_operator", "admin"):
        assert (await desk.hold(role))[0] == 403, role
        assert (await desk.release(role))[0] == 403, role
    assert (await desk.hold("dpo"))[0] == 201
    _, seen_by_supervisor = await desk.get("supervisor", TEAM)
    assert seen_by_supervisor["holds"][0].keys() == {"type", "review_by", "placed_at"}
    _, seen_by_reviewer = await desk.get("safety_reviewer")
    assert seen_by_reviewer["holds"][0]["reason"] == REASON
    assert (await desk.release("dpo"))[0] == 200


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"type": "forever"}, "type must be one of"),
        ({"type": 7}, "send JSON"),
        ({"reason": "because"}, "reason"),
        ({"review_by": "2020-01-01"}, "in the future"),
        ({"review_by": "2999-01-01"}, "at most 90 days ahead"),
        ({"review_by": "2026-12-31T10:00:00"}, "time zone"),
        ({"review_by": "next week"}, "review_by must be a date"),
        ({"review_by": None}, "review_by must be a date"),
    ],
)
async def test_a_bad_hold_is_refused_with_a_reason_and_changes_nothing(
    desk: Desk, body: dict[str, Any], detail: str
) -> None:
    status, answer = await desk.hold(**body)
    assert status == 422
    assert detail in answer["detail"]
    assert await desk.events("hold.placed") == []


async def test_hostile_hold_bodies_get_json_errors(desk: Desk) -> None:
    url = f"/api/v1/recordings/{desk.recording}/hold"
    headers = desk.headers("safety_reviewer")
    for data in (b"not json", b"[1, 2]", b"{" * 10_000, b'{"reason": "' + b"x" * 8000 + b'"}'):
        response = await desk.service.client.post(url, data=data, headers=headers)
        assert response.status == 422
        assert (await response.json())["error"] == "invalid_request"
    response = await desk.service.client.post(
        f"/api/v1/recordings/{uuid.uuid4()}/hold", json={}, headers=headers
    )
    assert response.status == 404
    assert await desk.events("hold.placed") == []
    assert (await desk.get())[0] == 200  # still serving


async def test_releasing_when_nothing_is_held_is_a_conflict(desk: Desk) -> None:
    status, body = await desk.release()
    assert status == 409
    assert "no hold" in body["detail"]


async def test_a_recording_past_its_deadline_cannot_be_held_after_the_fact(desk: Desk) -> None:
    desk.to_deadline(timedelta(seconds=1))
    assert (await desk.hold())[0] == 410


async def test_search_leaves_out_what_is_past_its_deadline_unless_held(desk: Desk) -> None:
    async def found() -> list[str]:
        response = await desk.service.client.get(
            "/api/v1/recordings", headers=desk.headers("safety_reviewer")
        )
        return [item["id"] for item in (await response.json())["recordings"]]

    assert await found() == [str(desk.recording)]
    desk.to_deadline()
    assert await found() == []
    desk.to_deadline(-timedelta(minutes=1))
    assert (await desk.hold())[0] == 201
    desk.to_deadline(timedelta(days=1))
    assert await found() == [str(desk.recording)]


async def test_the_dpo_erases_early_with_a_signed_receipt(desk: Desk) -> None:
    for role in ("supervisor", "safety_reviewer", "auditor", "retention_operator"):
        assert (await desk.erase(role))[0] == 403, role
    assert (await desk.erase(reason="because"))[0] == 422
    status, body = await desk.erase()
    assert (status, body["status"]) == (200, "deleted")
    assert (await desk.get())[0] == 410
    assert (await desk.erase())[0] == 410
    assert await desk.state() == "deleted"
    assert [key async for key in desk.service.services.objects.iter_keys(RECORDINGS_PREFIX)] == []
    (destroyed,) = await desk.events("recording.keys_destroyed")
    assert destroyed.details == {
        "reason": "erasure",
        "note": REASON,
        "deadline": _iso(desk.deadline),
        "authorisation": {
            "approvals": 1,
            "authorised_by": ACTOR,
            "rule": "authorised by a single DPO under CALLREC_ERASURE_APPROVALS=1",
        },
    }
    (receipt,) = await desk.events("recording.deleted")
    assert (receipt.details or {})["reason"] == "erasure"
    assert verify_receipt(receipt.details or {}, desk.service.services.receipts.public_pem)


async def test_a_single_dpo_erasure_is_attested_and_reported_as_such(desk: Desk) -> None:
    services = desk.service.services
    assert services.settings.erasure_approvals == 1
    assert (await desk.erase())[0] == 200
    rule = "authorised by a single DPO under CALLREC_ERASURE_APPROVALS=1"
    attestation = await attest(
        services.deleter,
        now=desk.clock.now,
        window=timedelta(days=1),
        erasure_approvals=services.settings.erasure_approvals,
    )
    assert attestation["early_erasure"] == {
        "approvals_required": 1,
        "rule": rule,
        "erasures_in_window": 1,
        "authorised_by_single_dpo": 1,
    }
    response = await desk.service.client.get(
        "/api/v1/retention", headers=desk.headers("retention_operator")
    )
    assert (await response.json())["early_erasure"] == {"approvals_required": 1, "rule": rule}


async def test_a_held_recording_cannot_be_erased_until_released(desk: Desk) -> None:
    assert (await desk.hold(type="subject_access_pending"))[0] == 201
    status, body = await desk.erase()
    assert status == 409
    assert "subject_access_pending" in body["detail"]
    assert await desk.state() == "stored"
    assert (await desk.release("dpo"))[0] == 200
    assert (await desk.erase())[0] == 200


@pytest.mark.s3
async def test_objects_are_tagged_for_the_lifecycle_backstop_and_retagged_by_holds(
    tmp_path: Path,
    database_url: str,
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: S3Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    clock = FakeClock()
    async with running_service(
        tmp_path / "var", database_url, clock=clock, store_url=f"s3://{s3_bucket}/hub"
    ) as service:
        recording = await service.push_call("tagged", clock.now - timedelta(hours=1))
        desk = Desk(service, clock, recording, clock.now + timedelta(days=90))
        # The audit anchors share the bucket by default (under hub/anchors/): not audio.
        listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"hub/{RECORDINGS_PREFIX}")
        names = [item["Key"] for item in listed["Contents"]]
        # The original, the rendition and the key share, always tagged alike.
        assert len(names) == KEYS_PER_RECORDING

        def tags() -> dict[str, str]:
            found = [
                {
                    tag["Key"]: tag["Value"]
                    for tag in s3_client.get_object_tagging(Bucket=s3_bucket, Key=name)["TagSet"]
                }
                for name in names
            ]
            assert all(each == found[0] for each in found)
            return found[0]

        assert tags() == {"callrec-retention": "standard"}
        assert (await desk.hold())[0] == 201
        assert tags() == {"callrec-retention": "held"}
        assert (await desk.hold(type="legal"))[0] == 201
        assert (await desk.release(type="legal"))[0] == 200
        assert tags() == {"callrec-retention": "held"}  # another hold is still in force
        assert (await desk.release())[0] == 200
        assert tags() == {"callrec-retention": "standard"}
