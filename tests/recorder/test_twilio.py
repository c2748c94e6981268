"""Twilio end to end against a fake Twilio: a signed callback is answered once its fetch is
queued, the recording is fetched, stored and searchable by the callback's referral, and
Twilio's copy is deleted. Faults: retries, dead letters, a restart, hostile URLs."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from recorder import TwilioSignature
from storage.db.models import AuditEvent
from tests.audio_factory import BY_NAME, make_audio
from tests.provider_fakes import ACCOUNT_SID, AUTH_TOKEN, FakeStorage, FakeTwilio, serving
from tests.service_support import RunningService, running_service

AUDIO = make_audio(BY_NAME["mulaw-wav"], 3.0)
CALLBACK_QUERY = "?referral=MASH-2026-007001&team=mash-children&agent=staff-0421"


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    async with serving(fake.app()) as fake.url:
        yield fake


def twilio_settings(fake: FakeTwilio, **extra: Any) -> dict[str, Any]:
    return {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_api_base": fake.url,
        "fetch_first_retry": timedelta(milliseconds=50),
        **extra,
    }


def callback(
    rid: str, fake: FakeTwilio, *, status: str = "completed", **fields: str
) -> dict[str, str]:
    started = datetime.now(UTC) - timedelta(minutes=5)
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + "b" * 32,
        "RecordingSid": rid,
        "RecordingUrl": fake.recording_url(rid),
        "RecordingStatus": status,
        "RecordingDuration": "3",
        "RecordingChannels": "1",
        "RecordingStartTime": started.strftime("%a, %d %b %Y %H:%M:%S +0000"),
        "RecordingSource": "StartCallRecordingAPI",
        "ErrorCode": "0",
        **fields,
    }


async def send(
    service: RunningService,
    form: dict[str, str],
    *,
    query: str = CALLBACK_QUERY,
    sign: Callable[[str, list[tuple[str, str]]], str] | None = None,
) -> tuple[int, Any]:
    path = "/webhooks/twilio" + query
    url = str(service.client.make_url(path))
    fields = list(form.items())
    signature = (sign or TwilioSignature(AUTH_TOKEN).compute)(url, fields)
    response = await service.client.post(
        path,
        data=io.BytesIO(urlencode(fields).encode()),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    return response.status, await response.json()


async def wait_for(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def actions(service: RunningService) -> list[str]:
    async with service.services.database.read() as session:
        return list(
            (await session.execute(select(AuditEvent.action).order_by(AuditEvent.seq))).scalars()
        )


async def test_a_signed_callback_is_fetched_stored_searchable_and_deleted_at_twilio(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    twilio.recordings["RE1"] = AUDIO
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        status, body = await send(service, callback("RE1", twilio))
        assert (status, body["status"]) == (200, "queued")
        job = await service.fetch_settled("RE1")
        assert job.details is None  # what the callback said now lives with the recording

        (found,) = await service.search_referral("MASH-2026-007001", "mash-children")
        assert found["id"] == str(job.recording_id)
        assert (found["source"], found["source_recording_id"]) == ("twilio", "RE1")
        assert (found["team"], found["agent"]) == ("mash-children", "staff-0421")
        assert found["audio"]["codec"] == "pcm_mulaw"
        assert await service.stored(found["id"], "original") == AUDIO
        await wait_for(lambda: asyncio.sleep(0, result=twilio.deleted == ["RE1"]))
        assert [seen.method for seen in twilio.seen] == ["GET", "DELETE"]
        assert twilio.seen[0].path.endswith("/Recordings/RE1.wav")
        assert twilio.seen[1].path.endswith("/Recordings/RE1.json")
        await wait_for(lambda: _has(service, "provider.copy_deleted"))
        assert (await actions(service)).count("fetch.queued") == 1


async def _has(service: RunningService, action: str) -> bool:
    return action in await actions(service)


async def test_a_repeated_callback_fetches_and_stores_once(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    twilio.recordings["RE2"] = AUDIO
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        answers = await asyncio.gather(*(send(service, callback("RE2", twilio)) for _ in range(5)))
        assert {status for status, _ in answers} == {200}
        assert len({body["job"] for _, body in answers}) == 1
        await service.fetch_settled("RE2")
        status, _ = await send(service, callback("RE2", twilio))
        assert status == 200
        await asyncio.sleep(0.3)
        assert [seen.method for seen in twilio.seen].count("GET") == 1
        assert (await service.counts())["recordings"] == 1


Signer = Callable[[str, list[tuple[str, str]]], str]


def signer(tamper: str) -> Signer:
    """Twilio's signing, with one thing changed after signing (or a wrong token)."""
    good = TwilioSignature(AUTH_TOKEN).compute
    if tamper == "signature":
        return TwilioSignature("not-the-token").compute

    def tampered(url: str, fields: list[tuple[str, str]]) -> str:
        if tamper == "url":
            return good(url.replace("referral=", "referal="), fields)
        if tamper == "field":
            changed = [(k, v + "0" if k == "RecordingDuration" else v) for k, v in fields]
            return good(url, changed)
        return good(url, fields)

    return tampered


