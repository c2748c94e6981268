"""Mutation suite: tampered objects and audit rows, and how many of them were accepted.

``python -m tests.bench.mutation [--objects N] [--audit N] [--seed S]``: in one process, on
the embedded default (SQLite, the filesystem store, a local keyring), a handful of real
encrypted objects are stored through the capture path's storage, then mutated on disk
one at a time (bit flips, byte changes, truncations, extensions, segments swapped within
and between objects, whole objects swapped, header fields edited). Each mutated object
is read by the three readers a service has: a fresh verified open (``open_verified``),
the playback reader that keeps opened objects between ranges (``RecordingAudio``,
opened before the mutation as a player would have), and the integrity scrubber. Any
bytes handed out without an IntegrityFailure, or a scrub that finds nothing, is a
tampered object accepted. Then the original bytes go back.

The audit rows of a real chain are edited, deleted and reordered the way the owner of
the database file can (the append-only triggers dropped), each inside a transaction that
is rolled back after ``verify_audit_chain`` has looked at it. Mutations that recompute
every later link and move the head are counted apart: only a checkpoint kept outside
the database can catch those.

The goal for every "accepted" column is 0; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tqdm import tqdm

from storage import (
    AudioFacts,
    AuditRecord,
    AuditTrail,
    Database,
    EncryptedSpool,
    FilesystemObjectStore,
    KeyShares,
    NewRecording,
    RecordingStore,
    Scrubber,
    StoredCiphertext,
    create_engine,
    open_verified,
    unmask,
    upgrade_database,
)
from storage.anchors.checkpoints import Checkpoint, compare_with_checkpoint
from storage.audit import chain_hash, leaf_hash, verify_audit_chain
from storage.crypto.format import HEADER, HEADER_LENGTH, SEGMENT_CIPHERTEXT
from storage.db.models import AuditEvent, Recording, StoredObject
from storage.errors import AnchorMismatch, AuditChainBroken, IntegrityFailure, ObjectMissing
from storage.keys.keyring import WrappedKey
from storage.playback import RecordingAudio
from tests.key_support import local_epoch_keys

_AUDIO = AudioFacts("wav", "pcm_s16le", 8000, 1, 1.0, "audio/wav")
# One segment, three segments with a short last one, and exactly two whole segments:
# the shapes where truncation and extension are decided differently.
OBJECT_SIZES = (1_000, 150_000, 2 * 65_536)
AUDIT_EVENTS = 60
_HEADER_FIELDS = (
    "magic",
    "version",
    "alg",
    "seg_log2",
    "reserved",
    "salt",
    "nonce_prefix",
    "reserved2",
    "commitment",
)


@dataclass
class Stored:
    """One stored object: where it is, its key, its pristine ciphertext and plaintext."""

    recording_id: uuid.UUID
    object_id: uuid.UUID
    key: str
    data_key: bytes
    ciphertext: bytes
    plaintext: bytes

    @property
    def segments(self) -> int:
        return -(-(len(self.ciphertext) - HEADER_LENGTH) // SEGMENT_CIPHERTEXT)

    def segment_span(self, index: int) -> tuple[int, int]:
        start = HEADER_LENGTH + index * SEGMENT_CIPHERTEXT
        return start, min(start + SEGMENT_CIPHERTEXT, len(self.ciphertext))


@dataclass
class Tally:
    """Per kind of mutation: how many were tried and how many each reader accepted."""

    tried: Counter[str] = field(default_factory=Counter)
    accepted_fresh: Counter[str] = field(default_factory=Counter)
    accepted_kept: Counter[str] = field(default_factory=Counter)
    accepted_scrub: Counter[str] = field(default_factory=Counter)
    # Of those accepted, how many handed out bytes other than what was stored.
    wrong_fresh: Counter[str] = field(default_factory=Counter)
    wrong_kept: Counter[str] = field(default_factory=Counter)


def _different_byte(rng: random.Random, old: int) -> int:
    return (old + rng.randrange(1, 256)) % 256


def mutate_object(rng: random.Random, target: Stored, others: list[Stored]) -> tuple[str, bytes]:
    """One mutation of ``target``'s ciphertext: its kind and the new bytes (never the old)."""
    data = bytearray(target.ciphertext)
    kind = rng.choice(
        (
            "bit flip",
            "byte change",
            "truncation",
            "extension",
            "segments reordered within the object",
            "segment from another object",
            "whole object from another object",
            "header from another object",
            "header field edit",
        )
    )
    if kind == "bit flip":
        spot = rng.randrange(len(data))
        data[spot] ^= 1 << rng.randrange(8)
    elif kind == "byte change":
        spot = rng.randrange(len(data))
        data[spot] = _different_byte(rng, data[spot])
    elif kind == "truncation":
        del data[rng.randrange(len(data)) :]
    elif kind == "extension":
        data += rng.randbytes(rng.choice((1, 16, rng.randrange(1, 2 * SEGMENT_CIPHERTEXT))))
    elif kind == "segments reordered within the object":
        if target.segments < 2:
            return mutate_object(rng, target, others)
        first, second = rng.sample(range(target.segments), 2)
        a, b = target.segment_span(first), target.segment_span(second)
        pieces = {first: bytes(data[a[0] : a[1]]), second: bytes(data[b[0] : b[1]])}
        out = bytearray(data[:HEADER_LENGTH])
        for index in range(target.segments):
            span = target.segment_span(index)
            if index == first:
                out += pieces[second]
            elif index == second:
                out += pieces[first]
            else:
                out += data[span[0] : span[1]]
        data = out
    elif kind == "segment from another object":
        donor = rng.choice(others)
        index = rng.randrange(min(target.segments, donor.segments))
        mine, theirs = target.segment_span(index), donor.segment_span(index)
        data[mine[0] : mine[1]] = donor.ciphertext[theirs[0] : theirs[1]]
    elif kind == "whole object from another object":
        data = bytearray(rng.choice(others).ciphertext)
    elif kind == "header from another object":
        data[:HEADER_LENGTH] = rng.choice(others).ciphertext[:HEADER_LENGTH]
    else:
        fields = list(HEADER.unpack(bytes(data[:HEADER_LENGTH])))
        which = rng.randrange(len(fields))
        kind = f"header field edit: {_HEADER_FIELDS[which]}"
        old = fields[which]
        if isinstance(old, bytes):
            new = bytearray(old)
            spot = rng.randrange(len(new))
            new[spot] = _different_byte(rng, new[spot])
            fields[which] = bytes(new)
        else:
            fields[which] = _different_byte(rng, old)
        data[:HEADER_LENGTH] = HEADER.pack(*fields)
    if bytes(data) == target.ciphertext:
        return mutate_object(rng, target, others)
    return kind, bytes(data)


