"""Running the real ``sipp`` (Debian's sip-tester) against the recording server.

Each run copies its scenario from ``sipp/`` into a temporary directory next to the G.711
pcap the test made (sipp resolves ``play_pcap_audio`` beside the scenario), and keeps
sipp's message trace there: the trace is how tests read the status codes and headers the
server answered. Without sipp these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from recorder.siprec.server import SiprecServer
from tests.audio_factory import encode, signal
from tests.fixtures_db import skip_or_fail
from tests.recorder.siprec.rtp_counting_sessions import RtpCountingSessions

# sippy probes for IPv6 with a socket it never closes, once per listener: an unbound
# AF_INET6 datagram socket, which nothing of ours ever is. (Colons separate a filter's
# fields, so "." stands for those in the message.)
SIPPY_SOCKET_LEAK = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <socket.socket fd=\d+, family=10, type=2, proto=0, "
    r"laddr=\('..', 0, 0, 0\)>:pytest.PytestUnraisableExceptionWarning"
)
HOST = "127.0.0.1"
SCENARIOS = Path(__file__).resolve().parent / "sipp"
PCAP_NAME = "tone.pcap"
FRAME_MS = 20
FRAME_BYTES = 160  # 20 ms of 8 kHz G.711
_ENTRY = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+)", re.MULTILINE)


def sipp_binary() -> str:
    """The sipp executable, or skip (fail under CI)."""
    found = shutil.which("sipp")
    if found is None:
        skip_or_fail("sipp is not installed (Debian's sip-tester; make test installs it as root)")
        raise AssertionError("unreachable")
    return found


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody holds right now (bound and released: good enough on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def write_g711_pcap(
    path: Path,
    seconds: float,
    payload_type: int = 8,
    *,
    lost: frozenset[int] = frozenset(),
    swapped: frozenset[int] = frozenset(),
) -> int:
    """Write RTP/G.711 A-law packets of the test signal as a libpcap file; returns the count.

    sipp replays the UDP payloads and rewrites addresses and ports, so the Ethernet/IPv4/
    UDP framing only has to be well-formed. Packets whose index is in ``lost`` are left
    out; a packet in ``swapped`` is sent after the one that follows it (the network
    reordering them). Returns how many packets the file holds.
    """
    alaw = encode("alaw", "pcm_alaw", signal(seconds, 8000, 1), 8000)
    frames = [alaw[i : i + FRAME_BYTES] for i in range(0, len(alaw) - FRAME_BYTES + 1, 160)]
    order = list(range(len(frames)))
    for index in sorted(swapped):
        order[index], order[index + 1] = order[index + 1], order[index]
    # A lost packet leaves its 20 ms empty: the others keep their times on the wire.
    sent = [(slot, index) for slot, index in enumerate(order) if index not in lost]
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for slot, index in sent:
            payload = frames[index]
            marker = 0x80 if index == 0 else 0
            rtp = struct.pack(
                "!BBHII", 0x80, marker | payload_type, index, index * FRAME_BYTES, 0x5EC0DE
            )
            udp_payload = rtp + payload
            udp = struct.pack("!HHHH", 40000, 40000, 8 + len(udp_payload), 0) + udp_payload
            ip = _ipv4_header(len(udp), index) + udp
            frame = b"\x00" * 12 + b"\x08\x00" + ip
            stamp_us = slot * FRAME_MS * 1000
            out.write(
                struct.pack("<IIII", stamp_us // 10**6, stamp_us % 10**6, len(frame), len(frame))
            )
            out.write(frame)
    return len(sent)


def _ipv4_header(payload_length: int, ident: int) -> bytes:
    loopback = bytes([127, 0, 0, 1])
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + payload_length,
        ident & 0xFFFF,
        0,
        64,
        17,
        0,
        loopback,
        loopback,
    )
    words = struct.unpack("!10H", header)
    total = sum(words)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]


@dataclass
class Srs:
    """A running recording server, its media side, and where its SRC's files go."""

    server: SiprecServer
    sessions: RtpCountingSessions
    address: tuple[str, int]
    workdir: Path
    packets_in_pcap: int

    async def run(
        self,
        scenario: str,
        *,
        subdir: str = "",
        local_ip: str = HOST,
        keys: Mapping[str, str] | None = None,
        calls: int = 1,
        transport: str = "u1",
        server: tuple[str, int] | None = None,
    ) -> SippRun:
        """``calls`` sipp calls of ``scenario`` at once against this server.

        ``transport`` is sipp's ``-t`` (``t1``: TCP), ``server`` where sipp connects
        (this server's UDP address unless given).
        """
        return await run_sipp(
            scenario,
            workdir=self.workdir / (subdir or scenario.removesuffix(".xml")),
            server=server or self.address,
            transport=transport,
            pcap=self.workdir / PCAP_NAME,
            local_ip=local_ip,
            keys=keys,
            calls=calls,
        )


