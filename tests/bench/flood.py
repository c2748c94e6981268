"""The slow-upload flood: strangers trickling bodies while a PBX pushes its recordings.

One real `callrec serve` (embedded default, default slot budgets) takes N flood connections
from the PBX's own address (each trickles a byte every half second under a garbage
signature, and reconnects half a second after it is cut or refused), and M genuine pushes
sent one after another the way docs/push.md's sender sends them: on a 503 or 408, again
after Retry-After (5 attempts at most). Counted, never asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from recorder import sign_preauth
from tests.flood_support import SlowFlood
from tests.push_support import SECRET, make_wav, metadata, push_body, push_headers
from tests.serve_support import start_serve

ATTEMPTS = 5
RETRY_STATUSES = frozenset({408, 503})


@dataclass(frozen=True)
class FloodFigures:
    """What became of the genuine pushes under one flood."""

    slow_connections: int
    genuine: int
    succeeded: int
    failed: int
    first_try: int
    seconds_to_success: list[float]
    flood_answers: dict[str, int]


async def _genuine_push(
    session: aiohttp.ClientSession, url: str, recording_id: str, *, preauth: bool
) -> tuple[bool, int, float]:
    """(stored, attempts, seconds until stored or given up) for one push with retries."""
    body = push_body(metadata(recording_id=recording_id), make_wav(10))
    started = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        headers = push_headers(body)
        if preauth:
            when = int(headers["X-Callrec-Timestamp"])
            headers["X-Callrec-Preauth"] = sign_preauth(SECRET.encode(), when, len(body), "pbx")
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status in (200, 201):
                return True, attempt, time.monotonic() - started
            if response.status not in RETRY_STATUSES:
                return False, attempt, time.monotonic() - started
            wait = response.headers.get("Retry-After", "5")
        if attempt < ATTEMPTS:
            await asyncio.sleep(float(wait) if wait.isdigit() else 5.0)
    return False, ATTEMPTS, time.monotonic() - started


async def measure_flood(
    root: Path, *, slow: int, genuine: int, preauth: bool, label: str
) -> FloodFigures:
    served = await start_serve(root / f"flood-{label}", root / f"flood-{label}.log", grace_s=5)
    path = "/webhooks/push/pbx"
    url = f"http://127.0.0.1:{served.port}{path}"
    try:
        async with (
            SlowFlood(served.port, path, connections=slow, reconnect_after_s=0.5) as flood,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session,
        ):
            await asyncio.sleep(5.0)  # the flood has had its time to take every slot it can
            results = [
                await _genuine_push(session, url, f"{label}-{n}-{time.time_ns()}", preauth=preauth)
                for n in range(genuine)
            ]
    finally:
        await served.terminate_and_time()
    stored = [result for result in results if result[0]]
    return FloodFigures(
        slow_connections=slow,
        genuine=genuine,
        succeeded=len(stored),
        failed=genuine - len(stored),
        first_try=sum(1 for result in stored if result[1] == 1),
        seconds_to_success=[result[2] for result in stored],
        flood_answers=dict(flood.answers),
    )


def flood_row(label: str, figures: FloodFigures) -> list[str]:
    took = figures.seconds_to_success
    timing = f"p50 {statistics.median(took):.2f} s, max {max(took):.2f} s" if took else "-"
    answers = ", ".join(f"{n} x {status}" for status, n in sorted(figures.flood_answers.items()))
    return [
        f"{figures.slow_connections} slow connections, {figures.genuine} genuine pushes: {label}",
        f"{figures.succeeded} / {figures.failed}",
        f"{figures.first_try}",
        timing,
        answers or "-",
    ]


async def flood_rows(quick: bool) -> list[list[str]]:
    """The table's rows: signed pushes alone, then under the flood, plain and pre-authenticated."""
    slow, genuine = (40, 5) if quick else (64, 20)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for label, connections, preauth in (
            ("signed as push.md says, no flood (baseline)", 0, False),
            ("signed as push.md says", slow, False),
            ("with X-Callrec-Preauth", slow, True),
        ):
            figures = await measure_flood(
                root,
                slow=connections,
                genuine=genuine,
                preauth=preauth,
                label=f"{len(rows)}",
            )
            rows.append(flood_row(label, figures))
    return rows
