"""Key-encryption keys held in a KMS (AWS KMS, or any service speaking its API).

Each data key is sent to the KMS to be encrypted under the configured key, with an
encryption context naming the object it belongs to: the KMS refuses to decrypt it for
any other object, and records every use in its own audit log (CloudTrail). The KMS key
never leaves the KMS; a recording whose wrapped key the KMS will not open is unreadable.

Blocking (boto3); storage calls these from a worker thread.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from storage.errors import KeyringError
from storage.keys.keyring import WrappedKey

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_KEY_LENGTH = 32
_CONTEXT_KEY = "callrec:object"
KMS_PREFIX = "kms-"


class KmsKeyWrapper:
    """Wraps data keys with one KMS key, each bound to its object by encryption context."""

    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._client = client
        self._key_id = key_id
        # A short, stable name for the KMS key in the database (ARNs are long, and the
        # key's id is not a secret but need not be repeated on every row either).
        self._kek_id = KMS_PREFIX + hashlib.sha256(key_id.encode()).hexdigest()[:32]

    @classmethod
    def connect(cls, key_id: str) -> KmsKeyWrapper:
        """A wrapper for ``key_id``; endpoint and credentials from the AWS environment."""
        import boto3

        return cls(boto3.client("kms"), key_id)

    def __repr__(self) -> str:
        return f"KmsKeyWrapper(kek_id={self._kek_id!r})"

    @property
    def current_kek_id(self) -> str:
        return self._kek_id

    def knows(self, kek_id: str) -> bool:
        return kek_id == self._kek_id

    def kek_ids(self) -> list[str]:
        return [self._kek_id]

    def refresh(self) -> None:
        """Nothing to re-read: the KMS holds every version."""

    def rotate(self) -> str:
        """Nothing to do here: the KMS rotates its key's backing material itself.

        With automatic rotation (or RotateKeyOnDemand) turned on in the KMS, new wraps use
        the new material and old wraps still open; moving to another KMS key altogether is
        a change of CALLREC_KMS_KEY_ID, with the old key kept as an older provider.
        """
        return self._kek_id

    def retire(self, kek_id: str) -> bool:
        """Never: retiring a KMS key is ScheduleKeyDeletion, an operator's decision in the KMS."""
        return False

    def wrap(self, dek: bytes, object_id: uuid.UUID) -> WrappedKey:
        """Have the KMS encrypt ``dek`` for ``object_id``; KeyringError if it will not."""
        if len(dek) != _KEY_LENGTH:
            raise ValueError("a data key is exactly 32 bytes")
        answer = self._call(
            "encrypt", KeyId=self._key_id, Plaintext=dek, EncryptionContext=_context(object_id)
        )
        return WrappedKey(self._kek_id, bytes(answer["CiphertextBlob"]))

    def unwrap(self, wrapped: WrappedKey, object_id: uuid.UUID) -> bytes:
        """The data key, if the KMS opens it for ``object_id`` under our key."""
        if wrapped.kek_id != self._kek_id:
            raise KeyringError(f"wrapped under {wrapped.kek_id}, not this KMS key")
        answer = self._call(
            "decrypt",
            KeyId=self._key_id,
            CiphertextBlob=wrapped.blob,
            EncryptionContext=_context(object_id),
        )
        dek = bytes(answer["Plaintext"])
        if len(dek) != _KEY_LENGTH:
            raise KeyringError("the KMS returned something that is not a data key")
        return dek

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: dict[str, Any] = getattr(self._client, operation)(**arguments)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            # Never the message: it may quote the ciphertext or the key's ARN.
            raise KeyringError(f"the KMS refused to {operation}: {code}") from None
        except BotoCoreError as exc:
            raise KeyringError(f"the KMS could not be reached ({type(exc).__name__})") from None
        return answer


def _context(object_id: uuid.UUID) -> dict[str, str]:
    return {_CONTEXT_KEY: str(object_id)}
