"""Capture cannot be starved by strangers: allow-lists, an unauthenticated budget, a pace.

Every flood here comes from the genuine sender's own address (127.0.0.1), so only the
budget, the pace and pre-authentication stand between it and the genuine push.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from recorder import sign_preauth
from tests.flood_support import SlowFlood
from tests.push_support import SECRET, make_wav, metadata, push_body, push_headers
from tests.serve_support import read_response
from tests.service_support import RunningService, running_service

URL = "/webhooks/push/pbx"
NOTHING = {"recordings": 0, "objects": 0, "spool": 0, "audit": 0}
AUDIO = make_wav(1)
# Four slots, two of them for uploads not yet authenticated (the default half).
SMALL: dict[str, Any] = {"max_concurrent_pushes": 4}


def port_of(service: RunningService) -> int:
    port = service.client.server.port
    assert port is not None
    return port


async def genuine(
    service: RunningService,
    recording_id: str,
    *,
    preauth: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One signed push, exactly as docs/push.md says (plus X-Callrec-Preauth if asked)."""
    body = push_body(metadata(recording_id=recording_id), AUDIO)
    signed = push_headers(body)
    if preauth:
        when = int(signed["X-Callrec-Timestamp"])
        signed["X-Callrec-Preauth"] = sign_preauth(SECRET.encode(), when, len(body), "pbx")
    response = await service.client.post(URL, data=body, headers=signed | (headers or {}))
    return response.status, await response.json()


async def genuine_with_one_retry(service: RunningService, recording_id: str) -> list[int]:
    """The sender's answers: a first try and, if told to retry, one more 3 s later."""
    status, _ = await genuine(service, recording_id)
    if status not in (503, 408):
        return [status]
    await asyncio.sleep(3.0)
    retried, _ = await genuine(service, recording_id)
    return [status, retried]


async def test_a_flood_of_slow_unsigned_bodies_does_not_stop_a_signed_push(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url, **SMALL) as service:
        # More flooders than there are slots at all: each trickles a byte every half
        # second and comes back a second after it is cut or refused.
        async with SlowFlood(port_of(service), URL, connections=6) as flood:
            await asyncio.sleep(2.0)  # the flood holds every slot it can
            answers = await genuine_with_one_retry(service, "through-the-flood")
            await asyncio.sleep(1.0)
        assert answers[-1] == 201, answers
        assert await service.counts() != NOTHING
    # Strangers were cut for their pace, or refused, never stored.
    assert set(flood.answers) <= {"408", "503", "closed"}, flood.answers


async def test_a_preauthenticated_push_gets_in_at_once_through_a_churning_flood(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url, **SMALL) as service:
        # Strangers reconnecting as fast as they are refused: they can hold the whole
        # unauthenticated budget, and nothing more.
        flood = SlowFlood(port_of(service), URL, connections=12, reconnect_after_s=0.05)
        async with flood:
            await asyncio.sleep(3.5)  # refused, or cut for their pace, and back
            statuses = [(await genuine(service, f"pre-{n}", preauth=True))[0] for n in range(3)]
        assert statuses == [201, 201, 201]
        assert flood.answers["503"] > 0  # the flood was there, and refused


async def test_a_wrong_preauthentication_header_is_refused_before_the_body(
    service: RunningService,
) -> None:
    status, body = await genuine(
        service, "wrong-preauth", headers={"X-Callrec-Preauth": "v1=" + "0" * 64}
    )
    assert (status, body["error"]) == (401, "unauthenticated")
    assert await service.counts() == NOTHING


async def test_a_body_under_the_minimum_rate_is_cut_within_seconds_and_nothing_is_kept(
    service: RunningService,
) -> None:
    body = push_body(metadata(recording_id="crawling"), AUDIO)

    async def crawling() -> AsyncIterator[bytes]:
        for offset in range(len(body)):  # a correctly signed body, a byte every 0.1 s
            yield body[offset : offset + 1]
            await asyncio.sleep(0.1)

    started = time.monotonic()
    response = await asyncio.wait_for(
        service.client.post(URL, data=crawling(), headers=push_headers(body)), timeout=20
    )
    took = time.monotonic() - started
    assert response.status == 408
    assert (await response.json())["error"] == "request_timeout"
    assert took < 6.0, took  # a 3 s grace, then the window's rate
    assert await service.counts() == NOTHING


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path / "var", database_url) as running:
        yield running


async def stalled_push(service: RunningService, **headers: str) -> tuple[int, dict[str, Any]]:
    """A push whose body never comes: only an answer before the body can arrive in time."""
    body = push_body(metadata(recording_id="from-elsewhere"), AUDIO)
    head = "".join(f"{k}: {v}\r\n" for k, v in (push_headers(body) | headers).items())
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(service))
    try:
        writer.write(
            f"POST {URL} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(read_response(reader), timeout=5)
    finally:
        writer.close()
    return answer.status, json.loads(answer.body)


async def test_a_sender_outside_its_sources_list_is_refused_403_before_its_body(
    tmp_path: Path, database_url: str
) -> None:
    lists: dict[str, Any] = {"push_allowed_senders": {"pbx": ("192.0.2.0/24", "2001:db8::/32")}}
    async with running_service(tmp_path / "var", database_url, **lists) as service:
        status, body = await stalled_push(service)
        assert (status, body["error"]) == (403, "forbidden")
        # A made-up source name is refused in the same words: names are not given away.
        response = await service.client.post("/webhooks/push/nobody", data=b"x")
        assert (response.status, (await response.json())["error"]) == (403, "forbidden")
        assert await service.counts() == NOTHING


LISTED: dict[str, Any] = {"push_allowed_senders": {"pbx": ("192.0.2.0/24",)}}


async def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url, **LISTED) as service:
        # The header is anyone's to write: the socket's peer is the sender.
        status, _ = await stalled_push(service, **{"X-Forwarded-For": "192.0.2.7"})
        assert status == 403


async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    tmp_path: Path, database_url: str
) -> None:
    proxied = LISTED | {"trusted_proxies": ("127.0.0.1/32",)}
    async with running_service(tmp_path / "var", database_url, **proxied) as service:
        status, body = await genuine(service, "via-proxy", headers={"X-Forwarded-For": "192.0.2.7"})
        assert status == 201, body
        # The client wrote the left-hand address; the proxy appended the real one.
        spoofed = {"X-Forwarded-For": "192.0.2.7, 198.51.100.9"}
        status, _ = await stalled_push(service, **spoofed)
        assert status == 403


async def test_a_providers_list_refuses_its_callbacks_from_elsewhere(
    tmp_path: Path, database_url: str
) -> None:
    settings: dict[str, Any] = {
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "t" * 32,
        "provider_allowed_senders": {"twilio": ("192.0.2.0/24",)},
    }
    async with running_service(tmp_path / "var", database_url, **settings) as service:
        response = await service.client.post("/webhooks/twilio", data={"RecordingSid": "RE1"})
        assert (response.status, (await response.json())["error"]) == (403, "forbidden")
