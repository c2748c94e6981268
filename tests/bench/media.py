"""The media benchmark: probing and rendering long telephony files, against the ffmpeg
command line doing the same conversion in the same run; the worker's memory for one and two
hours; and the event loop's latency while four hour-long recordings are processed.

The input is synthetic but shaped like a call: a 425 Hz tone with a noise floor at about
-40 dB for six seconds, then four seconds where the other side speaks (the second channel
of a two-channel file, silence in a mono one), repeated. Written to disk in pieces, never
held whole.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import multiprocessing
import resource
import shutil
import statistics
import subprocess
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import av.audio.stream
import numpy as np

from recorder.media import analyse
from recorder.media_jobs import EncryptedInput, RenderJob
from recorder.rendition import BITS_PER_CHANNEL
from storage import EncryptedFileReader, EncryptedSpool

_PIECE_S = 10


def write_call_audio(path: Path, *, seconds: int, channels: int, codec: str) -> None:
    """A WAV of ``seconds`` of call-shaped audio in ``codec`` (pcm_mulaw, pcm_s16le)."""
    rate = 8000
    layout = "mono" if channels == 1 else "stereo"
    rng = np.random.default_rng(2026)
    t = np.arange(_PIECE_S * rate) / rate
    speaking = t < 6.0
    with av.open(str(path), mode="w", format="wav") as output:
        stream = output.add_stream(codec, rate=rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = layout
        for start in range(0, seconds, _PIECE_S):
            floor = 0.01 * rng.standard_normal((channels, t.size))
            first = np.where(speaking, 0.4 * np.sin(2 * np.pi * 425 * t), 0.0)
            planes = [first + floor[0]]
            if channels == 2:
                planes.append(np.where(speaking, 0.0, 0.4 * np.sin(2 * np.pi * 180 * t)) + floor[1])
            samples = (np.clip(np.stack(planes), -1, 1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16p", layout=layout)
            frame.sample_rate = rate
            frame.pts = start * rate
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)


async def spool_file(source: Path, directory: Path) -> EncryptedSpool:
    """The file as the service holds it after receiving it: an encrypted spool."""
    spool = EncryptedSpool(directory)
    with source.open("rb") as reader:
        while chunk := reader.read(1 << 20):
            await spool.write(chunk)
    await spool.finish()
    return spool


def probe_seconds(spool: EncryptedSpool) -> float:
    """One checking pass (decode everything, peaks), no rendition, from the encrypted spool."""
    started = time.perf_counter()
    with EncryptedFileReader(
        spool.path, spool.data_key, spool.object_id, spool.facts.ciphertext_size
    ) as plain:
        analyse(io.BufferedReader(plain, 256 * 1024), max_channels=2, rendition=None)
    return time.perf_counter() - started


def job_for(spool: EncryptedSpool, scratch: Path) -> RenderJob:
    """The queued rendition job for a spool, as a rendition worker runs it."""
    return RenderJob(
        source=EncryptedInput(
            spool.path, spool.object_id, spool.data_key, spool.facts.ciphertext_size
        ),
        rendition_path=scratch / f"{uuid.uuid4().hex}.rendition",
        rendition_object_id=uuid.uuid4(),
        max_channels=2,
    )


def rendition_seconds(spool: EncryptedSpool, scratch: Path) -> tuple[float, int]:
    """The rendition job's work (decrypt, decode, encode, encrypt): seconds and size."""
    job = job_for(spool, scratch)
    started = time.perf_counter()
    sealed = job.run().sealed
    took = time.perf_counter() - started
    sealed.path.unlink()
    return took, sealed.facts.plaintext_size


def ffmpeg_seconds(source: Path, channels: int, scratch: Path) -> tuple[float, int]:
    """The command line doing the same conversion: same codec, bit rate and options."""
    took, _, size = ffmpeg_run(source, channels, scratch)
    return took, size


def ffmpeg_run(source: Path, channels: int, scratch: Path) -> tuple[float, float, int]:
    """The same conversion by the command line: wall seconds, CPU seconds, output size.

    CPU from the children's rusage, user and system: what the command cost a core.
    """
    target = scratch / "ffmpeg.webm"
    command = [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
        "-c:a", "libopus", "-b:a", str(BITS_PER_CHANNEL * channels),
        "-application", "voip", "-apply_phase_inv", "0", str(target),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    size = target.stat().st_size
    target.unlink()
    return took, cpu, size


def _job_with_peak_memory(job: RenderJob) -> tuple[float, float]:
    """Run in a fresh process: the job's seconds and the process's peak RSS in MB."""
    started = time.perf_counter()
    job.run().sealed.path.unlink()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return time.perf_counter() - started, peak_kb / 1024


def worker_peak_memory(spool: EncryptedSpool, scratch: Path) -> tuple[float, float]:
    """The job in a new worker process, as the service runs it, with its peak memory."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_job_with_peak_memory, job_for(spool, scratch)).result()


async def healthz_latencies(
    session: aiohttp.ClientSession, url: str, until: asyncio.Future[Any], gap_s: float = 0.01
) -> list[float]:
    """``/healthz`` round trips, one every ``gap_s``, until ``until`` is done."""
    took: list[float] = []
    while not until.done():
        started = time.perf_counter()
        async with session.get(f"{url}/healthz") as response:
            await response.read()
        took.append(time.perf_counter() - started)
        await asyncio.sleep(gap_s)
    return took


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def median(values: list[float]) -> float:
    return statistics.median(values)


# The formats weighed for the rendition: what browsers play (see recorder/rendition.py).
CANDIDATES = (
    ("Opus in WebM (chosen)", "webm", "libopus", 16_000),
    ("Opus in Ogg", "ogg", "libopus", 16_000),
    ("MP3 (LAME)", "mp3", "libmp3lame", 32_000),
)


def encode_candidate(
    source: Path, target: Path, container: str, codec: str, bit_rate: int
) -> tuple[float, int]:
    """Plain PyAV, file to file, mono: the encoder's own time and the output's size."""
    started = time.perf_counter()
    with av.open(str(source)) as reader, av.open(str(target), "w", format=container) as writer:
        stream = writer.add_stream(codec, rate=8000 if codec == "libopus" else 16000)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = "mono"
        stream.bit_rate = bit_rate
        if codec == "libopus":
            stream.codec_context.options = {"application": "voip"}
        for frame in reader.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                writer.mux(packet)
        for packet in stream.encode(None):
            writer.mux(packet)
    took = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return took, size
