"""Which addresses may deliver to which webhook: per-source allow-lists, checked before the body.

A PBX's addresses are known, and a provider publishes its own; a request from anywhere else
is refused with 403 before a byte of its body is read, so it never holds a capture slot.
A webhook without a list accepts any address, as before lists existed.

The peer is the socket's. Behind a reverse proxy every request comes from the proxy, so
``X-Forwarded-For`` is believed only when the socket peer is one of the trusted proxies,
and then only as far back as it stays inside them: the first address from the right that
is not a trusted proxy is the sender (addresses further left were written by the client
and prove nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from recorder.errors import RecorderError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NOT_ALLOWED = "this address may not deliver to this webhook"


class SenderNotAllowed(RecorderError):
    """The request comes from outside the allow-list of the webhook it was sent to."""


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Parse CIDRs (a bare address is its own /32 or /128); ValueError on a bad one."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=True) for cidr in cidrs)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None


def _within(address: Address, allowed: Iterable[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allowed)


class SenderAllowList:
    """The allow-lists of push sources and providers, and how the peer address is found."""

    def __init__(
        self,
        *,
        push: Mapping[str, Iterable[str]] | None = None,
        providers: Mapping[str, Iterable[str]] | None = None,
        trusted_proxies: Iterable[str] = (),
        push_sources: Iterable[str] = (),
    ) -> None:
        self._push = {name: networks(cidrs) for name, cidrs in (push or {}).items()}
        self._providers = {name: networks(cidrs) for name, cidrs in (providers or {}).items()}
        self._proxies = networks(trusted_proxies)
        # A source name nobody configured is held to the union of the lists when every
        # source has one, so a stranger cannot tell a listed source from a made-up name.
        sources = set(push_sources)
        self._unknown_source: tuple[Network, ...] | None = None
        if self._push and sources and sources <= set(self._push):
            self._unknown_source = tuple(net for nets in self._push.values() for net in nets)

    def peer(self, socket_peer: str | None, forwarded_for: str | None) -> Address | None:
        """The sender's address: the socket peer, or behind trusted proxies the forwarded one."""
        address = _address(socket_peer)
        if address is None or not self._proxies or not _within(address, self._proxies):
            return address
        hops = [hop for hop in (forwarded_for or "").split(",") if hop.strip()]
        for hop in reversed(hops):
            forwarded = _address(hop)
            if forwarded is None:
                return None  # a mangled chain proves nothing
            if not _within(forwarded, self._proxies):
                return forwarded
            address = forwarded
        return address

    def check(self, webhook: str, source: str | None, peer: Address | None) -> None:
        """Raise SenderNotAllowed unless ``peer`` may deliver to this webhook."""
        if webhook == "push":
            allowed = self._push.get(source or "", self._unknown_source)
        else:
            allowed = self._providers.get(webhook)
        if allowed is None:
            return
        if peer is None or not _within(peer, allowed):
            raise SenderNotAllowed(NOT_ALLOWED)
