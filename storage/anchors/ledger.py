"""The deletion ledger: one signed, create-only record per deleted recording, outside the
database, so a restored backup cannot bring an erased or expired recording back.

A record holds the recording's id, when its deletion was recorded and why (retention or
erasure), and nothing personal: the ledger outlives every recording it names.

Playback asks the ledger about every recording it is about to serve, so the answer must
cost nothing on the usual path. The ledger keeps the set of ids its keys name (one LIST,
a thousand keys a request: about 27 requests for the 27,000 recordings a hub of 300 calls
a day deletes in 90 days), loaded before the service serves and refreshed on an interval;
the deletions this process records join it at once. Only a hit, which is rare (the
database says the recording is stored, the ledger says it is gone: a restore not yet
reconciled), reads and verifies that one record, and remembers the verdict. A miss never
asks the store: a deletion recorded elsewhere is in the shared database first, and a
restored database is reconciled against a fresh listing before anything is served.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from storage.anchors.records import ANCHORS_PREFIX, SignedRecords
from storage.errors import AnchorInvalid, ObjectMissing
from storage.vocabulary import rfc3339

DELETIONS_PREFIX: Final = f"{ANCHORS_PREFIX}deletions/"
DELETION_KIND: Final = "deletion"

log = logging.getLogger("callrec.anchors")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One deletion as the ledger records it."""

    recording_id: uuid.UUID
    at: str
    reason: str


def ledger_key(recording_id: uuid.UUID) -> str:
    """Where the record of ``recording_id``'s deletion lives."""
    return f"{DELETIONS_PREFIX}{recording_id}"


def recording_id_in(key: str) -> uuid.UUID | None:
    """The recording a ledger key names; None for a key that names none."""
    try:
        return uuid.UUID(key.removeprefix(DELETIONS_PREFIX))
    except ValueError:
        return None


class DeletionLedger:
    """Records deletions, reads them back verified, and answers whether one is recorded."""

    def __init__(
        self,
        records: SignedRecords,
        trusted_keys: Callable[[], Awaitable[Mapping[str, bytes]]],
    ) -> None:
        """``trusted_keys`` gives the keys a record may be signed by (read at each check,
        so a key listed later is honoured)."""
        self._records = records
        self._trusted_keys = trusted_keys
        self._recorded: set[uuid.UUID] | None = None
        self._verdicts: dict[uuid.UUID, datetime | None] = {}

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
            if self._recorded is not None:
                self._recorded.add(recording_id)

    async def refresh(self) -> set[uuid.UUID]:
        """List the ledger (keys only, nothing read or verified) and keep the ids it names."""
        recorded = set()
        for key in await self._records.keys_under(DELETIONS_PREFIX):
            recording_id = recording_id_in(key)
            if recording_id is None:
                log.error("a key in the deletion ledger names no recording", extra={"key": key})
                continue
            recorded.add(recording_id)
        self._recorded = recorded
        return set(recorded)

    async def entry(self, recording_id: uuid.UUID, public_keys: Mapping[str, bytes]) -> LedgerEntry:
        """``recording_id``'s entry, verified; AnchorInvalid if it is not genuine,
        ObjectMissing if there is none."""
        key = ledger_key(recording_id)
        record = await self._records.read(key, DELETION_KIND, public_keys)
        if record.get("recording_id") != str(recording_id):
            raise AnchorInvalid(f"{key} holds another recording's deletion")
        return LedgerEntry(recording_id, str(record.get("at")), str(record.get("reason")))

    async def entries(self, public_keys: Mapping[str, bytes]) -> Iterable[LedgerEntry]:
        """Every entry, verified; AnchorInvalid at the first that is not genuine."""
        found = []
        for key in await self._records.keys_under(DELETIONS_PREFIX):
            recording_id = recording_id_in(key)
            if recording_id is None:
                raise AnchorInvalid(f"{key} names no recording")
            found.append(await self.entry(recording_id, public_keys))
        return found

    async def deleted_at(self, recording_id: uuid.UUID) -> datetime | None:
        """When the ledger recorded ``recording_id``'s deletion; None if it has not.

        From the listing kept in memory; a hit is verified once and remembered. Before the
        first listing (a command, not the service) the store is asked each time.
        """
        if recording_id in self._verdicts:
            return self._verdicts[recording_id]
        if self._recorded is not None and recording_id not in self._recorded:
            return None
        try:
            entry = await self.entry(recording_id, await self._trusted_keys())
            verdict: datetime | None = _moment(entry.at)
        except AnchorInvalid:
            # Never acted on: a record the service did not sign cannot take a recording away.
            log.error(
                "a deletion ledger entry is not genuine",
                extra={"key": ledger_key(recording_id)},
                exc_info=True,
            )
            verdict = None
        except ObjectMissing:
            return None
        self._verdicts[recording_id] = verdict
        return verdict

    async def says_deleted(self, recording_id: uuid.UUID) -> bool:
        """Whether the ledger holds a genuine record of ``recording_id``'s deletion."""
        return await self.deleted_at(recording_id) is not None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise AnchorInvalid(f"a deletion ledger entry's time is not a time: {text!r}") from None
    return moment
