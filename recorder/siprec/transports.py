"""Which SIP transports the recording server listens on, in plain values (no sippy here).

UDP is always there; TCP and TLS are added by ``StreamListen`` entries. A stream listener's
TLS side is described by ``TlsFiles`` and checked by ``server_context`` before anything
binds, so a wrong path or a key that does not match its certificate stops start-up.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate chain and key, and the CA client certificates must chain to.

    Without ``client_ca_file`` any client may connect (the allow-list still applies);
    with it, only clients presenting a certificate from that CA (mutual TLS).
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


@dataclass(frozen=True)
class StreamListen:
    """A TCP listener, or a TLS one when ``tls`` is given."""

    host: str
    port: int
    tls: TlsFiles | None = None

    @property
    def transport(self) -> str:
        return "tls" if self.tls is not None else "tcp"


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context for TLS 1.2 or later, verifying clients only when a CA is given.

    Raises OSError or ssl.SSLError for files that cannot be read or do not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    if files.client_ca_file is not None:
        context.load_verify_locations(cafile=files.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
