"""Signed checkpoints of the audit chain's head, kept where the database's owner cannot reach.

The chain alone proves that no event was edited in place, but not that none were cut
from its end or that the whole database was not swapped for an older copy: both leave a
chain that is consistent with itself. A checkpoint (sequence, chain hash, time, replica)
written outside the database at least every few minutes and after every deletion batch
pins the chain as it was; ``compare_with_checkpoint`` then names what a database lacks.

A restored database's chain is behind the latest checkpoint, and the events it gains
from then on fork from it. Nothing anchors it until an operator who restored it says so
(``accept_restore``, audited): start-up cannot tell a restore from a cut tail. The
checkpoint written then opens a new *era*: keys sort by era first, then by
sequence, so the restored chain's checkpoints are the latest from then on even though
their sequence numbers are lower than the ones written before the restore.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.anchors.records import ANCHORS_PREFIX, SignedRecords
from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import AuditEvent, AuditHead
from storage.errors import AnchorInvalid, AnchorMismatch, NothingToAccept
from storage.keys.shared_secrets import receipt_public_keys
from storage.vocabulary import rfc3339

CHECKPOINTS_PREFIX: Final = f"{ANCHORS_PREFIX}checkpoints/"
CHECKPOINT_KIND: Final = "audit-checkpoint"
RESTORE_ACCEPTED_ACTION: Final = "audit.restore_accepted"
"""The audit action of an operator accepting a restored database (a new era)."""
_SEQ_DIGITS = 20  # zero-padded, so the keys sort as their sequence numbers do
_ERA_DIGITS = 4  # one era per restore reconciled: thousands would be absurd

log = logging.getLogger("callrec.anchors")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's head as a signed checkpoint recorded it."""

    seq: int
    chain: bytes
    at: str
    replica: str
    key: str
    after_restore: Mapping[str, Any] | None = None
    era: int = 0
    """How many restores the chain had been reconciled after when this was written."""

    def describe(self) -> str:
        """How an operator reads it in one line."""
        return f"checkpoint at seq {self.seq} ({self.at})"


def checkpoint_key(seq: int, chain: bytes, era: int = 0) -> str:
    """Where the checkpoint of head (seq, chain) in ``era`` lives: two replicas anchoring
    the same head write the same key, and the second is told the first stands."""
    return f"{CHECKPOINTS_PREFIX}{era:0{_ERA_DIGITS}d}-{seq:0{_SEQ_DIGITS}d}-{chain.hex()[:16]}"