@pytest.mark.parametrize("tamper", ["signature", "url", "field", "account"])
async def test_an_unsigned_or_tampered_callback_is_401_and_queues_nothing(
    tmp_path: Path,
    database_url: str,
    twilio: FakeTwilio,
    tamper: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    twilio.recordings["RE3"] = AUDIO
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        form = callback("RE3", twilio)
        if tamper == "account":
            form["AccountSid"] = "AC" + "f" * 32
        sign = signer(tamper)
        with caplog.at_level(logging.INFO, logger="recorder"):
            status, body = await send(service, form, sign=sign)
        assert (status, body["error"]) == (401, "unauthenticated")
        # Twilio's refusal names Twilio's header, and the log says it was Twilio's.
        assert "X-Twilio-Signature" in body["detail"]
        assert "X-Callrec" not in body["detail"]
        (refused,) = [r for r in caplog.records if "refused" in r.getMessage()]
        assert refused.getMessage() == "twilio callback refused"
        assert await service.fetch_job("RE3") is None
        assert twilio.seen == []


async def test_absent_and_failed_recordings_are_recorded_and_nothing_is_fetched(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        for rid, status in (("RE4", "absent"), ("RE5", "failed")):
            answer, body = await send(
                service, callback(rid, twilio, status=status, ErrorCode="16102")
            )
            assert (answer, body["status"]) == (200, status)
        assert (await actions(service)).count("recording.not_recorded") == 2
        assert await service.fetch_job("RE4") is None
        assert twilio.seen == []


async def test_a_provider_failing_three_times_is_retried_and_stored_once(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    twilio.recordings["RE6"] = AUDIO
    twilio.scripts["RE6"] = ["500", "429:0", "404"]
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        assert (await send(service, callback("RE6", twilio)))[0] == 200
        job = await service.fetch_settled("RE6")
        assert job.attempts == 4
        assert [seen.method for seen in twilio.seen] == ["GET"] * 4 + ["DELETE"]
        assert (await service.counts())["recordings"] == 1


async def test_a_provider_failing_forever_dead_letters_the_job_visibly_and_audited(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    twilio.recordings["RE7"] = AUDIO
    twilio.scripts["RE7"] = ["500"] * 10
    settings = twilio_settings(twilio, fetch_max_attempts=3)
    async with running_service(tmp_path / "var", database_url, **settings) as service:
        assert (await send(service, callback("RE7", twilio)))[0] == 200
        job = await service.fetch_settled("RE7", "dead")
        assert job.attempts == 3
        assert "500" in (job.last_error or "")
        counts = await service.services.fetch_queue.counts()
        assert counts["dead"] == 1
        (letter,) = await service.services.fetch_queue.dead_letters()
        assert letter["id"] == "RE7"
        scraped = await (await service.client.get("/metrics")).text()
        assert 'callrec_fetch_jobs{state="dead"} 1.0' in scraped
        assert "fetch.dead_lettered" in await actions(service)
        assert (await service.counts())["recordings"] == 0
        assert twilio.deleted == []  # Twilio's copy is all there is: it stays

        # Twilio sends the callback again once it can serve the file: the dead job is
        # queued afresh (the same job, all its attempts) and the recording is stored.
        twilio.scripts["RE7"] = []
        status, again = await send(service, callback("RE7", twilio))
        assert (status, again) == (200, {"status": "queued", "job": str(job.id)})
        revived = await service.fetch_settled("RE7")
        assert revived.attempts == 1
        assert (await service.counts())["recordings"] == 1
        assert "fetch.revived" in await actions(service)


async def test_a_callback_acknowledged_before_a_crash_is_fetched_after_the_restart(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    twilio.recordings["RE8"] = AUDIO
    # The first process acknowledges and dies before any worker fetched (none ran).
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio, fetch_workers=0)
    ) as service:
        assert (await send(service, callback("RE8", twilio)))[0] == 200
        await asyncio.sleep(0.2)
        assert twilio.seen == []
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        await service.fetch_settled("RE8")
        (found,) = await service.search_referral("MASH-2026-007001", "mash-children")
        assert await service.stored(found["id"], "original") == AUDIO


async def test_an_off_origin_redirect_is_refused_and_nothing_is_fetched_from_it(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    elsewhere = FakeStorage(body=AUDIO)
    async with serving(elsewhere.app()) as elsewhere.url:
        twilio.recordings["RE9"] = AUDIO
        twilio.scripts["RE9"] = [f"redirect:{elsewhere.url}/steal"]
        async with running_service(
            tmp_path / "var", database_url, **twilio_settings(twilio)
        ) as service:
            assert (await send(service, callback("RE9", twilio)))[0] == 200
            job = await service.fetch_settled("RE9", "dead")
            assert "configured origin" in (job.last_error or "")
    assert elsewhere.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.1.2.3/2010-04-01/Accounts/AC1/Recordings/RE10",
        "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Recordings/RE10",
    ],
)
async def test_a_recording_url_at_a_private_address_is_refused_before_queueing(
    tmp_path: Path, database_url: str, twilio: FakeTwilio, url: str
) -> None:
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        status, body = await send(service, callback("RE10", twilio, RecordingUrl=url))
        assert (status, body["error"]) == (422, "invalid_metadata")
        assert await service.fetch_job("RE10") is None
        assert "fetch.refused" in await actions(service)


async def test_a_callback_without_a_start_time_is_dated_from_its_arrival(
    tmp_path: Path, database_url: str, twilio: FakeTwilio
) -> None:
    twilio.recordings["RE11"] = AUDIO
    form = callback("RE11", twilio, RecordingDuration="60")
    del form["RecordingStartTime"]
    async with running_service(
        tmp_path / "var", database_url, **twilio_settings(twilio)
    ) as service:
        arrived = datetime.now(UTC)
        assert (await send(service, form))[0] == 200
        await service.fetch_settled("RE11")
        (found,) = await service.search_referral("MASH-2026-007001", "mash-children")
        started = datetime.fromisoformat(found["started_at"])
        # Taken to have ended as the callback arrived: it started a minute before.
        assert abs(started - (arrived - timedelta(seconds=60))) < timedelta(seconds=5)
        deadline = datetime.fromisoformat(found["retention_deadline"])
        assert deadline - started == timedelta(days=90)
