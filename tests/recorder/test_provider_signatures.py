"""Provider webhook signatures against the published and constructed vectors (copied into
tests/recorder/vectors), and one-character changes to each signed thing failing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.errors import Unauthenticated
from recorder.telnyx_signature import TelnyxSignature
from recorder.twilio_signature import TwilioSignature
from recorder.vonage_signature import VonageSignature, verified_claims

VECTORS_DIR = Path(__file__).parent / "vectors"
VECTORS = json.loads((VECTORS_DIR / "webhook-signatures.json").read_text())
TWILIO = VECTORS["twilio"]
TELNYX = VECTORS["telnyx"]["constructed"]
VONAGE = VECTORS["vonage"]
# The recording callback of the Twilio reference (section 1.1), as Twilio form-encodes it.
TWILIO_CALLBACK = (
    "AccountSid=ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&CallSid=CAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    "&RecordingSid=REcccccccccccccccccccccccccccccccc&RecordingUrl=https%3A%2F%2Fapi.twilio.com"
    "%2F2010-04-01%2FAccounts%2FACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%2FRecordings%2F"
    "REcccccccccccccccccccccccccccccccc&RecordingStatus=completed&RecordingDuration=42"
    "&RecordingChannels=2&RecordingStartTime=Mon%2C+22+Jan+2024+10%3A00%3A00+%2B0000"
    "&RecordingSource=StartCallRecordingAPI&RecordingTrack=both&ErrorCode=0"
)


def pairs(params: dict[str, Any]) -> list[tuple[str, str]]:
    """A vector's parameters as the form parser gives them: repeated names repeated."""
    found = []
    for name, value in params.items():
        for each in value if isinstance(value, list) else [value]:
            found.append((name, each))
    return found


def one_char_changed(text: str, at: int = -1) -> str:
    index = at % len(text)
    replacement = "X" if text[index] != "X" else "Y"
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize("vector", TWILIO["vectors"], ids=lambda v: v["id"])
def test_every_twilio_vector_validates(vector: dict[str, Any]) -> None:
    validator = TwilioSignature(TWILIO["auth_token"])
    body = vector.get("body", "").encode()
    assert validator.valid(vector["url"], pairs(vector["params"]), vector["signature"], body)


@pytest.mark.parametrize("vector", TWILIO["vectors"], ids=lambda v: v["id"])
def test_a_one_character_change_fails_every_twilio_vector(vector: dict[str, Any]) -> None:
    validator = TwilioSignature(TWILIO["auth_token"])
    url, params, signature = vector["url"], pairs(vector["params"]), vector["signature"]
    body = vector.get("body", "").encode()
    path_at = url.index("/myapp") + 2
    assert not validator.valid(one_char_changed(url, path_at), params, signature, body)
    assert not validator.valid(url, params, one_char_changed(signature, 3), body)
    assert not validator.valid(url, params, None, body)
    assert not TwilioSignature("12346").valid(url, params, signature, body)
    if params:
        name, value = params[0]
        changed = [(name, one_char_changed(value)), *params[1:]]
        assert not validator.valid(url, changed, signature, body)
        assert not validator.valid(url, [*params, ("Extra", "1")], signature, body)
    if body:
        assert not validator.valid(url, params, signature, one_char_changed(body.decode()).encode())


def test_the_constructed_recording_callback_validates_in_both_port_spellings() -> None:
    constructed = TWILIO["constructed_recording_callback"]
    validator = TwilioSignature(constructed["auth_token"])
    params = parse_qsl(TWILIO_CALLBACK, keep_blank_values=True)
    url = constructed["url"]
    with_port = url.replace(".com/", ".com:443/")
    assert validator.compute(url, params) == constructed["signature"]
    assert validator.compute(with_port, params) == constructed["signature_with_port_443"]
    for spelling in (url, with_port):
        assert validator.valid(spelling, params, constructed["signature"])
        assert validator.valid(spelling, params, constructed["signature_with_port_443"])
    tampered = [(k, "43" if k == "RecordingDuration" else v) for k, v in params]
    assert not validator.valid(url, tampered, constructed["signature"])


def test_a_non_default_port_is_never_dropped() -> None:
    validator = TwilioSignature("12345")
    signed = validator.compute("https://example.com:8443/hook", [])
    assert validator.valid("https://example.com:8443/hook", [], signed)
    assert not validator.valid("https://example.com/hook", [], signed)


