"""Fetching a recording from a cloud platform without letting a webhook choose what we fetch.

A callback names a URL, and whoever can forge or replay a callback could name any URL:
the cloud metadata service, a database on the private network, a file server. So:

- a URL is fetched only from its provider's configured origin (scheme, host and port);
- redirects are followed by hand, only to that origin or to hosts configured as the
  provider's storage, and credentials are sent only to the configured origin itself;
- every address a host name resolves to must be a public one, and an IP literal too,
  unless it is exactly a configured origin (the tests configure a loopback fake);
- the body must be audio, no larger than the limit, and keep arriving (connect and read
  timeouts); it is streamed to the caller's sink, never held whole.

What went wrong is told apart as the queue needs it: ``FetchRefused`` will not get
better by retrying (the job is given up), ``FetchFailed`` may (it is retried, after the
provider's ``Retry-After`` when it sent one). Credentials never appear in errors or logs.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from storage import whole_number

MAX_REDIRECTS = 5
_CHUNK = 256 * 1024
# Statuses a provider recovers from: 404 comes back for a moment right after Twilio
# reports a recording complete.
_TRANSIENT = {404, 408, 425, 429}


class FetchRefused(Exception):
    """The fetch must not or cannot succeed: do not retry."""


class FetchFailed(Exception):
    """The fetch may succeed later; ``retry_after`` is the provider's wish, if it said."""

    def __init__(self, detail: str, retry_after: timedelta | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class AddressRefused(Exception):
    """A host resolved to an address the service never connects to (not an OSError, so
    aiohttp passes it on instead of reporting a DNS failure)."""


@dataclass(frozen=True)
class ProviderOrigin:
    """Where one provider's recordings may be fetched from, and with what credentials."""

    base: str
    # Sent only to ``base``'s own origin, never across a redirect.
    # A fixed header value, or a function making a fresh one per request (Vonage's
    # short-lived application JWT).
    authorization: str | Callable[[], str] | None = field(default=None, repr=False)
    # Where a redirect may lead (the provider's storage): a host name, matched exactly
    # or as a suffix after a dot ("twilio.com" allows "media.twilio.com") and reached
    # over https at public addresses only; or an exact origin ("https://host:port"),
    # trusted like ``base`` (no credentials are sent to it).
    redirect_hosts: tuple[str, ...] = ()
    # Whether a job's own URL may already be on the storage (Telnyx sends pre-signed
    # storage URLs), not only reached from ``base`` by a redirect.
    storage_urls: bool = False
    # Hosts of the provider's own API, besides ``base``, that a job's URL may name and
    # that get the credentials (Vonage's regional hosts); host-name suffixes, https only.
    # Credentials never go to a redirect's target on another origin.
    credential_hosts: tuple[str, ...] = ()

    def header(self) -> str | None:
        """The Authorization header value to send, made fresh if it is made per request."""
        if callable(self.authorization):
            return self.authorization()
        return self.authorization

    def gets_credentials(self, url: str, *, first: bool) -> bool:
        """Whether a request to ``url`` carries the credentials."""
        target = _origin(url)
        if target == self.origin:
            return True
        scheme, host, _ = target
        return first and scheme == "https" and _host_allowed(host, self.credential_hosts)

    @property
    def origin(self) -> tuple[str, str, int]:
        return _origin(self.base)

    @property
    def storage_origins(self) -> set[tuple[str, str, int]]:
        return {_origin(entry) for entry in self.redirect_hosts if "://" in entry}

    @property
    def storage_names(self) -> tuple[str, ...]:
        return tuple(entry.lower() for entry in self.redirect_hosts if "://" not in entry)


@dataclass(frozen=True, slots=True)
class Fetched:
    """What arrived: its media type and size."""

    content_type: str
    size: int


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("only http and https URLs with a host are fetched")
    try:
        port = parts.port
    except ValueError:
        raise FetchRefused("the URL's port is not a port") from None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then refuses any address that is not public,
    except for the exact hosts of configured origins."""

    def __init__(self, trusted: set[tuple[str, int]]) -> None:
        self._inner = DefaultResolver()
        self._trusted = trusted

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if (host.lower(), port) in self._trusted:
            return found
        public = [entry for entry in found if _public(entry["host"])]
        if not public:
            raise AddressRefused(f"{host} resolves only to addresses that are not public")
        return public

    async def close(self) -> None:
        await self._inner.close()


class SafeFetcher:
    """Fetches provider recordings under the rules in the module docstring."""

    def __init__(
        self,
        origins: Mapping[str, ProviderOrigin],
        *,
        max_bytes: int,
        connect_timeout: timedelta = timedelta(seconds=10),
        read_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self._origins = dict(origins)
        self._max_bytes = max_bytes
        exact = {o.origin for o in origins.values()}
        exact |= {each for o in origins.values() for each in o.storage_origins}
        self._trusted = {(host, port) for _, host, port in exact}
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout.total_seconds(),
            sock_connect=connect_timeout.total_seconds(),
            sock_read=read_timeout.total_seconds(),
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._trusted), use_dns_cache=False, limit=16
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def allowed(self, provider: str, url: str) -> bool:
        """Whether ``url`` may be fetched for ``provider`` (checked before queueing)."""
        origin = self._origins.get(provider)
        if origin is None:
            return False
        try:
            self._check(origin, url, first=True)
        except FetchRefused:
            return False
        return True

    async def fetch(
        self,
        provider: str,
        url: str,
        sink: Callable[[bytes], Awaitable[None]],
        *,
        method: str = "GET",
    ) -> Fetched:
        """Stream the recording at ``url`` into ``sink``; FetchRefused or FetchFailed if not."""
        origin = self._origins.get(provider)
        if origin is None:
            raise FetchRefused(f"no origin is configured for {provider}")
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            self._check(origin, current, first=current == url)
            headers = {}
            header = origin.header()
            if header is not None and origin.gets_credentials(current, first=current == url):
                headers["Authorization"] = header
            try:
                async with self._client().request(
                    method, current, headers=headers, allow_redirects=False
                ) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchRefused("a redirect without a Location")
                        current = urljoin(current, location)
                        continue
                    return await self._receive(response, sink)
            except AddressRefused as exc:
                raise FetchRefused(str(exc)) from None
            except aiohttp.InvalidURL:
                raise FetchRefused("the URL is not one the service fetches") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise FetchFailed(f"network: {type(exc).__name__}") from None
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    async def delete(self, provider: str, url: str) -> int:
        """DELETE ``url`` on the provider's own origin (its copy); the status it answered.

        No redirect is followed: a delete is only ever meant for the provider's own API
        (its configured origin, or a host that gets its credentials).
        """
        origin = self._origins.get(provider)
        if origin is None:
            raise FetchRefused(f"no origin is configured for {provider}")
        if not origin.gets_credentials(url, first=True):
            raise FetchRefused("a delete goes to the provider's own API hosts only")
        header = origin.header()
        headers = {} if header is None else {"Authorization": header}
        try:
            async with self._client().delete(
                url, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                return response.status
        except AddressRefused as exc:
            raise FetchRefused(str(exc)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise FetchFailed(f"network: {type(exc).__name__}") from None

    def _check(self, origin: ProviderOrigin, url: str, *, first: bool) -> None:
        target = _origin(url)
        if target == origin.origin:
            return
        scheme, host, _ = target
        if first and scheme == "https" and _host_allowed(host, origin.credential_hosts):
            literal = _literal(host)
            if literal is None or _public(literal):
                return
        storage = not first or origin.storage_urls
        if storage and target in origin.storage_origins:
            return
        if storage and scheme == "https" and _host_allowed(host, origin.storage_names):
            literal = _literal(host)
            if literal is None or _public(literal):
                return  # a name's addresses are checked as it resolves
        raise FetchRefused("the URL is not on the provider's configured origin or storage")

    async def _receive(
        self, response: aiohttp.ClientResponse, sink: Callable[[bytes], Awaitable[None]]
    ) -> Fetched:
        if response.status != 200:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if response.status in _TRANSIENT or response.status >= 500:
                raise FetchFailed(f"the provider answered {response.status}", retry_after)
            raise FetchRefused(f"the provider answered {response.status}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not content_type.startswith("audio/"):
            raise FetchRefused(f"the provider sent {content_type or 'no media type'}, not audio")
        if response.content_length is not None and response.content_length > self._max_bytes:
            raise FetchRefused(f"the recording is over {self._max_bytes} bytes")
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_bytes:
                raise FetchRefused(f"the recording is over {self._max_bytes} bytes")
            await sink(chunk)
        if response.content_length is not None and size != response.content_length:
            raise FetchFailed("the download stopped short")
        return Fetched(content_type, size)


def _literal(host: str) -> str | None:
    """The host as an IP address string if it is one (an IP literal), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    return any(host == name or host.endswith("." + name) for name in allowed)


def _retry_after(value: str | None) -> timedelta | None:
    seconds = whole_number(None if value is None else value.strip())
    return None if seconds is None else timedelta(seconds=seconds)