async def _fresh_read(objects: FilesystemObjectStore, target: Stored) -> bytes | None:
    """What a fresh verified open handed out of the whole object; None if it refused."""
    ciphertext = StoredCiphertext(
        objects,
        target.key,
        target.object_id,
        len(target.ciphertext),
    )
    try:
        await ciphertext.check_size()
        verified = await open_verified(ciphertext, target.data_key)
        return await verified.read_all()
    except (IntegrityFailure, ObjectMissing):
        return None


async def _kept_read(audio: RecordingAudio, target: Stored, rng: random.Random) -> bytes | None:
    """What the playback reader, holding the object open from before the mutation, handed
    out of it (a range as a player asks, then the whole); None if it refused."""
    try:
        opened = await audio.open(target.recording_id, "original")
        if opened is None:
            return None
        size = opened.info.size
        start = rng.randrange(size)
        end = min(size, start + 65_536)
        piece = await opened.read(start, end)
        if piece != target.plaintext[start:end]:
            return piece
        return await opened.read(0, size)
    except (IntegrityFailure, ObjectMissing):
        return None


async def _seed(root: Path, database: Database, objects: FilesystemObjectStore) -> list[Stored]:
    clock = lambda: datetime.now(UTC)  # noqa: E731
    keyring = local_epoch_keys(database, root, clock)
    recordings = RecordingStore(
        database=database, objects=objects, keys=keyring, audit=AuditTrail(clock), clock=clock
    )
    started_at = datetime.now(UTC) - timedelta(hours=1)
    stored: list[Stored] = []
    for n, size in enumerate(OBJECT_SIZES):
        plaintext = random.Random(n).randbytes(size)
        spool = EncryptedSpool(root / "spool")
        await spool.write(plaintext)
        await spool.finish()
        outcome = await recordings.store_capture(
            spool,
            NewRecording(
                source="bench",
                source_recording_id=f"mutation-{n}",
                started_at=started_at,
                retention_deadline=started_at + timedelta(days=90),
            ),
            _AUDIO,
            actor="source:bench",
        )
        recording_id = outcome.recording_id
        await spool.discard()
        async with database.read() as session:
            row = (
                await session.execute(
                    select(StoredObject).where(StoredObject.recording_id == recording_id)
                )
            ).scalar_one()
            assert row.data_key is not None
            wrapped = WrappedKey(row.data_key.kek_id, row.data_key.wrapped)
            object_id, key = row.id, row.object_key
            recording = await session.get(Recording, recording_id)
            assert recording is not None
            share = await KeyShares(objects).read(recording_id, recording.key_share_digest)
        stored.append(
            Stored(
                recording_id=recording_id,
                object_id=object_id,
                key=key,
                data_key=unmask(await keyring.unwrap(wrapped, object_id), object_id, share),
                ciphertext=(root / "objects" / key).read_bytes(),
                plaintext=plaintext,
            )
        )
    return stored


