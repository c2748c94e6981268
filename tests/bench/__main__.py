"""Run the benchmark: ``make bench`` (or ``python -m tests.bench [--quick]``).

Every figure is a ratio against a baseline measured in the same run on the same machine:
ingest against writing the same bytes to disk with fsync, segment encryption against a
plain AES-GCM loop, concurrent pushes against concurrent fsynced writes. The server runs
as a real ``callrec serve`` process on the embedded default; its peak RSS is read from
/proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.crypto.encryptor import SegmentEncryptor
from storage.crypto.format import SEGMENT_PLAINTEXT, new_data_key
from tests.bench.acknowledge import acknowledgement_rows
from tests.bench.bombs import bomb_rows, measure_bombs
from tests.bench.flood import flood_rows
from tests.bench.integrity import measure_scrub
from tests.bench.keys import measure_rewrap
from tests.bench.media import (
    CANDIDATES,
    encode_candidate,
    ffmpeg_available,
    ffmpeg_seconds,
    healthz_latencies,
    probe_seconds,
    rendition_seconds,
    spool_file,
    worker_peak_memory,
    write_call_audio,
)
from tests.bench.playback import (
    audio_url,
    percentile,
    plain_file_server,
    range_latencies,
    start_moto,
    sustained_players,
)
from tests.bench.reliability import run_reliability
from tests.bench.retention import measure_sweep, retention_rows
from tests.bench.servers import (
    CHUNK,
    SECRET,
    make_push,
    send,
    send_for_id,
    server,
    write_with_fsync,
)
from tests.bench.siprec import siprec_rows
from tests.bench.workload import (
    PushFile,
    seconds_for_bytes,
    tone_second,
    wav_header,
    write_push_of_file,
)

PARTS = frozenset(
    {
        "acknowledge",
        "bombs",
        "flood",
        "ingest",
        "integrity",
        "keys",
        "media",
        "playback",
        "reliability",
        "retention",
        "siprec",
    }
)


async def measure_ingest(
    root: Path, label: str, seconds: int, rate: int, channels: int, repetitions: int
) -> dict[str, float]:
    """Median ingest time and disk baseline for one recording size, and the server's peak RSS.

    One server takes every repetition after a small warm-up push, so first-request costs
    (lazy imports, statement caches) are not counted as ingest.
    """
    ingest: list[float] = []
    baseline: list[float] = []
    size = 0
    with server(root, f"server-{label}") as running:
        idle = running.memory_mb("VmHWM")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            warm_up = make_push(root, f"{label}-warm-up-{time.time_ns()}", 5, rate, channels)
            await send(session, running.url, warm_up)
            warm_up.path.unlink()
            for rep in range(repetitions):
                push = make_push(root, f"{label}-{rep}-{time.time_ns()}", seconds, rate, channels)
                size = push.size
                baseline.append(write_with_fsync(push.path, root / "baseline.bin"))
                ingest.append(await send(session, running.url, push))
                push.path.unlink()
        peak = running.memory_mb("VmHWM")
    return {
        "bytes": size,
        "ingest_s": statistics.median(ingest),
        "baseline_s": statistics.median(baseline),
        "peak_rss_mb": peak,
        "idle_rss_mb": idle,
    }


def measure_encryption(total: int, repetitions: int) -> dict[str, float]:
    """SegmentEncryptor fed 1 MiB pieces (as the spool feeds it) vs a bare AES-GCM loop."""
    data = os.urandom(CHUNK)
    pieces = total // CHUNK

    def ours() -> float:
        encryptor = SegmentEncryptor(new_data_key(), uuid.uuid4())
        started = time.perf_counter()
        for _ in range(pieces):
            encryptor.update_view(data)
        encryptor.finalize()
        return time.perf_counter() - started

    def plain() -> float:
        aead = AESGCM(new_data_key())
        view = memoryview(data)
        aad = bytes(96)
        started = time.perf_counter()
        counter = 0
        for _ in range(pieces):
            for offset in range(0, CHUNK, SEGMENT_PLAINTEXT):
                nonce = counter.to_bytes(12, "big")
                aead.encrypt(nonce, view[offset : offset + SEGMENT_PLAINTEXT], aad)
                counter += 1
        return time.perf_counter() - started

    ours_s = statistics.median(ours() for _ in range(repetitions))
    plain_s = statistics.median(plain() for _ in range(repetitions))
    return {"bytes": pieces * CHUNK, "ours_s": ours_s, "plain_s": plain_s}


async def measure_concurrency(
    root: Path, seconds: int, pushes: int, senders: int
) -> dict[str, float]:
    """Acknowledged pushes per second with ``senders`` concurrent clients, vs fsynced writes."""
    bodies = [make_push(root, f"c-{n}-{time.time_ns()}", seconds, 8000, 1) for n in range(pushes)]

    def baseline_one(push: PushFile) -> float:
        return write_with_fsync(push.path, push.path.with_suffix(".copy"))

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(baseline_one, bodies))
    baseline_s = time.perf_counter() - started

    with server(root, "server-concurrency") as running:
        queue: asyncio.Queue[PushFile] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        connector = aiohttp.TCPConnector(limit=senders)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=600)
        ) as session:

            async def sender() -> None:
                while not queue.empty():
                    await send(session, running.url, queue.get_nowait())

            started = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(senders)))
            ingest_s = time.perf_counter() - started
        peak = running.memory_mb("VmHWM")
    for body in bodies:
        body.path.unlink()
    return {
        "pushes": pushes,
        "bytes_each": bodies[0].size,
        "ingest_s": ingest_s,
        "baseline_s": baseline_s,
        "peak_rss_mb": peak,
    }


async def measure_playback(root: Path, quick: bool) -> list[list[str]]:
    """Rows for the playback table: range latency per backend and sustained players."""
    seconds = 60 if quick else 3600
    requests = 50 if quick else 200
    second = tone_second(8000, 1)
    plain = root / "plain.wav"
    plain.write_bytes(wav_header(len(second) * seconds, 8000, 1) + second * seconds)
    size = plain.stat().st_size
    offset = size // 2
    rows: list[list[str]] = []
    with plain_file_server(plain) as plain_url:
        async with aiohttp.ClientSession() as session:
            await range_latencies(session, plain_url, {}, offset, 10)
            base_first, base_whole = await range_latencies(session, plain_url, {}, offset, requests)
    base_p50 = statistics.median(base_whole)
    rows.append(
        [
            "64 KiB range, middle of the hour's WAV: plain file, aiohttp FileResponse (baseline)",
            f"TTFB p50 {statistics.median(base_first) * 1000:.2f} ms",
            f"p50 {base_p50 * 1000:.2f} ms, p99 {percentile(base_whole, 0.99) * 1000:.2f} ms",
            "1.00x",
            "-",
        ]
    )
    endpoint, moto = start_moto()
    try:
        for backend, env in (
            ("filesystem", {}),
            (
                "S3 (moto)",
                {"CALLREC_STORE_URL": "s3://bench/play", "AWS_ENDPOINT_URL_S3": endpoint},
            ),
        ):
            with server(root, f"server-play-{len(rows)}", env) as running:
                async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=600)
                ) as session:
                    push = make_push(root, f"play-{len(rows)}-{time.time_ns()}", seconds, 8000, 1)
                    _, rid = await send_for_id(session, running.url, push)
                    push.path.unlink()
                    url, token = await audio_url(session, running.url, running.env, rid)
                    auth = {"Authorization": f"Bearer {token}"}
                    # The playback rendition (Opus), much smaller than the WAV: its middle.
                    async with session.head(url, headers=auth) as head:
                        served = int(head.headers["Content-Length"])
                    middle = served // 2
                    await range_latencies(session, url, auth, middle, 10)
                    first, whole = await range_latencies(session, url, auth, middle, requests)
                p50 = statistics.median(whole)
                rows.append(
                    [
                        f"64 KiB range, middle of the hour's rendition ({served / 1e6:.1f} MB): "
                        f"callrec, {backend} store",
                        f"TTFB p50 {statistics.median(first) * 1000:.2f} ms",
                        f"p50 {p50 * 1000:.2f} ms, p99 {percentile(whole, 0.99) * 1000:.2f} ms",
                        f"{p50 / base_p50:.2f}x",
                        "<= 3x",
                    ]
                )
                if backend != "filesystem":
                    rows.append(raw_s3_row(endpoint, middle, requests, p50))
                if backend == "filesystem":
                    levels = [10, 20] if quick else [50, 100, 200, 400]
                    sustained = await sustained_players(
                        url, auth, served, 16000, levels, 4.0 if quick else 8.0
                    )
    finally:
        moto.stop()  # type: ignore[attr-defined]
    for players, p99 in sustained:
        rows.append(
            [
                f"{players} concurrent players (64 KiB every 4 s each, 8x what 1x playback of "
                "the rendition needs), filesystem",
                f"chunk p99 {p99 * 1000:.1f} ms",
                "-",
                "-",
                "p99 < 100 ms",
            ]
        )
    return rows


def raw_s3_row(endpoint: str, offset: int, requests: int, callrec_p50: float) -> list[str]:
    """The S3 server's own cost: the same 64 KiB ranged GET straight from boto3."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    # The rendition: the smaller of the recording's two objects.
    listed = client.list_objects_v2(Bucket="bench", Prefix="play/")["Contents"]
    key = min(listed, key=lambda item: item["Size"])["Key"]
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get_object(
            Bucket="bench", Key=key, Range=f"bytes={offset}-{offset + 64 * 1024 - 1}"
        )["Body"].read()
        took.append(time.perf_counter() - started)
    client.close()
    raw_p50 = statistics.median(took)
    return [
        "64 KiB ranged GET of the same object straight from the S3 server (boto3)",
        "-",
        f"p50 {raw_p50 * 1000:.2f} ms, p99 {percentile(took, 0.99) * 1000:.2f} ms",
        f"callrec over S3 is {callrec_p50 / raw_p50:.2f}x this",
        "-",
    ]


