"""SIP over TCP and TLS in tests: a throwaway certificate, a TLS relay for sipp, a tiny client.

Debian's sipp is built without TLS, so TLS calls go through ``tls_relay``: sipp speaks TCP
to it and it speaks TLS to the server, byte for byte, which is all SIP over TLS is.
``exchange`` sends one request over a stream and reads one response framed by
Content-Length, for the checks that need no dialog.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from recorder.siprec.transports import TlsFiles


def self_signed(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """A fresh key and a certificate for ``host``, written under ``directory`` (a tmp dir)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callrec test recorder")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "recorder.crt"
    key_file = directory / "recorder.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(str(cert_file), str(key_file))


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context trusting only the server's own certificate."""
    context = ssl.create_default_context(cafile=files.cert_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextlib.asynccontextmanager
async def tls_relay(
    server: tuple[str, int], context: ssl.SSLContext, *, source: str = "127.0.0.1"
) -> AsyncIterator[tuple[str, int]]:
    """A TCP address whose connections are relayed over TLS to ``server`` from ``source``."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            *server, ssl=context, local_addr=(source, 0)
        )
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    listener = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[:2]
    finally:
        listener.close()


def options_request(host: str, port: int, transport: str, *, branch: str = "z9hG4bK-o1") -> bytes:
    """An out-of-dialog OPTIONS over ``transport`` (``TCP`` or ``TLS``)."""
    return (
        f"OPTIONS sip:srs@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:5099;branch={branch}\r\n"
        "From: <sip:src@127.0.0.1>;tag=o1\r\n"
        f"To: <sip:srs@{host}:{port}>\r\n"
        f"Call-ID: options-{branch}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> str:
    """One SIP message from a stream, framed by its Content-Length."""
    async with asyncio.timeout(timeout_s):
        head = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"^content-length\s*:\s*(\d+)", head, re.I | re.M)
        body = await reader.readexactly(int(match.group(1))) if match else b""
    return (head + body).decode()


async def exchange(
    server: tuple[str, int],
    request: bytes,
    *,
    context: ssl.SSLContext | None = None,
    source: str = "127.0.0.1",
) -> str:
    """Send ``request`` on a new connection and return the response's text."""
    reader, writer = await asyncio.open_connection(*server, ssl=context, local_addr=(source, 0))
    try:
        writer.write(request)
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()