async def run_objects(count: int, seed: int) -> Tally:
    """``count`` object mutations, each read three ways; the original restored after each."""
    rng = random.Random(seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="callrec-mutation-") as scratch:
        root = Path(scratch)
        engine = create_engine(f"sqlite+aiosqlite:///{root / 'callrec.db'}")
        await upgrade_database(engine)
        database = Database(engine)
        objects = FilesystemObjectStore(root / "objects")
        stored = await _seed(root, database, objects)
        clock = lambda: datetime.now(UTC)  # noqa: E731
        keyring = local_epoch_keys(database, root, clock)
        scrubber = Scrubber(
            database=database, objects=objects, keys=keyring, audit=AuditTrail(clock)
        )
        # Held open as a player holds it: opened once before any mutation, kept for an hour.
        audio = RecordingAudio(database, objects, keyring, keep_open_s=3600.0)
        for target in stored:
            assert await audio.open(target.recording_id, "original")
            assert await _fresh_read(objects, target) == target.plaintext
        for _ in tqdm(range(count), desc="object mutations", unit=" mutation"):
            target = rng.choice(stored)
            kind, mutated = mutate_object(rng, target, [s for s in stored if s is not target])
            path = root / "objects" / target.key
            path.write_bytes(mutated)
            tally.tried[kind] += 1
            served = await _fresh_read(objects, target)
            if served is not None:
                tally.accepted_fresh[kind] += 1
                tally.wrong_fresh[kind] += served != target.plaintext
            served = await _kept_read(audio, target, rng)
            if served is not None:
                tally.accepted_kept[kind] += 1
                tally.wrong_kept[kind] += served != target.plaintext
            report = await scrubber.run()
            if not any(finding.object_key == target.key for finding in report.findings):
                tally.accepted_scrub[kind] += 1
            path.write_bytes(target.ciphertext)
        await database.dispose()
    return tally


# Audit rows -----------------------------------------------------------------------------

_EDITABLE = ("actor", "action", "outcome", "purpose", "occurred_at", "recording_id", "details")


async def _edit_field(session: AsyncSession, rng: random.Random, events: int) -> str:
    seq = rng.randint(1, events)
    column = rng.choice(_EDITABLE)
    # Each new value differs from every value the seeded chain holds.
    values = {
        "actor": "'someone-else'",
        "action": "'recording.exported'",
        "outcome": "'deny'",
        "purpose": "'curiosity'",
        "occurred_at": "'2020-01-01 00:00:00.000000'",
        "recording_id": "'00000000000000000000000000000001'",
        "details": '\'{"reason": "edited"}\'',
    }
    await session.execute(
        text(f"UPDATE audit_event SET {column} = {values[column]} WHERE seq = :s"), {"s": seq}
    )
    return f"field edit: {column}"


