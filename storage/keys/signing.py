"""Ed25519 signing keys and 32-byte secrets, and reading the files older versions kept.

Two signing keys exist: the dev-mode token key (only for ``CALLREC_AUTH_MODE=dev``;
production tokens come from the organisation's identity provider and are never signed
here) and the key that signs deletion receipts. Both, and the grant secret, are now kept
in the database (``shared_secrets``); the files are read only to adopt what an existing
data directory made, and by tools that want a key of their own.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from storage.durable_files import read_private_file, write_private_file
from storage.errors import KeyringError

_MAX_PEM_BYTES = 4096
_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A signing key as PEM, for the JWT library; ``key_id`` names it in token headers."""

    key_id: str
    private_pem: bytes = field(repr=False)
    public_pem: bytes


def load_signing_key(path: Path, *, create: bool = True) -> SigningKey:
    """Read the key at ``path``, creating it (0600) on first use; KeyringError if unsafe."""
    if not path.exists():
        if not create:
            raise KeyringError(f"no signing key at {path}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem, exclusive=True)
    pem = read_private_file(path, _MAX_PEM_BYTES)
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyringError(f"{path} does not hold a PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyringError(f"{path} is not an Ed25519 key")
    return _signing_key(private)


def signing_key_from_seed(seed: bytes) -> SigningKey:
    """The Ed25519 key whose 32-byte private seed is ``seed``."""
    return _signing_key(Ed25519PrivateKey.from_private_bytes(seed))


def seed_of(key: SigningKey) -> bytes:
    """The 32-byte private seed of ``key``: what the database keeps, wrapped."""
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyringError("not an Ed25519 key")
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _signing_key(private: Ed25519PrivateKey) -> SigningKey:
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(_key_id(public), pem, public)


def public_key_id(public_pem: bytes) -> str:
    """The id the service gives the Ed25519 key whose public half is ``public_pem``.

    The PEM is read and written again first, so a copy with other line endings or
    surrounding text names the same key. KeyringError if it is not an Ed25519 public key.
    """
    try:
        public = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError):
        raise KeyringError("not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyringError("not an Ed25519 public key")
    return _key_id(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _key_id(public_pem: bytes) -> str:
    return hashlib.sha256(public_pem).hexdigest()[:16]


def load_secret(path: Path, *, create: bool = True) -> bytes:
    """32 random bytes kept in a 0600 file (created on first use); KeyringError if unsafe.

    For keys that never leave this service, such as the one signing playback grants.
    """
    if not path.exists():
        if not create:
            raise KeyringError(f"no secret at {path}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_file(path, os.urandom(_SECRET_BYTES), exclusive=True)
    secret = read_private_file(path, _SECRET_BYTES)
    if len(secret) != _SECRET_BYTES:
        raise KeyringError(f"{path} does not hold {_SECRET_BYTES} bytes")
    return secret
