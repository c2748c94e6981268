"""Webhooks in, captures out: signature checks, streaming upload, audio probe, capture.

Imports storage only; never retrieval, retention or config.
"""

from recorder.callbacks import Intake
from recorder.capture import PushCapture, PushDelivery, PushResult
from recorder.fetch_worker import FetchWorkers
from recorder.fetcher import ProviderOrigin, SafeFetcher
from recorder.handlers import create_recorder_app
from recorder.redacted_copy import RedactedAudio, RedactedCopies
from recorder.redaction import InvalidRedaction, Redaction
from recorder.rendition_worker import RenditionTally, RenditionWorkers
from recorder.senders import SenderAllowList
from recorder.signatures import sign_preauth, sign_push
from recorder.storing import CaptureSink, SpooledCapture
from recorder.telnyx import TelnyxAccount, TelnyxCallbacks
from recorder.telnyx_signature import TelnyxSignature
from recorder.twilio import TwilioAccount, TwilioCallbacks
from recorder.twilio_signature import TwilioSignature
from recorder.vonage import VonageAccount, VonageCallbacks, application_token
from recorder.vonage_signature import VonageSignature
from recorder.workers import RENDITION_NICENESS, MediaWorkers

__all__ = [
    "RENDITION_NICENESS",
    "CaptureSink",
    "FetchWorkers",
    "Intake",
    "InvalidRedaction",
    "MediaWorkers",
    "ProviderOrigin",
    "PushCapture",
    "PushDelivery",
    "PushResult",
    "RedactedAudio",
    "RedactedCopies",
    "Redaction",
    "RenditionTally",
    "RenditionWorkers",
    "SafeFetcher",
    "SenderAllowList",
    "SpooledCapture",
    "TelnyxAccount",
    "TelnyxCallbacks",
    "TelnyxSignature",
    "TwilioAccount",
    "TwilioCallbacks",
    "TwilioSignature",
    "VonageAccount",
    "VonageCallbacks",
    "VonageSignature",
    "application_token",
    "create_recorder_app",
    "sign_preauth",
    "sign_push",
]