async def _edit_hash(session: AsyncSession, rng: random.Random, events: int) -> str:
    seq = rng.randint(1, events)
    column = rng.choice(("leaf", "chain", "details_sha256"))
    await session.execute(
        text(f"UPDATE audit_event SET {column} = :v WHERE seq = :s"),
        {"v": rng.randbytes(32), "s": seq},
    )
    return f"field edit: {column}"


async def _delete_middle(session: AsyncSession, rng: random.Random, events: int) -> str:
    seq = rng.randint(1, events - 1)
    await session.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": seq})
    return "deletion of an event before the head"


async def _delete_tail(session: AsyncSession, rng: random.Random, events: int) -> str:
    cut = rng.randint(1, 10)
    await session.execute(text("DELETE FROM audit_event WHERE seq > :s"), {"s": events - cut})
    return "deletion of the last events, head left"


async def _reorder(session: AsyncSession, rng: random.Random, events: int) -> str:
    first, second = rng.sample(range(1, events + 1), 2)
    await session.execute(text("UPDATE audit_event SET seq = -1 WHERE seq = :a"), {"a": first})
    await session.execute(
        text("UPDATE audit_event SET seq = :a WHERE seq = :b"), {"a": first, "b": second}
    )
    await session.execute(text("UPDATE audit_event SET seq = :b WHERE seq = -1"), {"b": second})
    return "reorder of two events"


async def _renumber(session: AsyncSession, rng: random.Random, events: int) -> str:
    seq = rng.randint(1, events)
    await session.execute(
        text("UPDATE audit_event SET seq = :n WHERE seq = :s"), {"n": events + 5, "s": seq}
    )
    return "event renumbered past the head"


async def _cut_tail_and_head(session: AsyncSession, rng: random.Random, events: int) -> str:
    """The issue's first defect: the tail cut and the head moved back to match."""
    keep = events - rng.randint(1, 10)
    await session.execute(text("DELETE FROM audit_event WHERE seq > :s"), {"s": keep})
    chain = (
        await session.execute(text("SELECT chain FROM audit_event WHERE seq = :s"), {"s": keep})
    ).scalar_one()
    await session.execute(
        text("UPDATE audit_head SET seq = :s, chain = :c WHERE id = 1"), {"s": keep, "c": chain}
    )
    return "RECOMPUTED: last events deleted, head moved back"


async def _rewrite_and_rechain(session: AsyncSession, rng: random.Random, events: int) -> str:
    """A middle event edited and every later link recomputed, as the owner could."""
    seq = rng.randint(1, events)
    await session.execute(
        text("UPDATE audit_event SET actor = 'someone-else' WHERE seq = :s"), {"s": seq}
    )
    rows = (
        await session.execute(
            select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)
        )
    ).scalars()
    previous = (
        await session.execute(text("SELECT chain FROM audit_event WHERE seq = :s"), {"s": seq - 1})
    ).scalar_one_or_none() or bytes(32)
    for event in rows:
        event.leaf = leaf_hash(event)
        previous = event.chain = chain_hash(previous, event.leaf)
    await session.flush()
    await session.execute(text("UPDATE audit_head SET chain = :c WHERE id = 1"), {"c": previous})
    return "RECOMPUTED: middle event rewritten, chain and head recomputed"


AUDIT_MUTATIONS = (
    _edit_field,
    _edit_field,
    _edit_hash,
    _delete_middle,
    _delete_tail,
    _reorder,
    _renumber,
    _cut_tail_and_head,
    _rewrite_and_rechain,
)


