"""Twilio's ``X-Twilio-Signature``, checked exactly as Twilio's own validators check it.

The signature is base64(HMAC-SHA1(auth token, URL + every parameter name and value)),
names sorted, each name's values sorted and without repeats. The URL is the one Twilio
called; because Twilio and its validators disagree on some spellings, a signature is
accepted over any of them: with or without the scheme's default port, and with the query
as sent or as WHATWG URL parsing re-encodes it (an apostrophe becomes ``%27``). A JSON
body is covered by a ``bodySHA256`` query parameter instead of the parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}
# What WHATWG's URL parser percent-encodes in the query of an http(s) URL.
_WHATWG_QUERY = {chr(code) for code in range(0x21)} | {'"', "<", ">", "'", "\x7f"}


class TwilioSignature:
    """Checks the signatures of one Twilio account (its auth token)."""

    def __init__(self, auth_token: str) -> None:
        self._key = auth_token.encode()

    def valid(
        self,
        url: str,
        params: Sequence[tuple[str, str]],
        signature: str | None,
        body: bytes = b"",
    ) -> bool:
        """Whether ``signature`` signs this request: the URL called, its form, its body."""
        if not signature:
            return False
        offered = signature.encode("utf-8", "replace")
        covered: Sequence[tuple[str, str]] = params
        body_hashes = [v for k, v in parse_qsl(urlsplit(url).query) if k == "bodySHA256"]
        if body_hashes:
            digest = hashlib.sha256(body).hexdigest().encode()
            if not hmac.compare_digest(digest, body_hashes[0].encode("utf-8", "replace")):
                return False
            covered = ()
        return any(
            hmac.compare_digest(self.compute(spelling, covered).encode(), offered)
            for spelling in spellings(url)
        )

    def compute(self, url: str, params: Iterable[tuple[str, str]]) -> str:
        """The signature of ``url`` and ``params``, as Twilio computes it."""
        values: dict[str, set[str]] = {}
        for name, value in params:
            values.setdefault(name, set()).add(value)
        signed = url + "".join(
            name + value for name in sorted(values) for value in sorted(values[name])
        )
        mac = hmac.new(self._key, signed.encode(), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode()


def spellings(url: str) -> list[str]:
    """The URL as given, and as Twilio or WHATWG may have spelled it when signing."""
    found = [url]
    toggled = _toggle_default_port(url)
    if toggled is not None:
        found.append(toggled)
    for spelling in list(found):
        encoded = _whatwg_query(spelling)
        if encoded not in found:
            found.append(encoded)
    return found


def _toggle_default_port(url: str) -> str | None:
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return None
    if default is None or parts.hostname is None:
        return None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    prefix = f"{userinfo}@" if userinfo else ""
    if port is None:
        netloc = f"{prefix}{hostport}:{default}"
    elif port == default:
        netloc = prefix + hostport.rsplit(":", 1)[0]
    else:
        return None
    return urlunsplit(parts._replace(netloc=netloc))


def _whatwg_query(url: str) -> str:
    base, mark, query = url.partition("?")
    if not mark:
        return url
    encoded = "".join(f"%{ord(c):02X}" if c in _WHATWG_QUERY else c for c in query)
    return f"{base}?{encoded}"