@pytest.mark.parametrize("vector", VECTORS["ed25519_rfc8032"], ids=["rfc8032-1", "rfc8032-2"])
def test_the_rfc8032_vectors_hold_for_the_ed25519_used(vector: dict[str, str]) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["secret_key"]))
    assert key.public_key().public_bytes_raw().hex() == vector["public_key"]
    assert key.sign(bytes.fromhex(vector["message"])).hex() == vector["signature"]


def telnyx_body() -> bytes:
    return (VECTORS_DIR / str(TELNYX["body_file"])).read_bytes()


SENT = datetime.fromtimestamp(int(TELNYX["timestamp"]), tz=UTC)


def test_the_telnyx_vector_validates_within_the_window() -> None:
    checker = TelnyxSignature(TELNYX["public_key_base64"])
    for delay in (0, 10, 300, -300):
        now = SENT + timedelta(seconds=delay)
        checker.verify(TELNYX["timestamp"], TELNYX["signature"], telnyx_body(), now=now)


@pytest.mark.parametrize(
    "change",
    ["body", "timestamp", "signature", "late", "early", "garbage-signature", "no-timestamp"],
)
def test_a_changed_or_stale_telnyx_delivery_fails(change: str) -> None:
    checker = TelnyxSignature(TELNYX["public_key_base64"])
    timestamp, signature, body = TELNYX["timestamp"], TELNYX["signature"], telnyx_body()
    now = SENT + timedelta(seconds=10)
    if change == "body":
        body = one_char_changed(body.decode(), 40).encode()
    elif change == "timestamp":
        timestamp = str(int(timestamp) + 1)
    elif change == "signature":
        signature = base64.b64encode(bytes([1]) + base64.b64decode(signature)[1:]).decode()
    elif change == "late":
        now = SENT + timedelta(seconds=301)
    elif change == "early":
        now = SENT - timedelta(seconds=301)
    elif change == "garbage-signature":
        signature = "not base64 at all!"
    else:
        timestamp = ""
    with pytest.raises(Unauthenticated):
        checker.verify(timestamp, signature, body, now=now)


def test_a_telnyx_key_that_is_not_a_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="Ed25519"):
        TelnyxSignature("c2hvcnQ=")


def test_a_short_vonage_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        VonageSignature("asdf")


def test_the_published_vonage_tokens_check_with_the_right_secret_only() -> None:
    valid, invalid = VONAGE["published"]
    assert verified_claims(valid["token"], valid["secret"])["iss"] == "Online JWT Builder"
    with pytest.raises(Unauthenticated):
        verified_claims(invalid["token"], invalid["secret"])


ISSUED = datetime(2020, 1, 1, 12, 1, tzinfo=UTC)  # the constructed token's iat


def test_the_constructed_vonage_webhook_validates() -> None:
    constructed = VONAGE["constructed"]
    checker = VonageSignature(constructed["secret"])
    claims = checker.verify(
        f"Bearer {constructed['token']}",
        constructed["body"].encode(),
        now=ISSUED + timedelta(seconds=30),
    )
    assert claims["payload_hash"] == constructed["payload_hash"]


def forged(secret: str, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 forgery
@pytest.mark.parametrize(
    "change", ["body", "stale", "future", "secret", "alg-none", "alg-hs512", "issuer", "scheme"]
)
def test_a_changed_or_stale_vonage_webhook_fails(change: str) -> None:
    constructed = VONAGE["constructed"]
    checker = VonageSignature(constructed["secret"])
    body = constructed["body"].encode()
    header = f"Bearer {constructed['token']}"
    now = ISSUED + timedelta(seconds=30)
    claims = dict(verified_claims(constructed["token"], constructed["secret"]))
    if change == "body":
        body = one_char_changed(body.decode(), 20).encode()
    elif change == "stale":
        now = ISSUED + timedelta(minutes=6)
    elif change == "future":
        now = ISSUED - timedelta(minutes=6)
    elif change == "secret":
        checker = VonageSignature("another-secret-of-32-characters!")
    elif change == "alg-none":
        unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
        header = f"Bearer {unsigned}"
    elif change == "alg-hs512":
        header = f"Bearer {forged(constructed['secret'], claims, 'HS512')}"
    elif change == "issuer":
        header = f"Bearer {forged(constructed['secret'], claims | {'iss': 'Someone'})}"
    else:
        header = constructed["token"]
    with pytest.raises(Unauthenticated):
        checker.verify(header, body, now=now)