async def run_audit(count: int, seed: int) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """``count`` audit-row mutations, each verified and rolled back: (tried, accepted by
    the chain alone, accepted by the chain and the checkpoint of its head)."""
    rng = random.Random(seed)
    tried: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    anchored: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="callrec-audit-mutation-") as scratch:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(scratch) / 'callrec.db'}")
        await upgrade_database(engine)
        database = Database(engine)
        trail = AuditTrail(lambda: datetime.now(UTC))
        for n in range(AUDIT_EVENTS):
            async with database.transaction() as session:
                await trail.append(
                    session,
                    AuditRecord(
                        actor=f"staff-{n % 7}",
                        action="recording.played" if n % 3 else "recording.deleted",
                        purpose="safeguarding review" if n % 2 else None,
                        details={"n": n, "range": [0, 65536]} if n % 4 else None,
                    ),
                )
        events = AUDIT_EVENTS
        async with engine.begin() as connection:
            # What the owner of the database file can do: the append-only guards go.
            for trigger in (
                (
                    await connection.execute(
                        text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                    )
                )
                .scalars()
                .all()
            ):
                await connection.execute(text(f"DROP TRIGGER {trigger}"))
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            assert await verify_audit_chain(session) == events
            head = (await session.execute(text("SELECT seq, chain FROM audit_head"))).one()
        # What `callrec audit verify` compares with: the head as a checkpoint outside the
        # database recorded it before anything was touched (its signature is tested apart).
        checkpoint = Checkpoint(head.seq, head.chain, "before", "bench", "checkpoint")
        for _ in tqdm(range(count), desc="audit mutations", unit=" mutation"):
            async with sessions() as session:
                kind = await rng.choice(AUDIT_MUTATIONS)(session, rng, events)
                tried[kind] += 1
                try:
                    await verify_audit_chain(session)
                except AuditChainBroken:
                    pass
                else:
                    accepted[kind] += 1
                    try:
                        await compare_with_checkpoint(session, checkpoint)
                    except AnchorMismatch:
                        pass
                    else:
                        anchored[kind] += 1
                await session.rollback()
        await database.dispose()
    return tried, accepted, anchored


def print_objects(tally: Tally, seconds: float) -> None:
    print(
        "| object mutation | tried | fresh verified open: not refused | of which wrong bytes "
        "served | playback reader holding it open: not refused | of which wrong bytes served "
        "| scrub: not found |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    columns = (
        tally.tried,
        tally.accepted_fresh,
        tally.wrong_fresh,
        tally.accepted_kept,
        tally.wrong_kept,
        tally.accepted_scrub,
    )
    for kind in sorted(tally.tried):
        print(f"| {kind} | " + " | ".join(str(column[kind]) for column in columns) + " |")
    print("| **all** | " + " | ".join(str(sum(column.values())) for column in columns) + " |")
    print(f"({seconds:.1f} s)")


def print_audit(
    tried: Counter[str], accepted: Counter[str], anchored: Counter[str], seconds: float
) -> None:
    print(
        "| audit-row mutation | tried | accepted by the chain alone (`verify_audit_chain`) "
        "| accepted by the chain and its latest checkpoint (`callrec audit verify`) |"
    )
    print("| --- | --- | --- | --- |")
    for kind in sorted(tried):
        print(f"| {kind} | {tried[kind]} | {accepted[kind]} | {anchored[kind]} |")
    print(
        f"| **all** | {sum(tried.values())} | {sum(accepted.values())} | {sum(anchored.values())} |"
    )
    print(f"({seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.mutation", description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000, help="object mutations")
    parser.add_argument("--audit", type=int, default=10_000, help="audit-row mutations")
    parser.add_argument("--seed", type=int, default=16, help="the random seed (repeatable runs)")
    parser.add_argument("--quick", action="store_true", help="500 of each, for a smoke run")
    arguments = parser.parse_args()
    objects, audit = (500, 500) if arguments.quick else (arguments.objects, arguments.audit)
    asyncio.run(run_mutations(objects, audit, arguments.seed))


async def run_mutations(objects: int, audit: int, seed: int = 16) -> None:
    """Both suites, each printed as a table."""
    began = time.perf_counter()
    tally = await run_objects(objects, seed)
    print_objects(tally, time.perf_counter() - began)
    print()
    began = time.perf_counter()
    tried, accepted, anchored = await run_audit(audit, seed)
    print_audit(tried, accepted, anchored, time.perf_counter() - began)


if __name__ == "__main__":
    main()
