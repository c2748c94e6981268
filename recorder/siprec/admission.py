"""Who may open a recording session, decided from a request's headers before its body is read.

Pure rules over plain values, so they are tested without SIP and run in the SIP thread
itself: a stranger's or a non-recording INVITE is refused there and then, never reaching
the event loop or the media side. RFC 7866 section 6.1.1: an SRS treats an INVITE as a
recording session only when it carries both the ``siprec`` option tag in Require and the
``+sip.src`` feature tag in its Contact; anything else is not ours to answer, so 403.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from recorder.senders import Network, networks

SIPREC_TAG = "siprec"
SRC_FEATURE = "+sip.src"
# The only extension the recorder implements. No 100rel (PRACK), no timer (RFC 4028: the
# SRC refreshes by re-INVITE or UPDATE, which work without it).
SUPPORTED_OPTIONS: tuple[str, ...] = (SIPREC_TAG,)
# What an SRS needs (UPDATE: RFC 7866 section 7.3's metadata updates and session-timer
# refreshes): REFER, INFO, PRACK and the rest are answered 501 or 403.
ALLOWED_METHODS: tuple[str, ...] = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE")
ACCEPTED_BODIES = "application/sdp, application/rs-metadata+xml, multipart/mixed"

Header = tuple[str, str]
# RFC 3261's token: what an option tag may be. Anything else is not echoed back.
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]{1,64}")
_MAX_ECHOED_TAGS = 8


@dataclass(frozen=True)
class Refusal:
    """A final response and its extra headers; the reason phrase names no caller."""

    code: int
    reason: str
    headers: tuple[Header, ...] = ()


def capability_headers() -> tuple[Header, ...]:
    """Allow, Supported and Accept: what OPTIONS, 200s and 405/501 tell an SRC."""
    return (
        ("Allow", ", ".join(ALLOWED_METHODS)),
        ("Supported", ", ".join(SUPPORTED_OPTIONS)),
        ("Accept", ACCEPTED_BODIES),
    )


NOT_ALLOWED_HERE = Refusal(403, "Forbidden")
NOT_A_RECORDING_SESSION = Refusal(403, "Recording Sessions Only")
NOT_IMPLEMENTED = Refusal(501, "Not Implemented", capability_headers()[:1])
NO_SUCH_DIALOG = Refusal(481, "Call/Transaction Does Not Exist")
REFER_REFUSED = Refusal(403, "Forbidden")


def option_tags(values: Iterable[str]) -> tuple[str, ...]:
    """The option tags of Require (or Supported) header values, lower-cased, in order."""
    tags = (tag.strip().lower() for value in values for tag in value.split(","))
    return tuple(dict.fromkeys(tag for tag in tags if tag))


def contact_feature_tags(contact: str) -> frozenset[str]:
    """The header parameters of a Contact value (those after the ``<uri>``), lower-cased.

    ``<sip:src@10.0.0.1;transport=tcp>;+sip.src;expires=60`` -> {"+sip.src", "expires"}:
    parameters inside the angle brackets belong to the URI and do not count.
    """
    _, bracket, rest = contact.rpartition(">")
    if not bracket:
        # An addr-spec without brackets: every ;param is a header parameter (RFC 3261 20.10).
        rest = contact.partition(";")[2]
        rest = ";" + rest if rest else ""
    names = (param.split("=", 1)[0].strip().lower() for param in rest.split(";"))
    return frozenset(name for name in names if name)


@dataclass(frozen=True)
class AdmissionPolicy:
    """The SRCs that may record here and how many sessions may run at once.

    ``allowed_sources`` are CIDRs (a bare address is its own /32 or /128); an empty list
    admits nobody, on purpose: a recording server open to the internet is a hazard.
    """

    allowed_sources: tuple[Network, ...]
    max_sessions: int = 100
    retry_after_s: int = 30

    @classmethod
    def from_cidrs(
        cls, cidrs: Iterable[str], *, max_sessions: int = 100, retry_after_s: int = 30
    ) -> AdmissionPolicy:
        """Parse the allow-list; ValueError names nothing but the bad CIDR."""
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        return cls(networks(cidrs), max_sessions, retry_after_s)

    def source_allowed(self, host: str) -> bool:
        """Whether a datagram from ``host`` (IPv4, IPv6, bracketed IPv6) may be served."""
        try:
            address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == n.version and address in n for n in self.allowed_sources)

    def refuse_invite(
        self,
        *,
        source_host: str,
        require: Iterable[str],
        contact: str | None,
        active_sessions: int,
    ) -> Refusal | None:
        """Why a new INVITE is refused, or None to go on and read its body.

        Order: the source first (a stranger learns nothing else), then Require (RFC 3261
        8.2.2.3 puts extension checks before method processing), then what makes it a
        recording session, then capacity.
        """
        if not self.source_allowed(source_host):
            return NOT_ALLOWED_HERE
        tags = option_tags(require)
        unsupported = [tag for tag in tags if tag not in SUPPORTED_OPTIONS]
        if unsupported:
            echoed = [tag for tag in unsupported if _TOKEN.fullmatch(tag)][:_MAX_ECHOED_TAGS]
            return Refusal(420, "Bad Extension", (("Unsupported", ", ".join(echoed)),))
        if SIPREC_TAG not in tags or SRC_FEATURE not in contact_feature_tags(contact or ""):
            return NOT_A_RECORDING_SESSION
        if active_sessions >= self.max_sessions:
            return Refusal(503, "Service Unavailable", (("Retry-After", str(self.retry_after_s)),))
        return None
