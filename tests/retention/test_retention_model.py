"""Random histories of captures, holds, releases, erasures, clock jumps and sweeps.

A model says what must be true after each step; the real service (HTTP API, SQLite,
filesystem store, signed receipts) is asked, never its internals' intentions:

- nothing unheld is readable from its deadline on;
- nothing is deleted before its deadline minus the sweep horizon, unless erased;
- a recording held when a sweep runs survives it;
- every deletion has its keys_destroyed event and one signed receipt.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select

from retention import HOLD_KINDS, sweep_expired_recordings
from storage import create_engine, upgrade_database, verify_receipt
from storage.db.models import AuditEvent, Recording
from tests.clock import FakeClock
from tests.service_support import RunningService, running_service

pytestmark = pytest.mark.long

HORIZON = timedelta(minutes=20)  # the default sweep interval plus margin
PERIOD = timedelta(days=90)
REASON = "incident review panel asked for this call"


@dataclass
class Modelled:
    """What the model knows of one recording."""

    deadline: datetime
    holds: dict[str, datetime] = field(default_factory=dict)  # kind -> review date
    erased: bool = False
    deleted: bool = False

    def held(self, now: datetime) -> bool:
        return any(review_by > now for review_by in self.holds.values())

    def readable(self, now: datetime) -> bool:
        return not self.deleted and (self.deadline > now or self.held(now))


_TEMPLATE: list[Path] = []


async def _migrated_template() -> Path:
    """A migrated SQLite file, made once per run; each history starts from a copy of it."""
    if not _TEMPLATE:
        folder = tempfile.mkdtemp(prefix="callrec-model-template-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / "callrec.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade_database(engine)
        await engine.dispose()  # folds the WAL in, so the file is the whole database
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


class RetentionHistory(RuleBasedStateMachine):
    """One service per history, on a throwaway data directory and SQLite database."""

    recordings = Bundle("recordings")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.workdir = Path(tempfile.mkdtemp(prefix="callrec-model-"))
        self.clock = FakeClock()
        self.model: dict[uuid.UUID, Modelled] = {}
        self.service: RunningService | None = None
        self._context: AbstractAsyncContextManager[RunningService] | None = None
        self.pushed = 0

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    @initialize()
    def start(self) -> None:
        database = self.workdir / "callrec.db"
        shutil.copyfile(self.run(_migrated_template()), database)
        url = f"sqlite+aiosqlite:///{database}"
        # No renditions: they have no part in what is kept or deleted, and cost each push.
        # One DPO erases at once: the model is about what is kept, not who approves.
        self._context = running_service(
            self.workdir / "var", url, clock=self.clock, rendition_workers=0, erasure_approvals=1
        )
        self.service = self.run(self._context.__aenter__())

    def teardown(self) -> None:
        if self._context is not None:
            self.run(self._context.__aexit__(None, None, None))
        self.loop.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def live(self) -> RunningService:
        assert self.service is not None
        return self.service

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.live.token(role)}"}

    # Calls of any age, and often calls within two days of their deadline, where holds,
    # sweeps and reads meet.
    @rule(
        target=recordings,
        age=st.one_of(
            st.integers(min_value=0, max_value=90 * 24 - 1),
            st.integers(min_value=88 * 24, max_value=90 * 24 - 1),
        ),
    )
    def capture(self, age: int) -> uuid.UUID:
        started = (self.clock.now - timedelta(hours=age)).replace(microsecond=0)
        self.pushed += 1
        recording: uuid.UUID = self.run(self.live.push_call(f"call-{self.pushed}", started))
        self.model[recording] = Modelled(deadline=started + PERIOD)
        return recording

    @rule(
        recording=recordings,
        kind=st.sampled_from(HOLD_KINDS),
        days=st.integers(min_value=1, max_value=90),
    )
    def hold(self, recording: uuid.UUID, kind: str, days: int) -> None:
        review_by = self.clock.now + timedelta(days=days)
        response = self.run(
            self.live.client.post(
                f"/api/v1/recordings/{recording}/hold",
                json={
                    "type": kind,
                    "reason": REASON,
                    "review_by": review_by.isoformat(),
                },
                headers=self.headers("safety_reviewer"),
            )
        )
        known = self.model[recording]
        if known.readable(self.clock.now):
            assert response.status in (200, 201)
            known.holds[kind] = review_by
        else:
            assert response.status == 410

    @rule(recording=recordings)
    def release(self, recording: uuid.UUID) -> None:
        response = self.run(
            self.live.client.delete(
                f"/api/v1/recordings/{recording}/hold",
                json={"reason": REASON},
                headers=self.headers("safety_reviewer"),
            )
        )
        known = self.model[recording]
        now = self.clock.now
        if not known.readable(now):
            assert response.status == 410
        elif known.held(now):
            assert response.status == 200
            known.holds.clear()
        else:
            assert response.status == 409

    @rule(recording=consumes(recordings))
    def erase(self, recording: uuid.UUID) -> None:
        response = self.run(
            self.live.client.delete(
                f"/api/v1/recordings/{recording}",
                json={"reason": REASON},
                headers=self.headers("dpo"),
            )
        )
        known = self.model[recording]
        now = self.clock.now
        if not known.readable(now):
            assert response.status == 410
        elif known.held(now):
            assert response.status == 409
        else:
            assert response.status == 200
            known.erased = known.deleted = True

    @rule(
        minutes=st.one_of(
            st.integers(min_value=1, max_value=60),
            st.integers(min_value=60, max_value=60 * 24 * 3),
            st.integers(min_value=1, max_value=60 * 24 * 40),
        )
    )
    def advance(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))

    @precondition(lambda self: bool(self.model))
    @rule()
    def sweep(self) -> None:
        now = self.clock.now
        report = self.run(
            sweep_expired_recordings(self.live.services.deleter, now=now, horizon=HORIZON)
        )
        for recording in report.deleted:
            known = self.model[recording]
            assert not known.held(now), "a held recording was swept"
            assert known.deadline - HORIZON <= now, "deleted before its deadline - horizon"
            known.deleted = True
        for recording, known in self.model.items():
            if not known.deleted and not known.held(now):
                assert known.deadline >= now + HORIZON, f"{recording} was due and survived"

    @invariant()
    def reads_follow_the_deadline_and_holds(self) -> None:
        if self.service is None:
            return
        now = self.clock.now
        for recording, known in self.model.items():
            response = self.run(
                self.live.client.get(
                    f"/api/v1/recordings/{recording}", headers=self.headers("safety_reviewer")
                )
            )
            assert response.status == (200 if known.readable(now) else 410), recording

    @invariant()
    def every_deletion_has_its_events_and_a_signed_receipt(self) -> None:
        if self.service is None:
            return
        services = self.live.services

        async def check() -> None:
            async with services.database.read() as session:
                deleted = set(
                    (
                        await session.execute(
                            select(Recording.id).where(Recording.state == "deleted")
                        )
                    ).scalars()
                )
                assert deleted == {rid for rid, known in self.model.items() if known.deleted}
                counts = dict(
                    (
                        await session.execute(
                            select(AuditEvent.action, func.count())
                            .where(
                                AuditEvent.action.in_(
                                    ["recording.keys_destroyed", "recording.deleted"]
                                )
                            )
                            .group_by(AuditEvent.action)
                        )
                    ).all()
                )
                assert counts.get("recording.keys_destroyed", 0) == len(deleted)
                assert counts.get("recording.deleted", 0) == len(deleted)
                receipts = await session.execute(
                    select(AuditEvent.details).where(AuditEvent.action == "recording.deleted")
                )
                for details in receipts.scalars():
                    assert verify_receipt(details or {}, services.receipts.public_pem)
                    erased = self.model[uuid.UUID(details["recording_id"])].erased
                    assert details["reason"] == ("erasure" if erased else "retention_period")

        self.run(check())


RetentionHistory.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_retention_histories = RetentionHistory.TestCase