def mb_s(size: float, seconds: float) -> str:
    return f"{size / seconds / 1e6:,.0f} MB/s"


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def ingest_row(label: str, result: dict[str, float]) -> None:
    size, ours, base = result["bytes"], result["ingest_s"], result["baseline_s"]
    row(
        label,
        f"{ours:.2f} s ({mb_s(size, ours)})",
        f"write + fsync {base:.2f} s ({mb_s(size, base)})",
        f"{base / ours:.2f}x",
        "measured (the rendition bounds it: see the media table)",
    )


async def run(quick: bool, parts: set[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="callrec-bench-"))
    print(f"# callrec benchmark ({'quick' if quick else 'full'})\n")
    chosen = "" if parts == PARTS else "".join(f" --part {part}" for part in sorted(parts))
    command = f"python -m tests.bench{' --quick' if quick else ''}{chosen}"
    print(f"- command: `{command}` (`make bench` runs every part)")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"- Python {platform.python_version()}; scratch directory on the data disk: {root}\n")
    if "ingest" in parts:
        await run_ingest(root, quick)
    if "acknowledge" in parts:
        print()
        row(
            "what a sender sees at the end of a shift",
            "callrec",
            "baseline (same run)",
            "ratio",
            "goal",
        )
        row("---", "---", "---", "---", "---")
        for cells in await acknowledgement_rows(root, quick):
            row(*cells)
    if "media" in parts:
        print()
        await run_media(root, quick)
    if "siprec" in parts:
        print()
        row(
            "concurrent SIPREC calls (G.711, both streams)",
            "CPU a call: callrec",
            "bare UDP receiver",
            "ratio",
            "not taken by callrec",
            "not taken, bare",
            "memory a call: callrec",
            "bare",
        )
        row(*["---"] * 8)
        for cells in await asyncio.to_thread(siprec_rows, quick):
            row(*cells)
    if "bombs" in parts:
        print()
        await run_bombs(root, quick)
    if "playback" in parts:
        print()
        row("playback measurement", "first byte", "whole response", "ratio to baseline", "goal")
        row("---", "---", "---", "---", "---")
        for cells in await measure_playback(root, quick):
            row(*cells)
    if "retention" in parts:
        print()
        await run_retention(root, quick)
    if "integrity" in parts:
        print()
        await run_integrity(quick)
    if "keys" in parts:
        print()
        await run_keys(quick)
    if "flood" in parts:
        print()
        row(
            "slow-upload flood (from the PBX's own address)",
            "genuine succeeded / failed",
            "on the first try",
            "time to success",
            "flood connections ended",
        )
        row("---", "---", "---", "---", "---")
        for cells in await flood_rows(quick):
            row(*cells)
    if "reliability" in parts:
        print()
        await run_reliability(quick)
    shutil.rmtree(root, ignore_errors=True)


