"""Encrypting a bundle for delivery with age (pyrage), and opening one again.

To a recipient's age public key (``age1...``) the bundle is streamed:
pyrage's ``encrypt_io`` runs on a thread, pulling plaintext from the event loop and
pushing ciphertext back to it one chunk at a time, so memory stays flat (200 MB in about
half a megabyte) and the plaintext never touches a disk. pyrage offers a passphrase only
as ``passphrase.encrypt(bytes)``, whole in memory, so a passphrase bundle is held in
memory up to ``PASSPHRASE_LIMIT_BYTES`` and refused above it with a pointer to a key.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, TypeVar

import pyrage

from retrieval.sar_bundle.errors import BundleInvalid, BundleRefused, BundleUnopenable

T = TypeVar("T")

PASSPHRASE_LIMIT_BYTES: Final = 256 * 1024 * 1024
"""The largest bundle encrypted to a passphrase: pyrage holds it, and its ciphertext, whole
in memory; a recipient key has no such limit."""

CHUNK_BYTES: Final = 64 * 1024
_AGE_PAYLOAD_DAMAGED = "decryption error"  # pyrage's words for a chunk that fails to open


@dataclass(frozen=True, slots=True)
class ToRecipients:
    """Encrypt to these age recipients (``age1...``); any one of their identities opens it."""

    recipients: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.recipients:
            raise BundleRefused("no age recipient given")
        for text in self.recipients:
            _parse_recipient(text)


@dataclass(frozen=True, slots=True)
class ToPassphrase:
    """Encrypt to a passphrase (age's scrypt); held in memory, up to ``limit_bytes``."""

    passphrase: str = field(repr=False)
    limit_bytes: int = PASSPHRASE_LIMIT_BYTES

    def __post_init__(self) -> None:
        if not self.passphrase:
            raise BundleRefused("the passphrase is empty")


Encryption = ToRecipients | ToPassphrase


def _parse_recipient(text: str) -> Any:
    try:
        return pyrage.x25519.Recipient.from_str(text.strip())
    except pyrage.RecipientError:
        raise BundleRefused(f"not an age recipient: {text[:20]!r}...") from None


async def encrypt_stream(
    plaintext: AsyncIterator[bytes], to: Encryption, write: Callable[[bytes], Awaitable[None]]
) -> None:
    """Encrypt what ``plaintext`` yields, handing the ciphertext to ``write`` in order.

    Raises what ``plaintext`` or ``write`` raised, or BundleRefused for a passphrase bundle
    over its limit; cancelling stops the encrypting thread before returning.
    """
    if isinstance(to, ToPassphrase):
        await _encrypt_to_passphrase(plaintext, to, write)
        return
    recipients = [_parse_recipient(text) for text in to.recipients]
    bridge = _LoopBridge(asyncio.get_running_loop())
    reader = _LoopReader(bridge, plaintext)
    writer = _LoopWriter(bridge, write)

    def encrypt() -> None:
        try:
            pyrage.encrypt_io(reader, writer, recipients)
        except pyrage.EncryptError:
            if bridge.failure is not None:
                raise bridge.failure from None  # the loop's own error, not pyrage's echo of it
            raise

    await bridge.run(encrypt)


async def _encrypt_to_passphrase(
    plaintext: AsyncIterator[bytes], to: ToPassphrase, write: Callable[[bytes], Awaitable[None]]
) -> None:
    parts: list[bytes] = []
    held = 0
    async for chunk in plaintext:
        held += len(chunk)
        if held > to.limit_bytes:
            raise BundleRefused(
                f"the bundle is over {to.limit_bytes // (1024 * 1024)} MiB, the most that is "
                "encrypted to a passphrase (in memory); encrypt it to an age recipient key"
            )
        parts.append(chunk)
    whole = b"".join(parts)
    parts.clear()
    ciphertext: bytes = await asyncio.to_thread(pyrage.passphrase.encrypt, whole, to.passphrase)
    del whole
    view = memoryview(ciphertext)
    for start in range(0, len(view), CHUNK_BYTES):
        await write(bytes(view[start : start + CHUNK_BYTES]))


class _LoopBridge:
    """Lets a worker thread await coroutines on the event loop, one at a time, and stops
    it promptly when the loop's side is cancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: concurrent.futures.Future[Any] | None = None
        self._aborted = False
        self.failure: BaseException | None = None

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Await ``make()`` on the loop and wait for it (from the worker thread); the
        awaitable is made there, so one abandoned before it started leaves nothing behind."""
        if self._aborted:
            raise OSError("the bundle was abandoned")

        async def on_loop() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(on_loop(), self._loop)
        self._pending = future
        try:
            return future.result()
        except BaseException as exc:
            self.failure = self.failure or exc
            raise
        finally:
            self._pending = None

    async def run(self, work: Callable[[], None]) -> None:
        """Run ``work`` on a thread; if cancelled, unblock it and wait for it to end."""
        thread = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:
            self._aborted = True
            pending = self._pending
            if pending is not None:
                pending.cancel()
            await asyncio.gather(thread, return_exceptions=True)
            raise


class _LoopReader(io.RawIOBase):
    """The plaintext as a blocking file for pyrage, read from an async iterator."""

    def __init__(self, bridge: _LoopBridge, chunks: AsyncIterator[bytes]) -> None:
        super().__init__()
        self._bridge = bridge
        self._chunks = chunks
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            chunk = self._bridge.call(self._next_chunk)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count

    async def _next_chunk(self) -> bytes | None:
        return await anext(self._chunks, None)


class _LoopWriter(io.RawIOBase):
    """The ciphertext's destination as a blocking file for pyrage, written on the loop."""

    def __init__(self, bridge: _LoopBridge, write: Callable[[bytes], Awaitable[None]]) -> None:
        super().__init__()
        self._bridge = bridge
        self._write = write

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._bridge.call(lambda: self._write(chunk))
        return len(chunk)


# Opening a bundle: blocking, for the offline verifier.


@dataclass(frozen=True, slots=True)
class WithIdentities:
    """Open with these age identities (``AGE-SECRET-KEY-1...``), streamed."""

    identities: tuple[Any, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class WithPassphrase:
    """Open with a passphrase; the ciphertext is read whole, up to ``limit_bytes``."""

    passphrase: str = field(repr=False)
    limit_bytes: int = PASSPHRASE_LIMIT_BYTES


Decryption = WithIdentities | WithPassphrase


def read_identities(text: str) -> WithIdentities:
    """The identities of an age identity file (one per line, '#' comments); BundleUnopenable
    naming the first line that is not one (without echoing the line, a secret)."""
    identities: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise BundleUnopenable(f"line {number} is not an age identity") from None
    if not identities:
        raise BundleUnopenable("no age identity in the identity file")
    return WithIdentities(tuple(identities))


def decrypt_into(source: BinaryIO, key: Decryption, sink: BinaryIO) -> None:
    """Write the plaintext of ``source`` to ``sink``, authenticated chunk by chunk.

    BundleUnopenable if ``key`` does not open it or it is not age at all; BundleInvalid if
    it opens but a later chunk is damaged or the stream is cut short (pyrage has written
    what authenticated before that, so the reader must wait for this to return).
    """
    try:
        if isinstance(key, WithIdentities):
            pyrage.decrypt_io(source, sink, list(key.identities))
            return
        ciphertext = source.read(key.limit_bytes + 1)
        if len(ciphertext) > key.limit_bytes:
            raise BundleUnopenable(
                f"the bundle is over {key.limit_bytes // (1024 * 1024)} MiB, too large to "
                "open with a passphrase (in memory)"
            )
        plaintext: bytes = pyrage.passphrase.decrypt(ciphertext, key.passphrase)
    except (pyrage.DecryptError, OSError) as exc:
        raise _decrypt_problem(exc) from None
    sink.write(plaintext)


def _decrypt_problem(exc: Exception) -> Exception:
    reason = str(exc)
    if isinstance(exc, OSError) and reason != _AGE_PAYLOAD_DAMAGED:
        return exc  # the sink's own failure (the reader stopped): not the bundle's
    if reason == _AGE_PAYLOAD_DAMAGED:
        return BundleInvalid(
            "the encrypted bundle is damaged or cut short: a chunk fails authentication"
        )
    if reason == "No matching keys found":
        return BundleUnopenable(
            "the bundle is not encrypted to this identity or passphrase (or its header is damaged)"
        )
    if reason == "Decryption failed":
        return BundleUnopenable("wrong passphrase")
    return BundleUnopenable(f"not a complete age-encrypted file ({reason})")
