"""What a sender sees at the end of a shift: many long calls pushed at the same moment.

Measured on a real ``callrec serve`` (embedded default, its default workers):

- eight senders each push a 30-minute 8 kHz mono call at once: each one's time from its
  last byte sent to its acknowledgement, against writing and fsyncing the same eight
  files at once in the same run, and against the hashing and encryption every byte
  needs, done alone on the same cores (what bounds ingest when the disk is fast);
- one hour-long push: its acknowledgement after the last byte;
- the rendition backlog those leave, drained: audio hours rendered per core-hour (from
  the service's own counter of the media workers' CPU seconds), against the ffmpeg
  command line's CPU seconds for the same encode of the same audio in the same run. CPU
  on both sides, because the rendition workers run niced beneath the captures: their
  wall time counts the waits the burst imposes on them, not what an encode costs;
- ``/healthz`` latency, probed every 20 ms from a connection of its own, throughout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from storage.crypto.encryptor import SegmentEncryptor
from storage.crypto.format import new_data_key
from tests.bench.media import ffmpeg_run, write_call_audio
from tests.bench.playback import percentile
from tests.bench.servers import CHUNK, SECRET, server, write_with_fsync
from tests.bench.workload import PushFile, write_push_of_file

SENDERS = 8
PROBE_EVERY_S = 0.02
BASELINE_ROUNDS = 3


async def timed_push(
    session: aiohttp.ClientSession, url: str, push: PushFile
) -> tuple[float, float]:
    """Push streamed from disk: (seconds from its last byte sent to the 201, whole seconds)."""
    sent: list[float] = []

    async def body() -> AsyncIterator[bytes]:
        with push.path.open("rb") as reader:
            while chunk := reader.read(CHUNK):
                yield chunk
        sent.append(time.perf_counter())

    started = time.perf_counter()
    async with session.post(
        f"{url}/webhooks/push/bench",
        data=body(),
        headers=push.headers | {"Content-Length": str(push.size)},
    ) as response:
        answer = await response.text()
        acknowledged = time.perf_counter()
    if response.status != 201:
        raise RuntimeError(f"push answered {response.status}: {answer}")
    return acknowledged - sent[0], acknowledged - started


async def probe_healthz(url: str, stop: asyncio.Event) -> list[float]:
    """``/healthz`` every PROBE_EVERY_S on a connection of its own until ``stop``."""
    took: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(f"{url}/healthz") as response:
                await response.read()
            took.append(time.perf_counter() - started)
            await asyncio.sleep(PROBE_EVERY_S)
    return took


async def rendition_counters(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The service's rendition gauges and counters, from /metrics."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "callrec_rendition_jobs":
                found[sample.labels["state"]] = sample.value
            elif sample.name.startswith("callrec_renditions_"):
                found[sample.name] = sample.value
    return found


async def drained(session: aiohttp.ClientSession, url: str, limit_s: float) -> dict[str, float]:
    """Wait until no rendition is queued or running; the counters then."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        counters = await rendition_counters(session, url)
        if not counters.get("queued") and not counters.get("running"):
            return counters
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the rendition backlog did not drain within {limit_s:.0f} s")


def pushes_of(root: Path, audio: Path, seconds: int, count: int, label: str) -> list[PushFile]:
    return [
        write_push_of_file(
            root / f"{label}-{n}.body",
            audio,
            recording_id=f"{label}-{n}-{time.time_ns()}",
            seconds=seconds,
            secret=SECRET.encode(),
            timestamp=int(time.time()),
        )
        for n in range(count)
    ]


def baseline(pushes: list[PushFile]) -> list[float]:
    """The disk's own time for the same bytes: the middle one of BASELINE_ROUNDS rounds
    of ``baseline_writes``, as one round's fsyncs vary twofold with what the page cache
    is flushing at the time."""
    rounds = sorted(
        (baseline_writes(pushes) for _ in range(BASELINE_ROUNDS)), key=statistics.median
    )
    return rounds[BASELINE_ROUNDS // 2]


def baseline_writes(pushes: list[PushFile]) -> list[float]:
    """Each file written and fsynced, all at once: the disk's own time for the same bytes."""
    with ThreadPoolExecutor(len(pushes)) as pool:
        return list(
            pool.map(lambda p: write_with_fsync(p.path, p.path.with_suffix(".copy")), pushes)
        )


def protocol_floor(pushes: list[PushFile], threads: int = 2) -> float:
    """Seconds for the work every byte of a push needs, with no network, disk or parsing:
    the body's HMAC-SHA256 (the push signature), and the SHA-256 and AES-GCM segments of
    the same bytes, the eight bodies on ``threads`` threads (the machine's cores). What
    ingest cannot go below on this machine, whatever the disk does."""

    def one(push: PushFile) -> None:
        mac = hmac.new(SECRET.encode(), b"", hashlib.sha256)
        digest = hashlib.sha256()
        encryptor = SegmentEncryptor(new_data_key(), uuid.uuid4())
        with push.path.open("rb") as reader:
            while chunk := reader.read(CHUNK):
                mac.update(chunk)
                digest.update(chunk)
                encryptor.update_view(chunk)
        encryptor.finalize()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, pushes))
    return time.perf_counter() - started


