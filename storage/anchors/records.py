"""Signed, create-only JSON records in the object store: the mechanics the anchors share.

Why this is an anchor at all: the database's owner can rewrite every table, triggers
included, but cannot write or replace these records.

- **Where**: the object store, which refuses to overwrite (``ObjectExists``; S3's
  ``If-None-Match: *``), and on a bucket with Object Lock each record is also locked
  (governance or compliance mode, ``CALLREC_ANCHOR_LOCK_MODE``), so not even a deletion
  removes it before its date. The service's store credentials are not the database's.
- **Signed by**: the receipt-signing key, an Ed25519 key whose private seed the database
  keeps only wrapped by the root key (the KMS in production, the local keyring on one
  node; ``storage.keys.shared_secrets``). Whoever holds only the database holds a blob
  they cannot open, so they can neither forge a record nor sign one for a rewritten
  chain. Each record names its ``kind``, so a deletion receipt signed by the same key is
  never taken for a checkpoint or a ledger entry, nor the other way round.
- **Checked with**: the receipt keys' public halves. A record that does not verify is
  refused (``AnchorInvalid``), never acted on: someone who can write into the store but
  not sign cannot make the service delete anything or pass a rewritten chain.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from storage.audit import canonical_details
from storage.errors import AnchorInvalid, ObjectExists
from storage.keys.receipts import ReceiptSigner, verify_receipt
from storage.objects.store import ObjectLock, ObjectStore

ANCHORS_PREFIX = "anchors/"
MAX_RECORD_BYTES = 16 * 1024
"""Far above any record's size; a bigger object under ``anchors/`` is not one of ours."""

LockMode = Literal["none", "governance", "compliance"]


@dataclass(frozen=True, slots=True)
class AnchorLock:
    """How long a record is kept locked where the bucket has Object Lock, and in which mode."""

    mode: LockMode = "none"
    period: timedelta = timedelta(days=730)

    def for_record(self, now: datetime) -> ObjectLock | None:
        """The store lock for a record written at ``now``; None when locking is off."""
        if self.mode == "none":
            return None
        mode: Literal["GOVERNANCE", "COMPLIANCE"] = (
            "GOVERNANCE" if self.mode == "governance" else "COMPLIANCE"
        )
        return ObjectLock(mode, now + self.period)


class SignedRecords:
    """Writes records create-only and reads them back verified against the listed keys."""

    def __init__(
        self,
        objects: ObjectStore,
        signer: Callable[[], Awaitable[ReceiptSigner]],
        *,
        clock: Callable[[], datetime],
        lock: AnchorLock = AnchorLock(),
    ) -> None:
        self._objects = objects
        self._signer = signer
        self._clock = clock
        self._lock = lock

    @property
    def objects(self) -> ObjectStore:
        """The store the records live in."""
        return self._objects

    async def own_public_key(self) -> dict[str, bytes]:
        """This service's signing key's public half, by key id."""
        signer = await self._signer()
        return {signer.key_id: signer.public_pem}

    async def put(self, key: str, facts: Mapping[str, Any]) -> bool:
        """Sign ``facts`` and store them under ``key``; False if a record is there already.

        A record is never replaced: the first one written under a key stands.
        """
        record = (await self._signer()).sign(facts)
        data = canonical_details(record)
        with tempfile.TemporaryDirectory(prefix="callrec-anchor-") as directory:
            path = Path(directory) / "record.json"
            await asyncio.to_thread(path.write_bytes, data)
            try:
                await self._objects.put_file(key, path, lock=self._lock.for_record(self._clock()))
            except ObjectExists:
                return False
        return True

    async def read(self, key: str, kind: str, public_keys: Mapping[str, bytes]) -> dict[str, Any]:
        """The record under ``key``, verified; AnchorInvalid if it is not a signed ``kind``.

        ObjectMissing when there is none.
        """
        size = await self._objects.size(key)
        if size > MAX_RECORD_BYTES:
            raise AnchorInvalid(f"{key} is {size} bytes, too large to be an anchor record")
        try:
            record = json.loads(await self._objects.read_range(key, 0, size))
        except ValueError:
            raise AnchorInvalid(f"{key} is not a JSON record") from None
        if not isinstance(record, dict) or record.get("kind") != kind:
            raise AnchorInvalid(f"{key} is not a {kind} record")
        key_id = record.get("key_id")
        public_pem = public_keys.get(key_id) if isinstance(key_id, str) else None
        if public_pem is None:
            raise AnchorInvalid(f"{key} is signed by key {key_id!r}, which is not listed")
        if not verify_receipt(record, public_pem):
            raise AnchorInvalid(f"{key}: the signature by key {key_id} does not verify")
        return record

    async def keys_under(self, prefix: str, *, after: str = "") -> list[str]:
        """Every record key under ``prefix`` (sorting after ``after``), sorted."""
        return sorted([key async for key in self._objects.iter_keys(prefix, after=after)])
