"""The SIPREC settings' rules, kept beside settings.py so that file keeps to reading.

The recording server is off until ``CALLREC_SIPREC_LISTEN`` names where SIP is heard; it
then needs the address SBCs send RTP to, the SBCs allowed (a recorder open to anyone is
a hazard: an empty list admits nobody, so it is refused here), a port range a firewall
can open, and which keys of an SBC's extension data hold the agent, team and referral.
SIP over TCP and TLS are added beside UDP by their own LISTEN settings; TLS needs a
certificate and key, read here so that a wrong file stops start-up with its setting named.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from recorder.siprec.ports import PortRange
from recorder.siprec.recordings import ExtensionRules
from recorder.siprec.transports import StreamListen, TlsFiles

PREFIX = "CALLREC_SIPREC_"


@dataclass(frozen=True, slots=True)
class SiprecListen:
    """Where the SIP server binds (UDP)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SiprecStreams:
    """The TCP and TLS settings as given (None: not set)."""

    tcp_listen: str | None = None
    tls_listen: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None


def listen_address(text: str, setting: str = "LISTEN", example: int = 5060) -> SiprecListen:
    """``host:port`` (``[v6]:port`` for IPv6); ValueError naming the form otherwise."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    wrong = f"{PREFIX}{setting}: must be address:port, e.g. 0.0.0.0:{example}"
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(wrong)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(wrong) from None
    return SiprecListen(host, int(port))


def check_siprec(
    *,
    listen: str | None,
    media_address: str | None,
    allowed_sources: tuple[str, ...],
    rtp_ports: str,
    extension_fields: Mapping[str, str],
    streams: SiprecStreams | None = None,
) -> None:
    """ValueError, naming the setting, for a SIPREC configuration that cannot run."""
    try:
        PortRange.parse(rtp_ports)
    except ValueError as exc:
        raise ValueError(f"{PREFIX}RTP_PORTS: {exc}") from None
    try:
        ExtensionRules.from_mapping(extension_fields)
    except ValueError as exc:
        raise ValueError(f"{PREFIX}EXTENSION_FIELDS: {exc}") from None
    if listen is None:
        for name, value in (
            ("TCP_LISTEN", streams and streams.tcp_listen),
            ("TLS_LISTEN", streams and streams.tls_listen),
        ):
            if value:
                raise ValueError(f"{PREFIX}{name}: needs {PREFIX}LISTEN (UDP) set as well")
        return
    listen_address(listen)
    stream_listens(streams or SiprecStreams())
    if media_address is None:
        raise ValueError(f"{PREFIX}MEDIA_ADDRESS: required, the address SBCs send RTP to")
    try:
        ipaddress.ip_address(media_address)
    except ValueError:
        raise ValueError(f"{PREFIX}MEDIA_ADDRESS: must be an IP address") from None
    if not allowed_sources:
        raise ValueError(
            f"{PREFIX}ALLOWED_SOURCES: required, the SBCs (addresses or networks) that may "
            "record here"
        )


def stream_listens(streams: SiprecStreams) -> tuple[StreamListen, ...]:
    """The TCP and TLS listeners to start; ValueError naming the setting when one cannot."""
    found: list[StreamListen] = []
    if streams.tcp_listen is not None:
        tcp = listen_address(streams.tcp_listen, "TCP_LISTEN")
        found.append(StreamListen(tcp.host, tcp.port))
    files = _tls_files(streams)
    if streams.tls_listen is not None:
        tls = listen_address(streams.tls_listen, "TLS_LISTEN", 5061)
        if files is None:
            raise ValueError(
                f"{PREFIX}TLS_CERT_FILE: required with {PREFIX}TLS_LISTEN, with "
                f"{PREFIX}TLS_KEY_FILE"
            )
        found.append(StreamListen(tls.host, tls.port, files))
    elif files is not None or streams.tls_client_ca_file is not None:
        raise ValueError(f"{PREFIX}TLS_LISTEN: required when the TLS files are set")
    return tuple(found)


def _tls_files(streams: SiprecStreams) -> TlsFiles | None:
    """The TLS files, each read once here so that a wrong one is named at start-up."""
    cert, key, ca = streams.tls_cert_file, streams.tls_key_file, streams.tls_client_ca_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = "TLS_CERT_FILE" if cert is None else "TLS_KEY_FILE"
        raise ValueError(f"{PREFIX}{missing}: required with the other TLS file")
    for name, path in (("TLS_CERT_FILE", cert), ("TLS_KEY_FILE", key), ("TLS_CLIENT_CA_FILE", ca)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{PREFIX}{name}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError):
        raise ValueError(
            f"{PREFIX}TLS_KEY_FILE: cannot be read with {PREFIX}TLS_CERT_FILE (PEM, "
            "unencrypted, the certificate's own key)"
        ) from None
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError):
            raise ValueError(f"{PREFIX}TLS_CLIENT_CA_FILE: not PEM CA certificates") from None
    return TlsFiles(cert, key, ca)
