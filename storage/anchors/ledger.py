"""The deletion ledger: one signed, create-only record per deleted recording, outside the
database, so a restored backup cannot bring an erased or expired recording back.

A record holds the recording's id, when its deletion was recorded and why (retention or
erasure), and nothing personal: the ledger outlives every recording it names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from storage.anchors.records import ANCHORS_PREFIX, SignedRecords
from storage.errors import AnchorInvalid
from storage.vocabulary import rfc3339

DELETIONS_PREFIX: Final = f"{ANCHORS_PREFIX}deletions/"
DELETION_KIND: Final = "deletion"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One deletion as the ledger records it."""

    recording_id: uuid.UUID
    at: str
    reason: str


def ledger_key(recording_id: uuid.UUID) -> str:
    """Where the record of ``recording_id``'s deletion lives."""
    return f"{DELETIONS_PREFIX}{recording_id}"


class DeletionLedger:
    """Records deletions, and reads them back verified."""

    def __init__(self, records: SignedRecords) -> None:
        self._records = records

    async def record(self, deletions: Mapping[uuid.UUID, str], now: datetime) -> None:
        """Record each recording's deletion and its reason; one already recorded stands."""
        for recording_id, reason in deletions.items():
            await self._records.put(
                ledger_key(recording_id),
                {
                    "kind": DELETION_KIND,
                    "recording_id": str(recording_id),
                    "at": rfc3339(now),
                    "reason": reason,
                },
            )

    async def entries(self, public_keys: Mapping[str, bytes]) -> Iterable[LedgerEntry]:
        """Every entry, verified; AnchorInvalid at the first that is not genuine."""
        found = []
        for key in await self._records.keys_under(DELETIONS_PREFIX):
            record = await self._records.read(key, DELETION_KIND, public_keys)
            try:
                recording_id = uuid.UUID(str(record["recording_id"]))
            except (KeyError, ValueError):
                raise AnchorInvalid(f"{key} names no recording") from None
            if key != ledger_key(recording_id):
                raise AnchorInvalid(f"{key} holds another recording's deletion")
            found.append(LedgerEntry(recording_id, str(record["at"]), str(record["reason"])))
        return found

    async def says_deleted(self, recording_id: uuid.UUID) -> bool:
        """Whether the ledger has a record of ``recording_id``'s deletion."""
        return await self._records.objects.exists(ledger_key(recording_id))