async def run_media(root: Path, quick: bool) -> None:
    """Probe and rendition against ffmpeg, worker memory, event-loop latency under load."""
    if not ffmpeg_available():
        raise SystemExit("the media benchmark compares with ffmpeg: apt-get install ffmpeg")
    minutes = 5 if quick else 60
    seconds = minutes * 60
    reps = 1 if quick else 3
    row("media measurement", "callrec", "baseline (same run)", "ratio", "goal")
    row("---", "---", "---", "---", "---")
    files: dict[str, Path] = {}
    # (a), (b), (c) of the check's goal; the rendition is measured for the first and last.
    for label, channels, codec, rendered in (
        ("8 kHz mono mu-law WAV", 1, "pcm_mulaw", True),
        ("8 kHz mono PCM WAV", 1, "pcm_s16le", False),
        ("8 kHz two-channel PCM WAV", 2, "pcm_s16le", True),
    ):
        source = root / f"{codec}-{channels}.wav"
        write_call_audio(source, seconds=seconds, channels=channels, codec=codec)
        spool = await spool_file(source, root / "spool")
        probes, null_decodes, ours, theirs = [], [], [], []
        for _ in range(reps):
            probes.append(probe_seconds(spool))
            null_decodes.append(ffmpeg_null_decode(source))
            if rendered:
                took, size = rendition_seconds(spool, root)
                ours.append(took)
                took_cli, size_cli = ffmpeg_seconds(source, channels, root)
                theirs.append(took_cli)
        await spool.discard()
        probe, null_decode = statistics.median(probes), statistics.median(null_decodes)
        row(
            f"probe (decode all, check, peaks) of {minutes}-min {label}, median of {reps}",
            f"{probe:.2f} s ({seconds / probe:,.0f}x realtime)",
            f"`ffmpeg -i in.wav -f null -`: {null_decode:.2f} s",
            f"ours / ffmpeg: {probe / null_decode:.2f}x",
            "<= 3x of ffmpeg -f null",
        )
        if not rendered:
            source.unlink()
            continue
        files[label] = source
        mine, cli = statistics.median(ours), statistics.median(theirs)
        row(
            f"rendition (Opus {channels * 16} kbit/s in WebM, from the encrypted spool, "
            f"encrypted out) of {minutes}-min {label}, median of {reps}",
            f"{mine:.2f} s ({seconds / mine:,.0f}x realtime, {size * 8 / seconds / 1000:.1f} "
            "kbit/s)",
            f"ffmpeg CLI, same codec and options, file to file: {cli:.2f} s "
            f"({size_cli * 8 / seconds / 1000:.1f} kbit/s)",
            f"{cli / mine:.2f}x",
            ">= 0.9x",
        )
    mono = files["8 kHz mono mu-law WAV"]
    timings = {
        name: encode_candidate(mono, root / f"candidate.{fmt}", fmt, codec, bits)
        for name, fmt, codec, bits in CANDIDATES
    }
    chosen = timings[CANDIDATES[0][0]][0]
    for name, (took, size) in timings.items():
        row(
            f"rendition candidate: {name}, PyAV, {minutes}-min mono",
            f"{took:.2f} s, {size / minutes / 1000:.0f} KB per minute",
            f"Opus in WebM: {chosen:.2f} s",
            f"{chosen / took:.2f}x",
            "evidence for the choice",
        )
    await run_media_memory(root, minutes)
    await run_media_latency(root, files, seconds)