async def acknowledgement_rows(root: Path, quick: bool) -> list[list[str]]:
    """Rows for the table: the burst, the hour, the backlog drained, /healthz throughout."""
    burst_s, hour_s = (180, 360) if quick else (1800, 3600)
    call = root / "burst-call.wav"
    write_call_audio(call, seconds=burst_s, channels=1, codec="pcm_s16le")
    hour = root / "hour-call.wav"
    write_call_audio(hour, seconds=hour_s, channels=1, codec="pcm_s16le")
    burst = pushes_of(root, call, burst_s, SENDERS, "burst")
    (long_push,) = pushes_of(root, hour, hour_s, 1, "hour")
    disk = baseline(burst)
    floor = protocol_floor(burst)
    cli_wall_s, cli_cpu_s, _ = ffmpeg_run(call, 1, root)
    with server(root, "server-acknowledge") as running:
        stop = asyncio.Event()
        probing = asyncio.create_task(probe_healthz(running.url, stop))
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=SENDERS + 2),
            timeout=aiohttp.ClientTimeout(total=1800),
        ) as session:
            answers = await asyncio.gather(*(timed_push(session, running.url, p) for p in burst))
            await drained(session, running.url, 1800)
            after_last_byte, whole = await timed_push(session, running.url, long_push)
            counters = await drained(session, running.url, 1800)
        stop.set()
        healthz = await probing
    for push in [*burst, long_push]:
        push.path.unlink()
    waits = sorted(answer[0] for answer in answers)
    ingest = statistics.median(answer[1] for answer in answers)
    rendered_h = counters["callrec_renditions_audio_seconds_total"] / 3600
    busy_h = counters["callrec_renditions_busy_seconds_total"] / 3600
    cpu_h = counters["callrec_renditions_cpu_seconds_total"] / 3600
    cli_rate = burst_s / cli_cpu_s
    minutes = burst_s // 60
    return [
        [
            f"{SENDERS} senders push a {minutes}-min 8 kHz mono call at once: last byte to "
            "acknowledgement, min / median / max",
            f"{waits[0]:.2f} / {statistics.median(waits):.2f} / {waits[-1]:.2f} s",
            f"write + fsync of the same {SENDERS} files at once (middle of "
            f"{BASELINE_ROUNDS} rounds): median "
            f"{statistics.median(disk):.2f} s, max {max(disk):.2f} s",
            f"max {waits[-1]:.2f} s",
            "every one <= 3 s",
        ],
        [
            "the same: each push whole (first byte to acknowledgement), median",
            f"{ingest:.2f} s",
            f"write + fsync, median {statistics.median(disk):.2f} s",
            f"{statistics.median(disk) / ingest:.2f}x",
            ">= 0.25x",
        ],
        [
            "the same, against the work every byte needs: HMAC-SHA256, SHA-256 and AES-GCM "
            f"of the {SENDERS} bodies on 2 threads, no network, disk or parsing",
            f"{ingest:.2f} s",
            f"{floor:.2f} s",
            f"{floor / ingest:.2f}x",
            "measured",
        ],
        [
            f"a {hour_s // 60}-min 8 kHz mono push: last byte to acknowledgement",
            f"{after_last_byte:.2f} s (whole push {whole:.2f} s)",
            "-",
            "-",
            "<= 2 s",
        ],
        [
            f"rendition backlog ({SENDERS} x {minutes} min + {hour_s // 60} min) drained: "
            "audio hours rendered per core-hour",
            f"{rendered_h / cpu_h:,.0f} ({rendered_h:.1f} h of audio in {cpu_h * 3600:.0f} "
            f"CPU seconds; {busy_h * 3600:.0f} s of niced workers' wall time, copy and "
            "store included)",
            f"ffmpeg CLI, same Opus encode of the {minutes}-min call: {cli_rate:,.0f} "
            f"({cli_cpu_s:.2f} CPU s, {cli_wall_s:.2f} s wall)",
            f"{rendered_h / cpu_h / cli_rate:.2f}x",
            ">= 1.0x",
        ],
        [
            f"`/healthz` every {PROBE_EVERY_S * 1000:.0f} ms throughout ({len(healthz)} probes)",
            f"p50 {statistics.median(healthz) * 1000:.1f} ms, "
            f"p99 {percentile(healthz, 0.99) * 1000:.1f} ms",
            "-",
            "-",
            "p99 < 50 ms",
        ],
    ]
