"""The SIPREC settings' rules, kept beside settings.py so that file keeps to reading.

The recording server is off until ``CALLREC_SIPREC_LISTEN`` names where SIP is heard; it
then needs the address SBCs send RTP to, the SBCs allowed (a recorder open to anyone is
a hazard: an empty list admits nobody, so it is refused here), a port range a firewall
can open, and which keys of an SBC's extension data hold the agent, team and referral.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from recorder.siprec.ports import PortRange
from recorder.siprec.recordings import ExtensionRules

PREFIX = "CALLREC_SIPREC_"


@dataclass(frozen=True, slots=True)
class SiprecListen:
    """Where the SIP server binds (UDP)."""

    host: str
    port: int


def listen_address(text: str) -> SiprecListen:
    """``host:port`` (``[v6]:port`` for IPv6); ValueError naming the form otherwise."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    wrong = f"{PREFIX}LISTEN: must be address:port, e.g. 0.0.0.0:5060"
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
        return
    listen_address(listen)
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