def ffmpeg_null_decode(source: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(source), "-f", "null", "-"],
        check=True,
    )
    return time.perf_counter() - started


async def run_media_memory(root: Path, minutes: int) -> None:
    """The worker's peak memory for one length of call and for twice that length."""
    peaks: dict[int, float] = {}
    for length in (minutes, 2 * minutes):
        source = root / f"memory-{length}.wav"
        write_call_audio(source, seconds=length * 60, channels=2, codec="pcm_s16le")
        spool = await spool_file(source, root / "spool")
        source.unlink()
        _, peaks[length] = worker_peak_memory(spool, root)
        await spool.discard()
    row(
        f"worker peak RSS, {2 * minutes}-min two-channel call",
        f"{peaks[2 * minutes]:.0f} MB",
        f"{minutes}-min call: {peaks[minutes]:.0f} MB",
        f"{peaks[2 * minutes] / peaks[minutes]:.2f}x",
        "flat (~1.0x)",
    )


async def run_media_latency(root: Path, files: dict[str, Path], seconds: int) -> None:
    """``/healthz`` while four long recordings are received and processed at once."""
    sources = [path for path in files.values() for _ in range(2)]
    pushes = [
        write_push_of_file(
            root / f"long-{n}.body",
            source,
            recording_id=f"long-{n}-{time.time_ns()}",
            seconds=seconds,
            secret=SECRET.encode(),
            timestamp=int(time.time()),
        )
        for n, source in enumerate(sources)
    ]
    with server(root, "server-media") as running:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
            idle_done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(3.0, idle_done.set_result, None)
            idle = await healthz_latencies(session, running.url, idle_done)
            started = time.perf_counter()
            work = asyncio.ensure_future(
                asyncio.gather(*(send(session, running.url, push) for push in pushes))
            )
            busy = await healthz_latencies(session, running.url, work)
            await work
            took = time.perf_counter() - started
        peak = running.memory_mb("VmHWM")
    for push in pushes:
        push.path.unlink()
    row(
        f"/healthz while 4 x {seconds // 60}-min recordings (2 mono, 2 two-channel) are "
        f"received and processed ({took:.0f} s for all four), {len(busy)} requests",
        f"p50 {percentile(busy, 0.5) * 1000:.1f} ms, p99 {percentile(busy, 0.99) * 1000:.1f} ms, "
        f"max {max(busy) * 1000:.1f} ms",
        f"idle server: p50 {percentile(idle, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(idle, 0.99) * 1000:.1f} ms",
        f"{percentile(busy, 0.99) / percentile(idle, 0.99):.1f}x",
        "p99 < 50 ms",
    )
    row("server peak RSS during the four (workers not included)", f"{peak:.0f} MB", "-", "-", "-")


