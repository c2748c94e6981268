"""Log redaction: phone numbers and secrets never reach the log, ordinary values do."""

from __future__ import annotations

from typing import Any

import pytest

from config.logging import REDACTED, redact_event


def redacted(**fields: Any) -> dict[str, Any]:
    return dict(redact_event(None, "info", dict(fields)))


@pytest.mark.parametrize(
    "number",
    [
        "+441384000001",
        "01384 812345",
        "+44 (0)1384 812-345",
        "07700900123",
        "+14158675309",
        "tel:01384812345",
        "sip:+441384000001@pbx",
    ],
)
def test_phone_numbers_are_masked_wherever_they_appear(number: str) -> None:
    event = redacted(event=f"call from {number} failed", extra={"parties": [number]})
    digits = "".join(ch for ch in number if ch.isdigit())
    assert digits[-6:] not in str(event)
    assert REDACTED in event["event"]


@pytest.mark.parametrize("key", ["secret", "auth_token", "Authorization", "signature"])
def test_secret_looking_fields_are_dropped(key: str) -> None:
    assert redacted(**{key: "abc123"})[key] == REDACTED


def test_ids_times_and_sizes_are_left_alone() -> None:
    event = redacted(
        timestamp="2026-11-25T03:20:11.123456Z",
        request_id="9d94a3240f6b4ee8b7d68e56bee4566c",
        event="stored 2048 bytes in 12.5 ms for recording 0b6f4d1e-5c1f-4a2b-9a7e-1f2e3d4c5b6a",
        status=201,
    )
    assert event["timestamp"] == "2026-11-25T03:20:11.123456Z"
    assert event["request_id"] == "9d94a3240f6b4ee8b7d68e56bee4566c"
    assert REDACTED not in event["event"]
