"""How the TCP/TLS listener cuts a byte stream into SIP messages, and its limits.

The listener is driven directly with a recording ``deliver``: what sippy would be handed,
message by message, whatever way the bytes were split on the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from recorder.siprec.sip_thread import sip_reactor
from tests.recorder.siprec.sipp_support import HOST, free_tcp_port

INVITE_HEAD = "INVITE sip:srs@127.0.0.1 SIP/2.0\r\nCall-ID: c1\r\nContent-Length: {}\r\n\r\n"


def message(body: str) -> bytes:
    raw = body.encode()
    return INVITE_HEAD.format(len(raw)).encode() + raw


class Listening:
    def __init__(self, port: int) -> None:
        self.address = (HOST, port)
        self.delivered: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.listener: Any = None

    async def next(self) -> bytes:
        data, _ = await asyncio.wait_for(self.delivered.get(), 5)
        return data


@pytest.fixture
async def listening(request: pytest.FixtureRequest) -> AsyncIterator[Listening]:
    options: dict[str, Any] = getattr(request, "param", {})
    module = sip_reactor().load("recorder.siprec.stream_transport")
    loop = asyncio.get_running_loop()
    result = Listening(free_tcp_port())

    def deliver(data: bytes, remote: Any, connection: Any, rtime: Any) -> None:
        loop.call_soon_threadsafe(result.delivered.put_nowait, (data, remote))

    def call(fn: Callable[..., None], *args: Any) -> None:
        fn(*args)

    result.listener = module.StreamListener(
        host=HOST, port=result.address[1], sip_host=HOST, deliver=deliver, call=call, **options
    )
    await asyncio.to_thread(result.listener.start)
    try:
        yield result
    finally:
        await asyncio.to_thread(result.listener.shutdown)


async def test_messages_are_cut_by_content_length_in_bytes(listening: Listening) -> None:
    first, second = message("o=Zoë Siân Åsé\r\n"), message("")
    _, writer = await asyncio.open_connection(*listening.address)
    both = b"\r\n" + first + second  # a stray CRLF before a message is ignored
    writer.write(both[:40])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(both[40:])

    assert await listening.next() == first
    assert await listening.next() == second
    writer.close()


async def test_a_crlf_ping_gets_a_crlf_pong(listening: Listening) -> None:
    reader, writer = await asyncio.open_connection(*listening.address)
    writer.write(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
    writer.close()


async def test_a_message_without_content_length_closes_the_connection(
    listening: Listening,
) -> None:
    reader, writer = await asyncio.open_connection(*listening.address)
    writer.write(b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nCall-ID: c2\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert listening.delivered.empty()
    writer.close()


async def test_a_head_over_the_limit_closes_the_connection(listening: Listening) -> None:
    reader, writer = await asyncio.open_connection(*listening.address)
    writer.write(b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert listening.delivered.empty()
    writer.close()


@pytest.mark.parametrize("listening", [{"idle_s": 0.3}], indirect=True)
async def test_an_idle_connection_without_a_dialog_is_closed(listening: Listening) -> None:
    reader, writer = await asyncio.open_connection(*listening.address)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


@pytest.mark.parametrize("listening", [{"max_connections": 1}], indirect=True)
async def test_connections_beyond_the_limit_are_closed_at_once(listening: Listening) -> None:
    _, first = await asyncio.open_connection(*listening.address)
    await asyncio.sleep(0.1)
    reader, second = await asyncio.open_connection(*listening.address)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    second.close()
    first.write(message(""))
    assert (await listening.next()).startswith(b"INVITE ")
    first.close()
