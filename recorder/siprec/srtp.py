"""SRTP (RFC 3711) with SDES keys (RFC 4568): a stream's packets authenticated and
decrypted with the key its offer carried, by libsrtp (through pylibsrtp, aiortc's binding).

libsrtp is the reference implementation most SBCs themselves use; pylibsrtp ships it in
its wheels. Its binding offers the AES-CM suites with 128-bit keys (and AEAD ones SDES
does not name); the SDP answer accepts only those (``sdp.SRTP_KEY_BYTES``).
"""

from __future__ import annotations

import base64
import binascii

import pylibsrtp

from recorder.siprec.sdp import SRTP_KEY_BYTES, Crypto

_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


class SrtpRefused(ValueError):
    """A packet that does not authenticate (forged, replayed, or under another key)."""


class UnsupportedCrypto(ValueError):
    """An ``a=crypto`` line this receiver cannot key: suite, MKI or key length."""


def master_key_of(crypto: Crypto) -> bytes:
    """The master key and salt in ``inline:<base64>[|lifetime][|MKI:length]``.

    An MKI is refused: it means several keys in turn, which a single policy cannot do.
    """
    if crypto.suite not in _PROFILES:
        raise UnsupportedCrypto(f"SRTP suite {crypto.suite} is not supported")
    inline = crypto.key_params.removeprefix("inline:")
    key_text, *options = inline.split("|")
    if any(":" in option for option in options):
        raise UnsupportedCrypto("SRTP keys with an MKI are not supported")
    try:
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        raise UnsupportedCrypto("the SRTP key is not base64") from None
    if len(key) != SRTP_KEY_BYTES[crypto.suite]:
        raise UnsupportedCrypto(
            f"{crypto.suite} needs {SRTP_KEY_BYTES[crypto.suite]} bytes of key and salt"
        )
    return key


class SrtpInbound:
    """Decrypts one stream's packets; any SSRC the sender uses, so a re-keyed
    continuation after a re-INVITE with the same key still decrypts."""

    def __init__(self, crypto: Crypto) -> None:
        policy = pylibsrtp.Policy(
            key=master_key_of(crypto),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=_PROFILES[crypto.suite],
        )
        self._session = pylibsrtp.Session(policy=policy)

    def __repr__(self) -> str:
        return "SrtpInbound(<key>)"

    def unprotect(self, packet: bytes) -> bytes:
        """The plain RTP packet; SrtpRefused if it does not authenticate or is replayed."""
        try:
            return self._session.unprotect(packet)
        except pylibsrtp.Error as exc:
            raise SrtpRefused(str(exc)) from None
