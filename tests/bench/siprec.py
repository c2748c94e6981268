"""SIPREC capacity: concurrent two-party G.711 calls received on this machine, by
callrec's media path against a bare asyncio UDP receiver in the same run.

A sender process plays every call's two streams in real time (50 packets a second each,
160 bytes of A-law); the receiver (tests/bench/siprec_receiver.py) runs alone in its own
process, so its CPU time and resident memory are its own. Reported per call: CPU (ms of
CPU per second of call), packets the receiver failed to take (sent, not decoded: loss
the server introduced on loopback, where the network loses nothing), and memory.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time

PACKET_S = 0.02
PAYLOAD = bytes(160)


async def _send(ports: list[int], seconds: float) -> int:
    """Every port gets an RTP packet each 20 ms for ``seconds``; the number sent."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    sent, started = 0, loop.time()
    ticks = int(seconds / PACKET_S)
    try:
        for tick in range(ticks):
            header = bytes([0x80, 8]) + (tick & 0xFFFF).to_bytes(2, "big")
            stamp = (tick * 160).to_bytes(4, "big")
            for index, port in enumerate(ports):
                transport.sendto(
                    header + stamp + index.to_bytes(4, "big") + PAYLOAD, ("127.0.0.1", port)
                )
                sent += 1
            await asyncio.sleep(max(0.0, started + (tick + 1) * PACKET_S - loop.time()))
    finally:
        transport.close()
    return sent


def measure(mode: str, calls: int, seconds: float) -> dict[str, float]:
    """One receiver process of ``mode`` with ``calls`` calls for ``seconds``."""
    with tempfile.TemporaryDirectory(prefix="siprec-bench-") as spool:
        receiver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bench.siprec_receiver",
                mode,
                str(calls),
                str(seconds + 1.0),
                spool,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert receiver.stdin is not None
        assert receiver.stdout is not None
        ports = json.loads(receiver.stdout.readline())["ports"]
        receiver.stdin.write("go\n")
        receiver.stdin.flush()
        time.sleep(0.2)
        sent = asyncio.run(_send(ports, seconds))
        result: dict[str, float] = json.loads(receiver.stdout.readline())
        receiver.wait(timeout=60)
    result["sent"] = sent
    return result


def siprec_rows(quick: bool) -> list[list[str]]:
    """Rows: calls, CPU per call (ours, bare, ratio), loss (ours, bare), memory per call."""
    seconds = 3.0 if quick else 10.0
    rows = []
    for calls in (10, 50, 100):
        ours, bare = measure("callrec", calls, seconds), measure("bare", calls, seconds)
        # CPU over the calls' own length: the receiver's extra second is idle.
        per_call = [1000 * r["cpu_s"] / seconds / calls for r in (ours, bare)]
        loss = [1 - r["decoded"] / r["sent"] for r in (ours, bare)]
        rows.append(
            [
                str(calls),
                f"{per_call[0]:.2f} ms/s",
                f"{per_call[1]:.2f} ms/s",
                f"{per_call[0] / per_call[1]:.1f}x",
                f"{100 * loss[0]:.2f}% ({int(ours['lost'])} counted lost)",
                f"{100 * loss[1]:.2f}%",
                f"{ours['rss_per_call_kb'] / 1024:.2f} MiB",
                f"{bare['rss_per_call_kb'] / 1024:.2f} MiB",
            ]
        )
    return rows
