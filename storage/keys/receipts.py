"""Signed deletion receipts: proof, checkable outside this service, that a recording went.

The audit chain already shows that nothing was edited after the fact; a receipt adds a
signature by the service's receipt key over what was destroyed (identified only by
hashes), so a receipt handed to a data subject or a regulator stands on its own.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import canonical_details
from storage.db.models import AuditEvent
from storage.errors import ReceiptInvalid
from storage.keys.signing import SigningKey

RECEIPT_ACTION: Final = "recording.deleted"
RECEIPT_VERSION = 1
_SIGNATURE = "signature"


class ReceiptSigner:
    """Signs receipts with the service's Ed25519 receipt key (shared by every replica)."""

    def __init__(self, key: SigningKey) -> None:
        private = serialization.load_pem_private_key(key.private_pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise TypeError("receipts are signed with Ed25519")
        self._private = private
        self.key_id = key.key_id
        self.public_pem = key.public_pem

    def sign(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The receipt: ``facts`` plus the version, key id and a signature over all of it."""
        body = {**facts, "receipt_version": RECEIPT_VERSION, "key_id": self.key_id}
        signature = self._private.sign(canonical_details(body))
        return {**body, _SIGNATURE: base64.b64encode(signature).decode()}


def verify_receipt(receipt: Mapping[str, Any], public_pem: bytes) -> bool:
    """Whether ``receipt`` is unaltered and signed by the key whose public half is given."""
    public = serialization.load_pem_public_key(public_pem)
    if not isinstance(public, Ed25519PublicKey) or not isinstance(receipt.get(_SIGNATURE), str):
        return False
    body = {name: value for name, value in receipt.items() if name != _SIGNATURE}
    try:
        public.verify(base64.b64decode(receipt[_SIGNATURE], validate=True), canonical_details(body))
    except (InvalidSignature, ValueError):
        return False
    return True


async def verify_deletion_receipts(
    session: AsyncSession,
    public_keys: Mapping[str, bytes],
    *,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Check every receipt in the trail against the listed keys; return how many verified.

    Raises ReceiptInvalid naming the first receipt (by audit event) that names a key not
    in the list, whose signature does not cover what it says, or that is another
    recording's receipt.
    """
    checked, after = 0, 0
    while True:
        rows = (
            await session.execute(
                select(AuditEvent.seq, AuditEvent.recording_id, AuditEvent.details)
                .where(AuditEvent.action == RECEIPT_ACTION, AuditEvent.seq > after)
                .order_by(AuditEvent.seq)
                .limit(batch_size)
            )
        ).all()
        for seq, recording_id, details in rows:
            receipt = details or {}
            key_id = receipt.get("key_id")
            public_pem = public_keys.get(key_id) if isinstance(key_id, str) else None
            if public_pem is None:
                raise ReceiptInvalid(seq, f"signed by key {key_id!r}, which is not listed")
            if not verify_receipt(receipt, public_pem):
                raise ReceiptInvalid(seq, f"the signature by key {key_id} does not verify")
            # A genuine receipt copied onto another recording's event proves nothing there.
            if recording_id is not None and receipt.get("recording_id") != str(recording_id):
                raise ReceiptInvalid(seq, "the receipt is for another recording than its event")
            after = seq
        checked += len(rows)
        if progress is not None and rows:
            progress(len(rows))
        if len(rows) < batch_size:
            return checked
