"""Why a delivery was refused, as facts; the HTTP status for each is chosen in handlers.py.

RecorderError
├── Unauthenticated          unknown source, missing, wrong or stale signature
├── NotMultipart             the body is not multipart/form-data, or is compressed
├── BodyStalled              the body arrives too slowly or stops arriving
│   └── SenderHungUp         the sender closed the connection before the body was whole
├── Busy                     too many pushes are being received at once
│   ├── MediaWorkerLost      the worker decoding the audio died (crash, memory)
│   └── ShuttingDown         the process is stopping before the body has arrived
├── PayloadTooLarge          the body or the metadata part is over its limit
├── MalformedUpload          broken or truncated multipart framing
├── InvalidPart              an unexpected or repeated part, or a filename that names a path
├── InvalidMetadata          metadata missing, not JSON, or failing validation
└── UndecodableAudio         the audio part is missing or holds no decodable audio
"""

from __future__ import annotations


class RecorderError(Exception):
    """Base of every refusal raised by the recorder package; ``detail`` is safe to show."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthenticated(RecorderError):
    """The delivery cannot be attributed to a known source with a valid, fresh signature."""


class NotMultipart(RecorderError):
    """The body is not plain ``multipart/form-data`` with a boundary."""


class BodyStalled(RecorderError):
    """The sender stopped sending, or sends too slowly to finish in reasonable time."""


class SenderHungUp(BodyStalled):
    """The connection closed before the whole body arrived.

    Nobody is left to answer, and it happens on every flaky line: it is logged as a
    refusal (at info), not as a failure of the service.
    """


class Busy(RecorderError):
    """Every capture slot is taken; the sender should retry shortly."""


class MediaWorkerLost(Busy):
    """The worker process decoding this delivery died; the sender should retry later.

    Answered like Busy (503), not 422: a worker killed for memory or by an operator says
    nothing about the file, and a PBX does not resend after a 4xx.
    """


class ShuttingDown(Busy):
    """The process is stopping and the body has not all arrived: retry, on another replica.

    Answered like Busy (503 with Retry-After), never a 4xx: the delivery was fine, and a
    sender told 4xx gives it up.
    """


class PayloadTooLarge(RecorderError):
    """The body or one of its parts is larger than allowed."""


class MalformedUpload(RecorderError):
    """The multipart body is truncated or malformed."""


class InvalidPart(RecorderError):
    """A part the push format does not have, a repeated part, or a path as a filename."""


class InvalidMetadata(RecorderError):
    """The metadata part is missing, not JSON, or fails validation."""


class UndecodableAudio(RecorderError):
    """The audio part is missing, empty, or not audio this service can decode."""
