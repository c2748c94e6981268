"""Webhooks in, captures out: signature checks, streaming upload, audio probe, capture.

Imports storage only; never retrieval, retention or config.
"""

from recorder.capture import CaptureSink, PushCapture, PushDelivery, PushResult
from recorder.handlers import create_recorder_app
from recorder.signatures import sign_push
from recorder.workers import MediaWorkers

__all__ = [
    "CaptureSink",
    "MediaWorkers",
    "PushCapture",
    "PushDelivery",
    "PushResult",
    "create_recorder_app",
    "sign_push",
]
