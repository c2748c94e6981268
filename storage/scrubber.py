"""The integrity scrub: read stored objects back and prove they are what was stored.

For each object of a stored recording: it is in the store, its stored size is the size
recorded at capture, the recording's key share is in the store and matches its recorded
digest (a missing share is reported ``missing`` and an altered one ``corrupt``, under the
share's own key), its data key opens, every segment authenticates, and the plaintext's
SHA-256 and length are the ones recorded at capture (for the original, that is the
evidential hash). A full scrub also lists objects in the store that no row knows of
(orphans: left by a crash, or put there by someone else). The result is audited.

Objects are streamed a few segments at a time: memory does not grow with their size.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from storage.anchors.records import ANCHORS_PREFIX
from storage.audit import AuditRecord, AuditTrail
from storage.crypto.verified_reader import StoredCiphertext
from storage.db.database import Database
from storage.db.models import DataKey, Recording, RecordingState, StoredObject
from storage.errors import IntegrityFailure, KeyringError, KeyShareMissing, ObjectMissing
from storage.keys.epochs import DataKeys
from storage.keys.key_shares import KeyShare, KeyShares, share_key_for, unmask
from storage.keys.keyring import WrappedKey
from storage.objects.store import ObjectStore

_LISTED = 100
SCRUB_ACTION = "integrity.scrub"
# Everything a scrub can find wrong with an object.
PROBLEMS = ("missing", "size", "key", "corrupt", "hash", "orphaned")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong: which object, of which recording, and what."""

    object_key: str
    recording_id: uuid.UUID | None
    problem: str  # one of PROBLEMS


@dataclass
class ScrubReport:
    """What a scrub read and what it found."""

    objects: int = 0
    bytes: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def problems(self) -> dict[str, int]:
        """How many findings of each kind (kinds with none left out)."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.problem] = counts.get(finding.problem, 0) + 1
        return counts


class Scrubber:
    """Checks stored objects against what the database recorded of them."""

    def __init__(
        self, *, database: Database, objects: ObjectStore, keys: DataKeys, audit: AuditTrail
    ) -> None:
        self._database = database
        self._objects = objects
        self._shares = KeyShares(objects)
        self._keys = keys
        self._audit = audit

    async def run(
        self, *, sample: int | None = None, progress: Callable[[int], None] | None = None
    ) -> ScrubReport:
        """Scrub every stored object, or ``sample`` of them at random (then no orphan search)."""
        rows = await self._stored(sample)
        report = ScrubReport()
        shares: dict[uuid.UUID, KeyShare | str | None] = {}
        for stored, wrapped, digest in rows:
            if stored.recording_id not in shares:
                # Read once per recording; a bad share is one finding, not one per object.
                shares[stored.recording_id] = share = await self._share(stored, digest)
                if isinstance(share, str):
                    key = share_key_for(stored.recording_id)
                    report.findings.append(Finding(key, stored.recording_id, share))
            problem = await self._check(stored, wrapped, shares[stored.recording_id], report)
            if problem is not None:
                report.findings.append(Finding(stored.object_key, stored.recording_id, problem))
            report.objects += 1
            if progress is not None:
                progress(1)
        if sample is None:
            report.findings.extend(await self._orphans())
        await self._record(report, sample)
        return report

    async def _stored(
        self, sample: int | None
    ) -> list[tuple[StoredObject, WrappedKey | None, bytes | None]]:
        statement = (
            select(StoredObject, DataKey.kek_id, DataKey.wrapped, Recording.key_share_digest)
            .join(Recording, Recording.id == StoredObject.recording_id)
            .outerjoin(DataKey, DataKey.object_id == StoredObject.id)
            .where(Recording.state == RecordingState.STORED)
        )
        statement = (
            statement.order_by(func.random()).limit(sample)
            if sample is not None
            else statement.order_by(StoredObject.id)
        )
        async with self._database.read() as session:
            found = (await session.execute(statement)).all()
        return [
            (stored, None if kek_id is None else WrappedKey(kek_id, blob), digest)
            for stored, kek_id, blob, digest in found
        ]

    async def _share(self, stored: StoredObject, digest: bytes | None) -> KeyShare | str | None:
        """The recording's share (None before shares existed), or the problem with it."""
        try:
            return await self._shares.read(stored.recording_id, digest)
        except KeyShareMissing:
            return "missing"
        except IntegrityFailure:
            return "corrupt"

    async def _check(
        self,
        stored: StoredObject,
        wrapped: WrappedKey | None,
        share: KeyShare | str | None,
        report: ScrubReport,
    ) -> str | None:
        ciphertext = StoredCiphertext(
            self._objects, stored.object_key, stored.id, stored.ciphertext_size
        )
        try:
            await ciphertext.check_size()
        except ObjectMissing:
            return "missing"
        except IntegrityFailure:
            return "size"
        if isinstance(share, str):
            return None  # already reported against the share; nothing here can open
        if wrapped is None:
            return "key"
        try:
            data_key = unmask(await self._keys.unwrap(wrapped, stored.id), stored.id, share)
        except KeyringError:
            return "key"
        digest = hashlib.sha256()
        try:
            verified = await ciphertext.open(data_key)
            async for piece in verified.plaintext():
                digest.update(piece)
        except (IntegrityFailure, ObjectMissing):
            return "corrupt"
        report.bytes += verified.plaintext_length
        if verified.plaintext_length != stored.plaintext_size:
            return "hash"
        if digest.hexdigest() != stored.plaintext_sha256:
            return "hash"
        return None

    async def _orphans(self) -> list[Finding]:
        async with self._database.read() as session:
            known = set((await session.execute(select(StoredObject.object_key))).scalars())
            with_shares = await session.execute(
                select(Recording.id).where(Recording.key_share_digest.is_not(None))
            )
            known.update(share_key_for(recording_id) for recording_id in with_shares.scalars())
        return [
            Finding(key, None, "orphaned")
            async for key in self._objects.iter_keys()
            # The anchors are the service's own records beside the audio, not stray objects.
            if key not in known and not key.startswith(ANCHORS_PREFIX)
        ]

    async def _record(self, report: ScrubReport, sample: int | None) -> None:
        async with self._database.transaction() as session:
            await self._audit.append(
                session,
                AuditRecord(
                    actor="integrity",
                    action=SCRUB_ACTION,
                    outcome="allow" if report.ok else "error",
                    details={
                        "objects": report.objects,
                        "bytes": report.bytes,
                        "sample": sample,
                        "problems": report.problems(),
                        "findings": [
                            {
                                "object_key": finding.object_key,
                                "recording_id": None
                                if finding.recording_id is None
                                else str(finding.recording_id),
                                "problem": finding.problem,
                            }
                            for finding in report.findings[:_LISTED]
                        ],
                    },
                ),
            )
