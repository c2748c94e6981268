"""Kill-9 harness: ``callrec serve`` SIGKILLed during concurrent pushes and during sweeps.

``python -m tests.bench.kill9 [--rounds N] [--quick]``: one real ``callrec serve`` at a
time on the embedded default (SQLite, the filesystem store, a local keyring), one data
directory for the whole run. Each round is two kill trials:

1. **during pushes**: senders push signed one-second calls concurrently (one in three, at random,
   due within the next sweep's horizon); the process is SIGKILLed at a random moment
   and started again;
2. **during the sweep**: that new process's start-up retention sweep deletes the due
   calls; it is SIGKILLed at a random moment of its start-up and sweep, and started
   again, and that process's own sweep is left to finish.

Then, behind the API (the data directory read in this process): every call acknowledged
with 201 and not due is stored and its original decrypts, through the verified reader,
to the bytes sent (else: acknowledged lost); every due call acknowledged is deleted,
its data keys and objects gone and its phone numbers stripped; nothing is half-stored
(an object with no row, a stored row whose object is missing, a spool file, a pending
row); and, every ``--chain-every`` rounds, the audit chain verifies. At the end the real
commands run once: ``callrec audit verify`` and ``callrec verify`` (the full scrub).

Start-up dominates a round, so its time is measured and printed. Figures are printed,
never asserted; the goal for every failure column is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess

import aiohttp
from sqlalchemy import func, select
from tqdm import tqdm

from config.services import Services, build_services
from config.settings import Settings
from storage import (
    RECORDINGS_PREFIX,
    KeyShares,
    StoredCiphertext,
    create_engine,
    open_verified,
    share_key_for,
    unmask,
    upgrade_database,
)
from storage.audit import verify_audit_chain
from storage.db.job_models import RenditionJob, RenditionState
from storage.db.models import DataKey, Recording, RecordingState, StoredObject
from storage.errors import AuditChainBroken, IntegrityFailure, ObjectMissing
from storage.keys.keyring import WrappedKey
from storage.recordings import object_key_for
from tests.cli_support import run
from tests.fixtures_db import POSTGRES_ADMIN_DSN, run_as_admin
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.serve_support import Served, ask, launch_serve

_STAMP = "%Y-%m-%dT%H:%M:%SZ"
SETTINGS = {
    "CALLREC_LOG_LEVEL": "warning",
    # A due call's deadline is an hour after its start; the sweep deletes what falls due
    # before the next sweep (15 min) plus the margin (5 min).
    "CALLREC_RETENTION_PERIOD": "PT1H",
}


@dataclass
class Figures:
    """What every round found, summed."""

    rounds: int = 0
    push_trials: int = 0
    sweep_trials: int = 0
    acknowledged: int = 0
    acknowledged_due: int = 0
    lost: list[str] = field(default_factory=list)
    not_deleted: list[str] = field(default_factory=list)
    half_stored: list[str] = field(default_factory=list)
    chain_broken: list[str] = field(default_factory=list)
    chain_checks: int = 0
    # Captures killed between claiming their id and committing: kept ``pending`` with
    # their objects until ABANDONED_AFTER (15 min), then reaped; not due ones only.
    pending: set[str] = field(default_factory=set)
    kills_mid_sweep: int = 0
    start_s: list[float] = field(default_factory=list)
    orphans: int = 0
    failed_starts: list[str] = field(default_factory=list)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (its media fork server and workers), from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                pending.append(child)
    return found


class Harness:
    """One data directory, one ``callrec serve`` at a time, and an inspector beside it."""

    def __init__(
        self,
        root: Path,
        rng: random.Random,
        senders: int,
        kill_within_s: float,
        push_for_s: float,
        database_url: str | None = None,
    ) -> None:
        self.root = root
        self.data_dir = root / "var"
        self.rng = rng
        self.senders = senders
        self.kill_within_s = kill_within_s
        self.push_for_s = push_for_s
        self.audio = make_wav(1)
        self.audio_sha = hashlib.sha256(self.audio).hexdigest()
        self.served: Served | None = None
        self.launches = 0
        self.figures = Figures()
        # PostgreSQL beside a local keyring needs the promise of one data directory.
        self.settings = dict(SETTINGS) | (
            {}
            if database_url is None
            else {"CALLREC_DATABASE_URL": database_url, "CALLREC_SINGLE_NODE": "true"}
        )
        self.inspector: Services = build_services(
            Settings(
                data_dir=self.data_dir,
                database_url=database_url,
                single_node=database_url is not None,
            )
        )

    async def launch(self) -> Served:
        self.launches += 1
        log = self.root / f"serve-{self.launches % 4}.log"
        self.served = await launch_serve(self.data_dir, log, grace_s=5.0, port=0, **self.settings)
        return self.served

    async def wait_up(self, served: Served) -> float:
        """Seconds from launch until /healthz answers (start-up done, sweep begun).

        A start that fails is a finding, not the end of the run: its log's tail is kept
        and the service is launched again (three times at most)."""
        began = time.monotonic()
        for attempt in range(3):
            for _ in range(6000):
                if await ask(served.port, "GET /healthz") is not None:
                    return time.monotonic() - began
                if served.process.returncode is not None:
                    break
                await asyncio.sleep(0.01)
            await self.kill(served)
            self.figures.failed_starts.append(
                f"round {self.figures.rounds}, attempt {attempt + 1}: "
                + served.log.read_text()[-600:].replace("\n", " | ")
            )
            served = await self.launch()
        raise RuntimeError("serve did not start three times running")

    async def kill(self, served: Served) -> None:
        """SIGKILL the serve process; then its descendants, as a supervisor's cgroup would,
        counting those still alive a moment after it died (they outlived it)."""
        family = descendants(served.process.pid)
        if served.process.returncode is None:
            served.process.send_signal(signal.SIGKILL)
        await served.process.wait()
        await asyncio.sleep(0.2)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.figures.orphans += 1

    async def push_trial(self) -> tuple[dict[str, uuid.UUID], dict[str, uuid.UUID]]:
        """Concurrent pushes, SIGKILL at a random moment: the calls acknowledged (not due,
        due), by source id."""
        assert self.served is not None
        served = self.served
        kept: dict[str, uuid.UUID] = {}
        due: dict[str, uuid.UUID] = {}
        url = f"http://127.0.0.1:{served.port}/webhooks/push/pbx"

        async def sender(session: aiohttp.ClientSession, number: int) -> None:
            sent = 0
            while True:
                sent += 1
                source_id = f"k{self.figures.rounds}-{number}-{sent}-{uuid.uuid4().hex[:6]}"
                is_due = self.rng.random() < 1 / 3
                now = datetime.now(UTC)
                started = now - (timedelta(minutes=58) if is_due else timedelta(minutes=30))
                meta = metadata(
                    recording_id=source_id,
                    started_at=started.strftime(_STAMP),
                    ended_at=(started + timedelta(seconds=1)).strftime(_STAMP),
                )
                body = push_body(meta, self.audio)
                try:
                    async with session.post(url, data=body, headers=push_headers(body)) as answer:
                        if answer.status == 201:
                            (due if is_due else kept)[source_id] = uuid.UUID(
                                (await answer.json())["id"]
                            )
                except (TimeoutError, aiohttp.ClientError, OSError):
                    return

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            tasks = [asyncio.create_task(sender(session, n)) for n in range(self.senders)]
            await asyncio.sleep(self.rng.uniform(0.05, self.push_for_s))
            await self.kill(served)
            await asyncio.gather(*tasks, return_exceptions=True)
        self.figures.push_trials += 1
        return kept, due

    async def sweep_trial(self) -> None:
        """Start; SIGKILL at a random moment of the start-up and its sweep; start again."""
        up = await self.wait_up(await self.launch())
        served = self.served
        assert served is not None
        self.figures.start_s.append(up)
        await asyncio.sleep(self.rng.uniform(0.0, self.kill_within_s))
        await self.kill(served)
        self.figures.sweep_trials += 1
        if await self._mid_sweep():
            self.figures.kills_mid_sweep += 1
        served = await self.launch()
        self.figures.start_s.append(await self.wait_up(served))
        await self._sweep_done()

    async def _due_left(self) -> int:
        cutoff = datetime.now(UTC) + timedelta(minutes=20)
        async with self.inspector.database.read() as session:
            return (
                await session.scalar(
                    select(func.count())
                    .select_from(Recording)
                    .where(
                        Recording.state.in_((RecordingState.STORED, RecordingState.DELETING)),
                        Recording.retention_deadline < cutoff,
                    )
                )
            ) or 0

    async def _mid_sweep(self) -> bool:
        """Whether the kill left a deletion begun and not finished."""
        async with self.inspector.database.read() as session:
            deleting = await session.scalar(
                select(func.count())
                .select_from(Recording)
                .where(Recording.state == RecordingState.DELETING)
            )
        return bool(deleting)

    async def _sweep_done(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not await self._due_left():
                return
            await asyncio.sleep(0.05)

    async def check(self, kept: dict[str, uuid.UUID], due: dict[str, uuid.UUID]) -> None:
        """Every invariant of the round, behind the API; failures named in the figures."""
        figures = self.figures
        figures.acknowledged += len(kept) + len(due)
        figures.acknowledged_due += len(due)
        services = self.inspector
        round_name = f"round {figures.rounds}"
        async with services.database.read() as session:
            rows = {
                row.id: row
                for row in (
                    await session.execute(
                        select(Recording).where(
                            Recording.id.in_(list(kept.values()) + list(due.values()))
                        )
                    )
                ).scalars()
            }
            stored = (
                await session.execute(
                    select(StoredObject, Recording.state).join(
                        Recording, Recording.id == StoredObject.recording_id
                    )
                )
            ).all()
            keys_of = {
                object_id
                for object_id in (await session.execute(select(DataKey.object_id))).scalars()
            }
            pending = (
                (
                    await session.execute(
                        select(Recording.source_recording_id).where(
                            Recording.state == RecordingState.PENDING
                        )
                    )
                )
                .scalars()
                .all()
            )
            # A recording's key share belongs to it until its deletion finishes.
            shares = {
                share_key_for(recording_id)
                for recording_id in (
                    await session.execute(
                        select(Recording.id).where(Recording.state != RecordingState.DELETED)
                    )
                ).scalars()
            }
            # A rendition a killed worker was writing: its job names it, and whoever
            # takes the job over (or the recording's deletion) deletes it.
            in_flight = {
                object_key_for(object_id)
                for object_id in (
                    await session.execute(
                        select(RenditionJob.object_id).where(
                            RenditionJob.state != RenditionState.DONE
                        )
                    )
                ).scalars()
                if object_id is not None
            }
        in_store = {key async for key in services.objects.iter_keys(RECORDINGS_PREFIX)}
        known = {stored_object.object_key for stored_object, _ in stored} | shares | in_flight
        for key in sorted(in_store - known):
            figures.half_stored.append(f"{round_name}: object without a row: {key}")
        for stored_object, state in stored:
            if state == RecordingState.STORED and stored_object.object_key not in in_store:
                figures.half_stored.append(
                    f"{round_name}: stored row, object missing: {stored_object.id}"
                )
        figures.pending.update(pending)
        spool = self.data_dir / "spool"
        if spool.exists():
            for path in spool.rglob("*.spool"):
                if path.is_file():
                    figures.half_stored.append(f"{round_name}: spool file: {path.name}")
        for source_id, recording_id in kept.items():
            problem = await self._plays(rows.get(recording_id), recording_id)
            if problem:
                figures.lost.append(f"{round_name}: {source_id} ({recording_id}): {problem}")
        objects_of: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
        for stored_object, _ in stored:
            objects_of.setdefault(stored_object.recording_id, []).append(
                (stored_object.id, stored_object.object_key)
            )
        for source_id, recording_id in due.items():
            row = rows.get(recording_id)
            problems = []
            if row is None:
                problems.append("no tombstone")
            else:
                if row.state != RecordingState.DELETED:
                    problems.append(f"state {row.state}")
                if row.from_number is not None or row.to_number is not None:
                    problems.append("phone numbers kept")
            for object_id, key in objects_of.get(recording_id, []):
                if object_id in keys_of:
                    problems.append("data key kept")
                if key in in_store:
                    problems.append("object kept")
            if problems:
                figures.not_deleted.append(f"{round_name}: {source_id}: {', '.join(problems)}")

    async def _plays(self, row: Recording | None, recording_id: uuid.UUID) -> str | None:
        """None if the acknowledged recording is stored and its original reads back whole."""
        if row is None:
            return "no row"
        if row.state != RecordingState.STORED:
            return f"state {row.state}"
        services = self.inspector
        async with services.database.read() as session:
            stored = (
                await session.execute(
                    select(StoredObject).where(
                        StoredObject.recording_id == recording_id, StoredObject.kind == "original"
                    )
                )
            ).scalar_one_or_none()
            if stored is None or stored.data_key is None:
                return "no original or no key"
            wrapped = WrappedKey(stored.data_key.kek_id, stored.data_key.wrapped)
        try:
            # The data key as playback derives it: unwrapped, then unmasked by the share.
            share = await KeyShares(services.objects).read(recording_id, row.key_share_digest)
            key = unmask(await services.keys.unwrap(wrapped, stored.id), stored.id, share)
            ciphertext = StoredCiphertext(
                services.objects, stored.object_key, stored.id, stored.ciphertext_size
            )
            await ciphertext.check_size()
            plain = await (await open_verified(ciphertext, key)).read_all()
        except (IntegrityFailure, ObjectMissing) as exc:
            return f"unreadable: {exc}"
        if hashlib.sha256(plain).hexdigest() != self.audio_sha:
            return "different bytes"
        return None

    async def chain(self) -> None:
        self.figures.chain_checks += 1
        try:
            async with self.inspector.database.read() as session:
                await verify_audit_chain(session)
        except AuditChainBroken as exc:
            self.figures.chain_broken.append(f"round {self.figures.rounds}: {exc}")


async def run_rounds(
    rounds: int,
    senders: int,
    kill_within_s: float,
    push_for_s: float,
    chain_every: int,
    seed: int,
    budget_s: float | None = None,
    database_url: str | None = None,
) -> tuple[Figures, float, CompletedProcess[str], CompletedProcess[str]]:
    """``rounds`` rounds, or as many as end within ``budget_s`` (the figures say how many),
    on SQLite in the data directory or on the (empty) PostgreSQL database at ``database_url``."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="callrec-kill9-") as scratch:
        harness = Harness(Path(scratch), rng, senders, kill_within_s, push_for_s, database_url)
        began = time.monotonic()
        served = await harness.launch()
        harness.figures.start_s.append(await harness.wait_up(served))
        for _ in tqdm(range(rounds), desc="kill -9 rounds", unit=" round"):
            if budget_s is not None and time.monotonic() - began > budget_s:
                break
            kept, due = await harness.push_trial()
            await harness.sweep_trial()
            await harness.check(kept, due)
            harness.figures.rounds += 1
            if harness.figures.rounds % chain_every == 0:
                await harness.chain()
        await harness.chain()
        assert harness.served is not None
        await harness.kill(harness.served)
        wall_s = time.monotonic() - began
        env = {"CALLREC_DATA_DIR": str(harness.data_dir), **harness.settings}
        audit = run("audit", "verify", **env)
        scrub = run("verify", **env)
        await harness.inspector.close()
    return harness.figures, wall_s, audit, scrub


