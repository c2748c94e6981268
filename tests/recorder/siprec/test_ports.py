"""RTP ports come from the configured range only: in turn, past ports another process
holds, and a session is refused (503) once the range is spent."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from recorder.siprec import NoCapacity, parse_metadata, parse_offer
from recorder.siprec.ports import PortRange
from recorder.siprec.recordings import SiprecRecordings
from tests.recorder.siprec.test_recordings import OFFER, VECTORS


def free_block(size: int) -> int:
    """The first port of ``size`` consecutive UDP ports free on 127.0.0.1 now."""
    for first in range(42000, 60000, size):
        sockets = []
        try:
            for port in range(first, first + size):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
        return first
    raise RuntimeError("no block of free UDP ports")


def test_a_range_is_read_checked_and_handed_out_in_turn() -> None:
    ports = PortRange.parse("40000-40003")
    assert (ports.first, ports.last, ports.free) == (40000, 40003, 4)
    ports.hold(40000)
    assert list(ports.candidates()) == [40001, 40002, 40003]
    for bad in ("40000", "4-40000", "50000-40000", "40000-70000", "a-b"):
        with pytest.raises(ValueError, match="port"):
            PortRange.parse(bad)


class _Nowhere:
    async def store(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("nothing is stored in this test")


@pytest.fixture
def occupied() -> Iterator[tuple[int, socket.socket]]:
    first = free_block(6)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", first))
    yield first, squatter
    squatter.close()


async def test_sessions_bind_inside_the_range_past_a_taken_port_until_it_is_spent(
    tmp_path: Path, occupied: tuple[int, socket.socket]
) -> None:
    first, _squatter = occupied
    sessions = SiprecRecordings(
        _Nowhere(),  # type: ignore[arg-type]
        spool_dir=tmp_path,
        host="127.0.0.1",
        retention_period=timedelta(days=90),
        ports=PortRange(first, first + 5),
    )
    metadata = parse_metadata((VECTORS / "broadworks-draft.xml").read_bytes())
    offer = parse_offer(OFFER)
    one = await sessions.open("one", offer, metadata, ("127.0.0.1", 5060))
    two = await sessions.open("two", offer, metadata, ("127.0.0.1", 5060))
    used = set(one.values()) | set(two.values())
    assert len(used) == 4
    assert first not in used  # held by another process: skipped
    assert used <= set(range(first, first + 6))
    with pytest.raises(NoCapacity):
        await sessions.open("three", offer, metadata, ("127.0.0.1", 5060))
    assert await sessions.store("one", "cancel") is None
    await asyncio.sleep(0.05)  # a closed transport lets its socket go on the loop's next turn
    three = await sessions.open("three", offer, metadata, ("127.0.0.1", 5060))
    assert set(three.values()) <= set(one.values())  # the freed ports, in the range
    for call in ("two", "three"):
        await sessions.store(call, "cancel")
