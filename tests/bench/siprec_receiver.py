"""One side of the SIPREC capacity benchmark, run as its own process so its CPU time and
memory are its own: N two-party calls received either by callrec's media path (a
``MediaSession`` a call: reorder, decode, two-channel WAV into the encrypted spool) or by a
bare asyncio UDP receiver that only counts datagrams (the floor any Python receiver pays).

``python -m tests.bench.siprec_receiver MODE CALLS SECONDS SPOOL_DIR``: prints the ports
(one JSON line), waits for a line on stdin (the sender has started), receives for SECONDS,
then prints what it received and what it cost (one JSON line).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from recorder.siprec import Codec, MediaSession, StreamPlan

PCMA = Codec(8, "PCMA", 8000)


class _Counting(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams += 1


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(mode: str, calls: int, seconds: float, spool_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    idle_rss = _rss_kb()
    sessions: list[MediaSession] = []
    counters: list[_Counting] = []
    ports: list[int] = []
    for _ in range(calls):
        if mode == "callrec":
            plans = [StreamPlan(channel, PCMA, remote_address="127.0.0.1") for channel in (0, 1)]
            session = MediaSession(plans, spool_dir=spool_dir, rtp_timeout_s=600)
            await session.start("127.0.0.1")
            sessions.append(session)
            ports += [session.ports[0], session.ports[1]]
        else:
            for _channel in (0, 1):
                transport, protocol = await loop.create_datagram_endpoint(
                    _Counting, local_addr=("127.0.0.1", 0)
                )
                counters.append(protocol)
                ports.append(transport.get_extra_info("sockname")[1])
    print(json.dumps({"ports": ports}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    cpu_before, started = _cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    received = decoded = lost = 0
    if mode == "callrec":
        for session in sessions:
            for counter in session.counters().values():
                received += counter.datagrams
                decoded += counter.decoded
                lost += counter.lost
    else:
        received = decoded = sum(counter.datagrams for counter in counters)
    cpu = _cpu_s() - cpu_before
    busy_rss = _rss_kb()
    for session in sessions:
        await session.discard()
    print(
        json.dumps(
            {
                "received": received,
                "decoded": decoded,
                "lost": lost,
                "cpu_s": cpu,
                "wall_s": time.monotonic() - started,
                "rss_per_call_kb": (busy_rss - idle_rss) / calls,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])))