def report(
    figures: Figures,
    wall_s: float,
    audit: CompletedProcess[str],
    scrub: CompletedProcess[str],
) -> None:
    load = os.getloadavg()
    starts = figures.start_s
    print(
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} cores; "
        f"{len(starts)} starts: launch to /healthz median {statistics.median(starts):.2f} s, "
        f"max {max(starts):.2f} s"
    )
    print(
        "| kill -9 trials | trials | acknowledged (201) | acknowledged lost | due not cleanly "
        "deleted | half-stored left | chain broken | wall time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| during concurrent pushes | {figures.push_trials} | "
        f"{figures.acknowledged - figures.acknowledged_due} kept + {figures.acknowledged_due} "
        f"due | {len(figures.lost)} | - | {len(figures.half_stored)} | "
        f"{len(figures.chain_broken)} of {figures.chain_checks} checks | {wall_s:.0f} s (both) |"
    )
    print(
        f"| during the start-up retention sweep ({figures.kills_mid_sweep} kills left a "
        f"deletion half-done) | {figures.sweep_trials} | {figures.acknowledged_due} due | - | "
        f"{len(figures.not_deleted)} | (same check) | (same check) | (same run) |"
    )
    print(
        f"processes a SIGKILLed serve left running (its media fork server and workers; "
        f"the harness then killed them): {figures.orphans} after {len(starts)} starts"
    )
    print(f"starts that failed (launched again): {len(figures.failed_starts)}")
    print(
        f"pending captures left for the reaper (killed mid-capture, not due; reaped after "
        f"15 min by design): {len(figures.pending)}"
    )
    print(f"`callrec audit verify`: exit {audit.returncode}: {audit.stdout.strip()[-300:]}")
    print(f"`callrec verify`: exit {scrub.returncode}: {scrub.stdout.strip()[-300:]}")
    for name, items in (
        ("acknowledged lost", figures.lost),
        ("due not cleanly deleted", figures.not_deleted),
        ("half-stored left", figures.half_stored),
        ("chain broken", figures.chain_broken),
        ("start-up failed", figures.failed_starts),
    ):
        for item in items[:20]:
            print(f"- {name}: {item}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.kill9", description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000, help="rounds (two kills each)")
    parser.add_argument("--senders", type=int, default=4, help="concurrent pushing senders")
    parser.add_argument(
        "--push-for",
        type=float,
        default=3.0,
        help="seconds: the push kill lands at a random moment this long after pushing began",
    )
    parser.add_argument(
        "--kill-within",
        type=float,
        default=1.0,
        help="seconds: the sweep kill lands at a random moment this long after start-up",
    )
    parser.add_argument("--chain-every", type=int, default=10, help="verify the chain every N")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="stop starting rounds after this long and report those done",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="on a fresh PostgreSQL database (CALLREC_TEST_POSTGRES_DSN) instead of SQLite",
    )
    parser.add_argument("--quick", action="store_true", help="5 rounds, for a smoke run")
    arguments = parser.parse_args()
    rounds = 5 if arguments.quick else arguments.rounds
    with fresh_postgres() if arguments.postgres else nullcontext() as database_url:
        figures, wall_s, audit, scrub = asyncio.run(
            run_rounds(
                rounds,
                arguments.senders,
                arguments.kill_within,
                arguments.push_for,
                arguments.chain_every,
                arguments.seed,
                None if arguments.budget_minutes is None else arguments.budget_minutes * 60,
                database_url,
            )
        )
    report(figures, wall_s, audit, scrub)


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new PostgreSQL database for one run, migrated as ``callrec db upgrade`` would (on
    PostgreSQL ``serve`` refuses to start on an unmigrated one); dropped afterwards."""
    name = f"callrec_kill9_{uuid.uuid4().hex[:12]}"
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    asyncio.run(run_as_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(_migrate(f"{base}/{name}"))
        yield f"{base}/{name}"
    finally:
        asyncio.run(run_as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