@dataclass(frozen=True)
class SippRun:
    """What one sipp run did: its exit code, stderr and the messages it traced."""

    returncode: int
    stderr: str
    messages: str

    def entries(self) -> list[tuple[datetime, str]]:
        """Each traced message with its time, in order."""
        stamps = list(_ENTRY.finditer(self.messages))
        result = []
        for index, match in enumerate(stamps):
            end = stamps[index + 1].start() if index + 1 < len(stamps) else len(self.messages)
            when = datetime.fromisoformat(re.sub(r"\s+", " ", match.group(1)))
            result.append((when, self.messages[match.end() : end]))
        return result

    def received(self) -> list[tuple[datetime, str]]:
        """The messages sipp received (the server's), as (time, text from the start line)."""
        found = []
        for when, text in self.entries():
            head, _, message = text.partition("\n\n")
            if "received" in head:
                found.append((when, message.lstrip()))
        return found

    def sent(self) -> list[tuple[datetime, str]]:
        """The messages sipp sent."""
        found = []
        for when, text in self.entries():
            head, _, message = text.partition("\n\n")
            if "sent" in head:
                found.append((when, message.lstrip()))
        return found

    def responses(self, method: str | None = None) -> list[str]:
        """The server's responses (whole texts), to ``method`` only when given."""
        texts = [text for _, text in self.received() if text.startswith("SIP/2.0 ")]
        if method is None:
            return texts
        return [t for t in texts if re.search(rf"^CSeq:\s*\d+ {method}\s*$", t, re.M | re.I)]

    def final_statuses(self, method: str) -> list[int]:
        """The status codes of the final responses to ``method``."""
        codes = [int(text.split(" ", 2)[1]) for text in self.responses(method)]
        return [code for code in codes if code >= 200]


def header(message: str, name: str) -> str | None:
    """The value of header ``name`` in a traced message, if present."""
    match = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\s*$", message, re.M | re.I)
    return match.group(1) if match else None


def _prepare(workdir: Path, scenario: str, pcap: Path | None) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCENARIOS / scenario, workdir / scenario)
    if pcap is not None:
        shutil.copy(pcap, workdir / PCAP_NAME)


def _read_trace(messages: Path) -> str:
    return messages.read_text(errors="replace") if messages.exists() else ""


async def run_sipp(
    scenario: str,
    *,
    workdir: Path,
    server: tuple[str, int],
    pcap: Path | None = None,
    local_ip: str = HOST,
    keys: Mapping[str, str] | None = None,
    calls: int = 1,
    timeout_s: float = 30.0,
    transport: str = "u1",
) -> SippRun:
    """Run one call of ``scenario`` against ``server``; sipp's own timeout is a failure.

    ``pcap`` is copied beside the scenario as ``tone.pcap`` for ``play_pcap_audio``.
    """
    binary = sipp_binary()
    messages = workdir / f"{scenario}.messages.log"
    await asyncio.to_thread(_prepare, workdir, scenario, pcap)
    command = [
        binary,
        f"{server[0]}:{server[1]}",
        "-sf",
        scenario,
        "-t",
        transport,
        "-i",
        local_ip,
        "-p",
        str(free_udp_port(local_ip)),
        "-mp",
        str(free_udp_port(local_ip)),
        # ``calls`` calls, all started within the first second and all up at once.
        "-m",
        str(calls),
        "-r",
        str(calls),
        "-l",
        str(calls),
        "-nostdin",
        "-timeout",
        f"{int(timeout_s - 5)}s",
        "-timeout_error",
        # A retransmitted or late provisional response must not abort the call: what the
        # server answered is judged from the trace, and a missing answer still times out.
        "-default_behaviors",
        "all,-abortunexp",
        "-trace_msg",
        "-message_file",
        str(messages),
    ]
    for name, value in (keys or {}).items():
        command += ["-key", name, value]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = await asyncio.to_thread(_read_trace, messages)
    return SippRun(process.returncode or 0, stderr.decode(errors="replace"), text)