class AuditAnchors:
    """Writes checkpoints of the head and reads the latest one back, verified."""

    def __init__(
        self,
        *,
        database: Database,
        records: SignedRecords,
        clock: Callable[[], datetime],
        replica: str,
    ) -> None:
        self._database = database
        self._records = records
        self._clock = clock
        self._replica = replica
        self._latest_key = ""

    async def checkpoint(self, *, after_restore: Checkpoint | None = None) -> Checkpoint | None:
        """Anchor the head as it is now; None while the chain is empty.

        Refuses (AnchorMismatch) when the database disagrees with the latest checkpoint:
        anchoring a cut or rewritten chain would bless it. Only ``accept_restore``, which
        names the checkpoint the database was restored behind (``after_restore``), anchors
        past a disagreement, and says so in the record.
        """
        latest = await self.latest(await self.trusted_keys())
        async with self._database.read() as session:
            if latest is not None and latest != after_restore:
                await compare_with_checkpoint(session, latest)
            head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one()
            seq, chain = head.seq, head.chain
        if seq == 0:
            return None
        if latest is not None and latest.seq == seq and latest.chain == chain:
            return latest
        at = rfc3339(self._clock())
        if after_restore is not None:
            era = after_restore.era + 1
        else:
            era = latest.era if latest is not None else 0
        key = checkpoint_key(seq, chain, era)
        facts: dict[str, Any] = {
            "kind": CHECKPOINT_KIND,
            "seq": seq,
            "chain": chain.hex(),
            "at": at,
            "replica": self._replica,
            "era": era,
        }
        if after_restore is not None:
            facts["after_restore"] = {
                "seq": after_restore.seq,
                "chain": after_restore.chain.hex(),
                "at": after_restore.at,
            }
        elif latest is not None and latest.after_restore is not None:
            # Every checkpoint of an era says which restore opened it: the events after
            # the backup stay missing from this database for as long as the era lasts.
            facts["after_restore"] = dict(latest.after_restore)
        written = await self._records.put(key, facts)
        # The log is the second anchor: a log shipper's copy is out of the database's reach.
        log.info(
            "audit checkpoint",
            extra={"seq": seq, "chain": chain.hex(), "at": at, "key": key, "written": written},
        )
        return Checkpoint(seq, chain, at, self._replica, key, facts.get("after_restore"), era)

    async def accept_restore(self, audit: AuditTrail, *, actor: str, reason: str) -> Checkpoint:
        """Anchor a database an operator restored behind the latest checkpoint, in a new era.

        An operator's act, never start-up's: only someone who knows a backup was restored
        can tell it from a tail cut off by the database's owner. The acceptance is audited
        (``audit.restore_accepted``, with the checkpoint it was behind and the reason) as
        the first event of the new era, and every checkpoint of that era repeats the
        restore, so ``audit verify`` names it for as long as the era lasts.

        Raises NothingToAccept when the database holds the
        latest checkpoint (there is no restore to accept).
        """
        latest = await self.latest(await self.trusted_keys())
        if latest is None:
            raise NothingToAccept("no checkpoint has been written: there is nothing to accept")
        async with self._database.read() as session:
            try:
                await compare_with_checkpoint(session, latest)
            except AnchorMismatch as exc:
                found = str(exc)
            else:
                raise NothingToAccept(
                    f"the database holds the latest {latest.describe()}: there is no restore "
                    "to accept"
                )
        async with self._database.transaction() as session:
            await audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=RESTORE_ACCEPTED_ACTION,
                    details={
                        "behind": latest.key,
                        "seq": latest.seq,
                        "found": found,
                        "reason": reason,
                    },
                ),
            )
        accepted = await self.checkpoint(after_restore=latest)
        assert accepted is not None  # the event just appended is in the chain
        return accepted

    async def trusted_keys(self) -> dict[str, bytes]:
        """The keys a record may be signed by: every listed receipt key, and this service's."""
        async with self._database.read() as session:
            listed = await receipt_public_keys(session)
        return listed | await self._records.own_public_key()

    async def latest(self, public_keys: Mapping[str, bytes]) -> Checkpoint | None:
        """The checkpoint of the highest sequence number in the latest era, verified; None
        if there is none.

        Raises AnchorInvalid when that record is not a genuine checkpoint (something was
        written into the anchors that the service did not sign).
        """
        # Keys sort by era, then sequence, so nothing newer sorts before the latest seen:
        # only the listing's tail is read again (a checkpoint every few minutes for the
        # two years the anchors are kept is a quarter of a million keys).
        keys = await self._records.keys_under(CHECKPOINTS_PREFIX, after=self._latest_key)
        if not keys and not self._latest_key:
            return None
        key = keys[-1] if keys else self._latest_key
        record = await self._records.read(key, CHECKPOINT_KIND, public_keys)
        try:
            seq, chain = int(record["seq"]), bytes.fromhex(record["chain"])
            at, replica = str(record["at"]), str(record["replica"])
            era = int(record.get("era", 0))
        except (KeyError, TypeError, ValueError):
            raise AnchorInvalid(f"{key} lacks a checkpoint's fields") from None
        if key != checkpoint_key(seq, chain, era):
            raise AnchorInvalid(f"{key} holds the checkpoint of another head")
        after = record.get("after_restore")
        self._latest_key = key
        return Checkpoint(
            seq, chain, at, replica, key, after if isinstance(after, dict) else None, era
        )


async def compare_with_checkpoint(session: AsyncSession, checkpoint: Checkpoint) -> None:
    """Raise AnchorMismatch unless the database's chain holds ``checkpoint``'s head.

    Run on a snapshot taken after the checkpoint was read, so a checkpoint written while
    the check runs is never compared with a database that predates it.
    """
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one()
    if head.seq < checkpoint.seq:
        raise AnchorMismatch(
            f"{checkpoint.describe()} but the database's chain ends at seq {head.seq}"
        )
    chain = (
        await session.execute(select(AuditEvent.chain).where(AuditEvent.seq == checkpoint.seq))
    ).scalar_one_or_none()
    if chain is None:
        raise AnchorMismatch(f"{checkpoint.describe()} but event {checkpoint.seq} is missing")
    if chain != checkpoint.chain:
        raise AnchorMismatch(
            f"event {checkpoint.seq} differs from {checkpoint.describe()}: the chain up to it "
            f"hashes to {chain.hex()[:16]}..., the checkpoint says "
            f"{checkpoint.chain.hex()[:16]}..."
        )
