"""Deletion strips exactly the personal data the models declare, whatever that list holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import JSON, String, cast, func, select

from storage.db import models
from storage.db.models import PERSONAL_FIELDS, PERSONAL_ROWS, Recording, personal_columns
from tests.service_support import RunningService, running_service


async def _push_and_delete(service: RunningService) -> tuple[Recording, Recording]:
    """Push one call and delete it early; the row before and after."""
    recording_id = await service.push_call("p1", datetime.now(UTC) - timedelta(hours=1))
    before = await _row(service, recording_id)
    deleter = service.services.deleter
    assert await deleter.begin_one(recording_id, actor="dpo", reason="erasure_request")
    await deleter.finish(recording_id)
    return before, await _row(service, recording_id)


async def _row(service: RunningService, recording_id: uuid.UUID) -> Recording:
    async with service.services.database.read() as session:
        row = await session.get(Recording, recording_id)
        assert row is not None
        return row


async def _stored_empty(service: RunningService, recording_id: uuid.UUID, name: str) -> bool:
    """Whether the database itself holds nothing in the column, read past the ORM.

    SQL NULL, or for a JSON column the JSON ``null`` that assigning None stores there.
    """
    column = Recording.__table__.c[name]
    async with service.services.database.read() as session:
        raw = await session.scalar(select(cast(column, String)).where(Recording.id == recording_id))
    return raw is None or (isinstance(column.type, JSON) and raw == "null")


async def test_every_declared_personal_field_is_empty_on_a_deleted_recording(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        before, after = await _push_and_delete(service)

        # The pushed call fills every personal field, so each one is seen being emptied.
        assert all(getattr(before, name) is not None for name in PERSONAL_FIELDS)
        assert after.state == "deleted"
        for name in PERSONAL_FIELDS:
            assert getattr(after, name) is None, name
            assert await _stored_empty(service, after.id, name), name
        # What is not personal stays: the tombstone that proves the deletion.
        assert (after.source, after.team) == (before.source, before.team)
        async with service.services.database.read() as session:
            for table in PERSONAL_ROWS:
                left = await session.scalar(
                    select(func.count()).select_from(table).where(table.recording_id == after.id)
                )
                assert left == 0, table.__tablename__


async def test_a_column_added_to_the_declaration_is_stripped_by_deletion(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``team`` is a nullable column deletion keeps today; declared personal, it must go.
    monkeypatch.setattr(models, "PERSONAL_FIELDS", (*PERSONAL_FIELDS, "team"))
    async with running_service(tmp_path / "var", database_url) as service:
        before, after = await _push_and_delete(service)

        assert before.team == "mash-children"
        assert after.team is None
        assert await _stored_empty(service, after.id, "team")


@pytest.mark.parametrize(
    ("name", "complaint"),
    [("source", "NOT NULL"), ("caller_name", "not a recording column")],
)
def test_a_declared_field_deletion_could_not_empty_is_refused(
    name: str, complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "PERSONAL_FIELDS", (*PERSONAL_FIELDS, name))

    with pytest.raises(ValueError, match=complaint):
        personal_columns()


def test_the_declaration_as_it_stands_is_valid() -> None:
    assert personal_columns() == PERSONAL_FIELDS