async def run_bombs(root: Path, quick: bool) -> None:
    """Decompression bombs against one media worker, and the ordinary push behind each."""
    row("bomb measurement", "callrec", "baseline (same run)", "ratio", "goal")
    row("---", "---", "---", "---", "---")
    with server(root, "server-bombs", {"CALLREC_MEDIA_WORKERS": "1"}) as running:
        alone, figures = await measure_bombs(
            root,
            running.url,
            SECRET.encode(),
            lambda name: make_push(root, f"{name}-{time.time_ns()}", 60, 8000, 1),
            1 if quick else 3,
        )
    for cells in bomb_rows(alone, figures):
        row(*cells)


async def run_integrity(quick: bool) -> None:
    """The integrity scrub against plain decryption of the same bytes, on both stores."""
    objects, size = (20, 4 * 1024 * 1024) if quick else (100, 8 * 1024 * 1024)
    row("integrity measurement", "callrec", "baseline (same run)", "ratio", "goal")
    row("---", "---", "---", "---", "---")
    endpoint, moto = start_moto()
    try:
        for label, s3 in (("filesystem", None), ("S3, moto server", endpoint)):
            figures = await measure_scrub(objects, size, s3)
            row(
                f"scrub of {objects} objects of {size >> 20} MiB ({label}, SQLite): read, "
                "authenticate, hash, compare",
                mb_s(figures.plaintext_bytes, figures.scrub_s),
                "read and authenticate the same objects, nothing else: "
                + mb_s(figures.plaintext_bytes, figures.plain_s),
                f"{figures.plain_s / figures.scrub_s:.2f}x",
                "measured",
            )
    finally:
        moto.stop()  # type: ignore[attr-defined]


