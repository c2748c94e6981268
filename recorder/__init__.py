"""Webhooks in, captures out: signature checks, streaming upload, audio probe, capture.

Imports storage only; never retrieval, retention or config.
"""

from recorder.capture import PushCapture, PushDelivery, PushResult
from recorder.fetch_worker import FetchWorkers, ProviderMedia
from recorder.fetcher import ProviderOrigin, SafeFetcher
from recorder.handlers import create_recorder_app
from recorder.signatures import sign_push
from recorder.storing import CaptureSink, SpooledCapture
from recorder.twilio import TwilioAccount, TwilioCallbacks
from recorder.twilio_signature import TwilioSignature
from recorder.workers import MediaWorkers

__all__ = [
    "CaptureSink",
    "FetchWorkers",
    "MediaWorkers",
    "ProviderMedia",
    "ProviderOrigin",
    "PushCapture",
    "PushDelivery",
    "PushResult",
    "SafeFetcher",
    "SpooledCapture",
    "TwilioAccount",
    "TwilioCallbacks",
    "TwilioSignature",
    "create_recorder_app",
    "sign_push",
]
