"""The integrity scrub finds a flipped byte, a truncated object, a missing object and an
orphaned one, names each, passes the intact ones, and is audited; `callrec verify` exits
non-zero while anything is wrong."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from storage import Scrubber
from storage.db.models import AuditEvent, StoredObject
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.service_support import RunningService, running_service


async def push(service: RunningService, name: str, seconds: float) -> str:
    body = push_body(metadata(recording_id=name), make_wav(seconds))
    response = await service.client.post(
        "/webhooks/push/pbx", data=body, headers=push_headers(body)
    )
    assert response.status == 201
    recording_id: str = (await response.json())["id"]
    await service.renditions_made()  # the scrub reads every object: the rendition too
    return recording_id


async def originals(service: RunningService) -> dict[str, Path]:
    async with service.services.database.read() as session:
        rows = (
            await session.execute(
                select(StoredObject.object_key, StoredObject.recording_id).where(
                    StoredObject.kind == "original"
                )
            )
        ).all()
    return {str(rid): service.data_dir / "objects" / key for key, rid in rows}


def scrubber_of(service: RunningService) -> Scrubber:
    services = service.services
    return Scrubber(
        database=services.database,
        objects=services.objects,
        keys=services.keys,
        audit=services.audit,
    )


async def test_every_kind_of_damage_is_found_and_named(tmp_path: Path, database_url: str) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        ids = {name: await push(service, name, 10) for name in ("fine", "flip", "cut", "gone")}
        clean = await scrubber_of(service).run()
        assert clean.ok
        assert clean.objects == 8  # each recording: its original and its rendition

        paths = await originals(service)
        flipped = bytearray(paths[ids["flip"]].read_bytes())
        flipped[len(flipped) // 2] ^= 0x01
        for name, damage in (
            ("flip", bytes(flipped)),
            ("cut", paths[ids["cut"]].read_bytes()[:-100]),
        ):
            paths[ids[name]].unlink()  # objects are read-only: replace, do not edit
            paths[ids[name]].write_bytes(damage)
        paths[ids["gone"]].unlink()
        orphan = service.data_dir / "objects" / "recordings" / "ff" / ("ff" * 16)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"SGRC nobody's object")

        report = await scrubber_of(service).run()
        found = {
            (finding.recording_id and str(finding.recording_id), finding.problem)
            for finding in report.findings
        }
        assert found == {
            (ids["flip"], "corrupt"),
            (ids["cut"], "size"),
            (ids["gone"], "missing"),
            (None, "orphaned"),
        }
        async with service.services.database.read() as session:
            scrubs = (
                (
                    await session.execute(
                        select(AuditEvent)
                        .where(AuditEvent.action == "integrity.scrub")
                        .order_by(AuditEvent.seq)
                    )
                )
                .scalars()
                .all()
            )
        assert [event.outcome for event in scrubs] == ["allow", "error"]
        assert scrubs[1].details is not None
        assert scrubs[1].details["problems"] == {
            "corrupt": 1,
            "size": 1,
            "missing": 1,
            "orphaned": 1,
        }


async def test_a_changed_recorded_hash_is_found(tmp_path: Path, database_url: str) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        rid = await push(service, "evidence", 2)
        async with service.services.database.transaction() as session:
            row = (
                await session.execute(select(StoredObject).where(StoredObject.kind == "original"))
            ).scalar_one()
            row.plaintext_sha256 = "0" * 64
        report = await scrubber_of(service).run(sample=2)
        assert [(str(f.recording_id), f.problem) for f in report.findings] == [(rid, "hash")]


@pytest.mark.parametrize("sample", [1, 5])
async def test_a_sampled_scrub_reads_that_many_and_looks_for_no_orphans(
    tmp_path: Path, database_url: str, sample: int
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        for name in ("a", "b"):
            await push(service, name, 1)
        (service.data_dir / "objects" / "stray").write_bytes(b"x")
        report = await scrubber_of(service).run(sample=sample)
        assert report.objects == min(sample, 4)
        assert report.ok


async def test_the_service_scrubs_a_sample_on_a_schedule_and_counts_what_it_finds(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(
        tmp_path / "var",
        database_url,
        integrity_scrub_interval=timedelta(seconds=1),
        integrity_scrub_sample=10,
    ) as service:
        rid = await push(service, "watched", 2)
        (await originals(service))[rid].unlink()
        wanted = 'callrec_integrity_problems{problem="missing"} 1.0'
        for _ in range(100):
            scraped = await (await service.client.get("/metrics")).text()
            if wanted in scraped:
                break
            await asyncio.sleep(0.1)
        assert wanted in scraped
        assert 'callrec_integrity_problems{problem="corrupt"} 0.0' in scraped
        async with service.services.database.read() as session:
            outcomes = (
                (
                    await session.execute(
                        select(AuditEvent.outcome).where(AuditEvent.action == "integrity.scrub")
                    )
                )
                .scalars()
                .all()
            )
        assert "error" in outcomes