async def run_keys(quick: bool) -> None:
    """Re-wrapping every data key after a rotation, against the database work alone."""
    count = 5_000 if quick else 100_000
    figures = await measure_rewrap(count)
    row("key measurement", "callrec", "baseline (same run)", "ratio", "goal")
    row("---", "---", "---", "---", "---")
    row(
        f"`keys rewrap` of {count:,} data keys (PostgreSQL, local keyring, batches of 500)",
        f"{count / figures.rewrap_s:,.0f} keys/s ({figures.rewrap_s:.1f} s)",
        "the same batches read and written back unchanged: "
        f"{count / figures.baseline_s:,.0f} keys/s ({figures.baseline_s:.1f} s)",
        f"{figures.baseline_s / figures.rewrap_s:.2f}x",
        "measured",
    )


async def run_retention(root: Path, quick: bool) -> None:
    """Sweeps of a small and a large number due, on both stores: rate and flat memory."""
    sizes = (1_000, 5_000) if quick else (10_000, 100_000)
    row("retention measurement", "callrec", "baseline (same run)", "ratio", "goal")
    row("---", "---", "---", "---", "---")
    results = []
    endpoint, moto = start_moto()
    try:
        for count in sizes:
            results.append(("filesystem", await measure_sweep(root, count, "filesystem")))
            results.append(("S3 (moto server)", await measure_sweep(root, count, "s3", endpoint)))
    finally:
        moto.stop()  # type: ignore[attr-defined]
    for cells in retention_rows(results):
        row(*cells)


async def run_ingest(root: Path, quick: bool) -> None:
    """Push ingest, encryption and concurrency against their same-run baselines."""
    hour = 60 if quick else 3600
    big = (64 if quick else 1024) * 1024 * 1024
    reps = 1 if quick else 3
    row("measurement", "callrec", "baseline (same run)", "ratio", "goal")
    row("---", "---", "---", "---", "---")

    hour_result = await measure_ingest(root, "hour", hour, 8000, 1, reps)
    ingest_row(
        f"push ingest (received, decoded, rendered, stored), {hour // 60}-minute 8 kHz mono WAV "
        f"({hour_result['bytes'] / 1e6:.1f} MB), median of {reps}",
        hour_result,
    )
    big_reps = 1 if quick else 2
    big_result = await measure_ingest(
        root, "big", seconds_for_bytes(big, 48000, 2), 48000, 2, big_reps
    )
    ingest_row(
        f"push ingest, {big_result['bytes'] / 2**30:.2f} GiB 48 kHz stereo WAV (93 minutes), "
        f"median of {big_reps}",
        big_result,
    )
    crypto = measure_encryption((64 if quick else 256) * CHUNK, 3 if quick else 5)
    row(
        f"segment encryption, {int(crypto['bytes']) >> 20} MiB fed 1 MiB at a time",
        mb_s(crypto["bytes"], crypto["ours_s"]),
        f"plain AESGCM loop, 64 KiB segments: {mb_s(crypto['bytes'], crypto['plain_s'])}",
        f"{crypto['plain_s'] / crypto['ours_s']:.2f}x",
        ">= 0.9x",
    )
    concurrency = await measure_concurrency(root, 60 if quick else 600, 16 if quick else 64, 16)
    rate = concurrency["pushes"] / concurrency["ingest_s"]
    base_rate = concurrency["pushes"] / concurrency["baseline_s"]
    row(
        f"acknowledged pushes/s, {int(concurrency['pushes'])} pushes of "
        f"{concurrency['bytes_each'] / 1e6:.1f} MB, 16 concurrent senders",
        f"{rate:.1f}/s",
        f"16 threads write + fsync the same bodies: {base_rate:.1f}/s",
        f"{rate / base_rate:.2f}x",
        "measured",
    )
    row(
        f"server peak RSS while ingesting the {big_result['bytes'] / 2**30:.2f} GiB upload",
        f"{big_result['peak_rss_mb']:.0f} MB",
        f"idle server after start-up: {big_result['idle_rss_mb']:.0f} MB",
        "-",
        "< 150 MB",
    )
    row(
        "server peak RSS during the concurrent pushes",
        f"{concurrency['peak_rss_mb']:.0f} MB",
        "-",
        "-",
        "-",
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--part",
        action="append",
        choices=sorted(PARTS),
        help="run only this part (repeatable); all parts by default",
    )
    arguments = parser.parse_args()
    asyncio.run(run(arguments.quick, set(arguments.part or PARTS)))


main()
