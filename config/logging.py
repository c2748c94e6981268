"""Structured JSON logs on stderr, with the request id and without secrets or phone numbers."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Anything that looks like a phone number: 10 to 15 digits, optionally with + and
# separators, standing alone (not inside a hex id or glued to a letter, like an ISO time).
_PHONE = re.compile(r"(?<![0-9A-Za-z])\+?\d(?:[\s().-]{0,2}\d){9,14}(?![0-9A-Za-z:])")
# Fields the service itself fills with safe values that merely contain digits.
_TRUSTED_KEYS = frozenset({"timestamp", "request_id", "level", "logger", "duration_ms", "status"})
_SECRET_KEYS = re.compile(r"secret|token|password|authorization|signature|cookie|key", re.I)
REDACTED = "[redacted]"


def redact_value(value: Any) -> Any:
    """Mask phone numbers in strings, recursively in containers."""
    if isinstance(value, str):
        return _PHONE.sub(REDACTED, value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: drop secret-looking fields, mask phone numbers everywhere.

    Last line of defence: the code never logs metadata values on purpose, but an
    exception message or a third-party library might.
    """
    for key in list(event):
        if key in _TRUSTED_KEYS:
            continue
        if _SECRET_KEYS.search(key):
            event[key] = REDACTED
        else:
            event[key] = redact_value(event[key])
    return event


def configure_logging(level: str = "info") -> None:
    """Route structlog and the standard library (aiohttp, SQLAlchemy, ...) to JSON on stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's own access log would repeat each request in another shape.
    logging.getLogger("aiohttp.access").disabled = True
