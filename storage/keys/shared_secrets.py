"""Secrets every replica must agree on, kept once in the database under the root key.

Playback grants, the OIDC sign-in state, dev-mode tokens and deletion receipts are signed
by one replica and checked by any other, so their keys cannot live in a data directory.
Each is 32 bytes (a secret, or an Ed25519 private seed), wrapped by the key-encryption-key
provider (the KMS in production) and bound to its name, so neither the table nor a row
moved to another name opens anything. The first replica to start creates each one; any
number starting at once agree, because a secret is inserted only if absent and every
replica then uses the row it reads back.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import ReceiptKey, SharedSecret
from storage.db.repository import dialect_insert
from storage.errors import KeyringError, StorageError
from storage.keys.keyring import WrappedKey
from storage.keys.providers import KeyChain
from storage.keys.signing import SigningKey, seed_of, signing_key_from_seed

GRANT_SIGNING: Final = "grant-signing"
DEV_TOKEN_SIGNING: Final = "dev-token-signing"  # noqa: S105 - a name, not a secret
RECEIPT_SIGNING: Final = "receipt-signing"
KEYS_ACTOR: Final = "keys"
_SECRET_BYTES: Final = 32
# Each secret's wrap is bound to its name through the object id the providers bind to.
_NAMESPACE: Final = uuid.UUID("6f1e2b0c-5d7a-4c61-9a0e-3b8f4d2c7e15")


@dataclass(frozen=True, slots=True)
class SharedKeys:
    """The secrets replicas share, opened."""

    grant_secret: bytes = field(repr=False)
    dev_token_key: SigningKey
    receipt_key: SigningKey


@dataclass(frozen=True, slots=True)
class AdoptedKeys:
    """What an existing data directory made before secrets were shared, if anything.

    Adopted only where the database has none yet, so links, tokens and receipts made
    before still verify; a receipt key's public half is always listed, since receipts it
    signed must verify forever.
    """

    grant_secret: bytes | None = field(default=None, repr=False)
    dev_token_key: SigningKey | None = None
    receipt_key: SigningKey | None = None


class SharedSecrets:
    """Creates (once), opens and re-wraps the shared secrets; lists receipt public keys."""

    def __init__(
        self,
        database: Database,
        root: KeyChain,
        audit: AuditTrail,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._root = root
        self._audit = audit
        self._clock = clock

    async def open(self, adopted: AdoptedKeys = AdoptedKeys()) -> SharedKeys:
        """Every shared secret, created from ``adopted`` or at random where there is none."""
        if adopted.receipt_key is not None:
            # First, and needing no key: the receipts it signed verify even if this
            # directory cannot open what the others share.
            await self.list_receipt_key(adopted.receipt_key)
        grant = await self._secret(GRANT_SIGNING, adopted.grant_secret)
        dev = await self._secret(DEV_TOKEN_SIGNING, _seed(adopted.dev_token_key))
        receipt_key = signing_key_from_seed(
            await self._secret(RECEIPT_SIGNING, _seed(adopted.receipt_key))
        )
        await self.list_receipt_key(receipt_key)
        return SharedKeys(grant, signing_key_from_seed(dev), receipt_key)

    async def list_receipt_key(self, key: SigningKey) -> None:
        """Add ``key``'s public half to the append-only list (audited), if not there."""
        async with self._database.transaction() as session:
            inserted = await session.execute(
                dialect_insert(session)(ReceiptKey)
                .values(
                    key_id=key.key_id,
                    public_pem=key.public_pem.decode("ascii"),
                    created_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["key_id"])
            )
            if getattr(inserted, "rowcount", 0):
                await self._audit.append(
                    session,
                    AuditRecord(
                        actor=KEYS_ACTOR,
                        action="keys.receipt_key_listed",
                        details={
                            "key_id": key.key_id,
                            "public_pem": key.public_pem.decode("ascii"),
                        },
                    ),
                )

    async def rewrap(self) -> int:
        """Re-wrap every shared secret not under the current key-encryption key.

        After a rotation, or a move from the local keyring to a KMS, so the older key can
        be retired and replicas without it can open the secrets. Returns how many moved.
        """
        async with self._database.read() as session:
            names = list((await session.execute(select(SharedSecret.name))).scalars())
        moved = 0
        for name in names:
            moved += await self._rewrap_one(name)
        return moved

    async def _secret(self, name: str, adopted: bytes | None) -> bytes:
        try:
            async with self._database.read() as session:
                row = await session.get(SharedSecret, name)
        except ProgrammingError:
            # A release deployed before its migration ran: say what to do, not a traceback.
            raise StorageError(
                "the database has no shared_secret table: run `callrec db upgrade` first"
            ) from None
        if row is None:
            await self._create(name, adopted or os.urandom(_SECRET_BYTES), adopted is not None)
        elif row.kek_id != self._root.current_kek_id:
            await self._rewrap_one(name)
        async with self._database.read() as session:
            row = await session.get(SharedSecret, name)
        if row is None:
            raise KeyringError(f"the shared secret {name} vanished while it was being created")
        secret = await self._unwrap(name, row)
        if len(secret) != _SECRET_BYTES:
            raise KeyringError(f"the shared secret {name} is not {_SECRET_BYTES} bytes")
        return secret

    async def _create(self, name: str, secret: bytes, adopted: bool) -> None:
        wrapped = await asyncio.to_thread(self._root.wrap, secret, uuid.uuid5(_NAMESPACE, name))
        async with self._database.transaction() as session:
            inserted = await session.execute(
                dialect_insert(session)(SharedSecret)
                .values(
                    name=name,
                    kek_id=wrapped.kek_id,
                    wrapped=wrapped.blob,
                    created_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )
            # Another replica may have won the race: its row stands, and is read back.
            if getattr(inserted, "rowcount", 0):
                await self._audit.append(
                    session,
                    AuditRecord(
                        actor=KEYS_ACTOR,
                        action="keys.shared_secret_created",
                        details={"name": name, "kek_id": wrapped.kek_id, "adopted": adopted},
                    ),
                )

    async def _rewrap_one(self, name: str) -> int:
        object_id = uuid.uuid5(_NAMESPACE, name)
        async with self._database.read() as session:
            row = await session.get(SharedSecret, name)
        current = self._root.current_kek_id
        if row is None or row.kek_id == current:
            return 0
        old_kek = row.kek_id
        secret = await self._unwrap(name, row)
        wrapped = await asyncio.to_thread(self._root.wrap, secret, object_id)
        async with self._database.transaction() as session:
            # Only if still as read: a replica re-wrapping at the same time wrote the same
            # secret, and either wrap opens it.
            changed = await session.execute(
                update(SharedSecret)
                .where(SharedSecret.name == name, SharedSecret.kek_id == old_kek)
                .values(kek_id=wrapped.kek_id, wrapped=wrapped.blob)
            )
            return 1 if getattr(changed, "rowcount", 0) else 0

    async def _unwrap(self, name: str, row: SharedSecret) -> bytes:
        wrapped = WrappedKey(row.kek_id, row.wrapped)
        if not self._root.knows(row.kek_id):
            raise KeyringError(
                f"the shared secret {name} is wrapped under key-encryption key {row.kek_id}, "
                "which this replica does not hold: replicas need the same CALLREC_KMS_KEY_ID"
            )
        return await asyncio.to_thread(self._root.unwrap, wrapped, uuid.uuid5(_NAMESPACE, name))


async def receipt_public_keys(session: AsyncSession) -> dict[str, bytes]:
    """Every receipt-signing public key ever listed, by key id."""
    rows = await session.execute(select(ReceiptKey.key_id, ReceiptKey.public_pem))
    return {key_id: pem.encode("ascii") for key_id, pem in rows}


def _seed(key: SigningKey | None) -> bytes | None:
    return None if key is None else seed_of(key)
