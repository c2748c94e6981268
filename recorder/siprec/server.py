"""The Session Recording Server (RFC 7866) on the event loop: offers in, answers out.

sippy keeps the dialogs in its own thread (``sip_thread.py``, ``sippy_dialogs.py``) and
refuses strangers there; this side reads what an admitted SRC sends (``body.py``,
``metadata.py``, ``sdp.py``), asks the media side for ports (``RecordingSessions``),
answers, and ends each session exactly once. One lock per call keeps ``open``, ``update``
and ``close`` in order whatever order SIP events arrive in: a CANCEL that lands while the
media side is still opening sockets waits for the open, then closes what it opened.

The SRC's BYE is answered 200 only once ``close`` has returned: that 200 is the
acknowledgement that the recording is stored. When storing fails the BYE still gets 200
(RFC 3261 section 15.1.2: a UAS answers a BYE for an existing dialog with a 2xx; the SRC
keeps no copy to send again, so an error would only make it retry in vain). The failure is
logged and counted instead, and if we die first the SRC sees its BYE time out.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from recorder.siprec.admission import AdmissionPolicy
from recorder.siprec.body import split_siprec_body, split_update_body
from recorder.siprec.errors import NoCapacity, SiprecError, sip_status_of
from recorder.siprec.metadata import parse_metadata
from recorder.siprec.models import RecordingMetadata, merge_metadata
from recorder.siprec.sdp import SRTP_KEY_BYTES, SdpOffer, build_answer, parse_offer
from recorder.siprec.sessions import EndReason, RecordingSessions
from recorder.siprec.signalling import Dialog, Invitation, SipEnd, call_tag
from recorder.siprec.sip_thread import SipListener
from recorder.siprec.transports import StreamListen

log = logging.getLogger(__name__)

# Under the SRC's 32 s non-INVITE transaction timeout (RFC 3261 timer F, 64*T1).
DEFAULT_BYE_ANSWER_WITHIN_S = 25.0
# How long stop() waits for SRCs to answer the BYEs it sent before unbinding.
_DRAIN_S = 2.0
_DRAIN_STEP_S = 0.05


@dataclass
class _Call:
    dialog: Dialog
    session_version: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    metadata: RecordingMetadata | None = None
    offer: SdpOffer | None = None  # the offer in force, for an UPDATE that brings none
    opened: bool = False
    ending: EndReason | None = None


class SiprecServer:
    """A SIPREC SRS listening on UDP ``host:port``; RTP is the media side's, at ``media_address``.

    ``streams`` adds TCP and TLS listeners (``transports.StreamListen``), started and
    stopped with the UDP one.

    ``media_address`` goes into the SDP answer's ``c=`` line; ``contact_host`` (default
    ``host``) into the Contact of our responses. ``srtp_key(suite)`` returns fresh key
    bytes for an SDES stream and ``clock`` seeds the SDP session version (both passed in so
    tests can fix them).
    """

    def __init__(
        self,
        sessions: RecordingSessions,
        *,
        host: str,
        port: int,
        media_address: str,
        policy: AdmissionPolicy,
        contact_host: str | None = None,
        bye_answer_within_s: float = DEFAULT_BYE_ANSWER_WITHIN_S,
        srtp_key: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] = time.time,
        streams: Sequence[StreamListen] = (),
    ) -> None:
        self._sessions = sessions
        self._media_address = media_address
        self._srtp_key = srtp_key or _fresh_srtp_key
        self._clock = clock
        self._retry_after = str(policy.retry_after_s)
        self._listener = SipListener(
            host=host,
            port=port,
            contact_host=contact_host or host,
            policy=policy,
            bye_answer_within_s=bye_answer_within_s,
            streams=streams,
        )
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.unstored = 0  # sessions whose close failed: for a metric and an alert

    async def start(self) -> None:
        """Bind the SIP ports and serve; raises OSError if one cannot be bound."""
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._listener.start, self, loop)

    async def stop(self) -> None:
        """End every session (BYE to its SRC, ``close(..., "shutdown")``), then unbind.

        Waits up to 2 s for the SRCs to answer those BYEs, so none is left retransmitting
        on a closed socket.
        """
        await asyncio.gather(*(self.end_session(cid, "shutdown") for cid in list(self._calls)))
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for _ in range(int(_DRAIN_S / _DRAIN_STEP_S)):
            if not await asyncio.to_thread(self._listener.sending):
                break
            await asyncio.sleep(_DRAIN_STEP_S)
        await asyncio.to_thread(self._listener.stop)

    @property
    def active_calls(self) -> frozenset[str]:
        """Call-IDs of the sessions not yet finished."""
        return frozenset(self._calls)

    async def end_session(self, call_id: str, reason: EndReason = "rtp_timeout") -> None:
        """End a session from our side (no RTP for too long, shutdown): BYE, then close.

        Returns once ``close`` has; does nothing for a session already ending.
        """
        call = self._calls.get(call_id)
        if call is None or call.ending is not None:
            return
        call.ending = reason
        call.dialog.hang_up()
        await self._finish(call_id, call, reason)

    # SignallingEvents: scheduled on the loop by the SIP thread.

    def invited(self, dialog: Dialog, invitation: Invitation) -> None:
        call = _Call(dialog, int(self._clock()))
        self._calls[dialog.call_id] = call
        self._spawn(self._open(call, invitation))

    def reinvited(self, dialog: Dialog, invitation: Invitation) -> None:
        call = self._calls.get(dialog.call_id)
        if call is not None and call.ending is None:
            self._spawn(self._update(call, invitation))

    def updated(self, dialog: Dialog, invitation: Invitation) -> None:
        call = self._calls.get(dialog.call_id)
        if call is None or call.ending is not None:
            dialog.answer_update(481, "Call/Transaction Does Not Exist")
            return
        self._spawn(self._apply_update(call, invitation))

    def bye_received(self, dialog: Dialog) -> None:
        call = self._calls.get(dialog.call_id)
        if call is None:
            dialog.answer_bye()
            return
        call.ending = "bye"
        self._spawn(self._finish(dialog.call_id, call, "bye"))

    def ended(self, dialog: Dialog, how: SipEnd) -> None:
        call = self._calls.get(dialog.call_id)
        if call is None or call.ending is not None:
            return  # we are ending it ourselves, or it was refused
        call.ending = how
        self._spawn(self._finish(dialog.call_id, call, how))

    # The work, one task per event, in order per call through its lock.

    async def _open(self, call: _Call, invitation: Invitation) -> None:
        call_id = invitation.call_id
        async with call.lock:
            if call.ending is not None:
                return
            try:
                offer, metadata = _read(invitation, None)
                self._check_answerable(offer)
                ports = await self._sessions.open(call_id, offer, metadata, invitation.source)
                call.opened = True
                if call.ending is not None:
                    return  # cancelled while opening: _finish closes after us
                sdp = self._answer(call, offer, ports)
            except Exception as exc:
                await self._refuse(call_id, call, exc)
                return
            call.metadata = metadata
            call.offer = offer
            call.dialog.accept(sdp)
            log.info("recording session started", extra={"call": call_tag(call_id)})

    async def _update(self, call: _Call, invitation: Invitation) -> None:
        call_id = invitation.call_id
        async with call.lock:
            if call.ending is not None:
                return
            try:
                offer, metadata = _read(invitation, call.metadata)
                ports = await self._sessions.update(call_id, offer, metadata)
                call.session_version += 1
                sdp = self._answer(call, offer, ports)
            except Exception as exc:
                # The session goes on as it was: a refused re-INVITE changes nothing.
                code, reason = _status_of(exc, call_id)
                call.dialog.refuse(code, reason, self._extra_headers(code))
                return
            call.metadata = metadata
            call.offer = offer
            call.dialog.accept(sdp)
            log.info("recording session updated", extra={"call": call_tag(call_id)})

    async def _apply_update(self, call: _Call, invitation: Invitation) -> None:
        """An UPDATE (RFC 7866 section 7.3): new metadata, perhaps a new offer.

        Without an offer the media side still hears of the metadata, with the offer in
        force (its ports stay as they are), and the 200 carries no SDP.
        """
        call_id = invitation.call_id
        async with call.lock:
            if call.ending is not None or call.metadata is None or call.offer is None:
                call.dialog.answer_update(481, "Call/Transaction Does Not Exist")
                return
            try:
                parts = split_update_body(invitation.content_type, invitation.body)
                metadata = _merged(call.metadata, parts.metadata)
                offer = parse_offer(parts.sdp) if parts.sdp is not None else call.offer
                ports = await self._sessions.update(call_id, offer, metadata)
                sdp = None
                if parts.sdp is not None:
                    call.session_version += 1
                    sdp = self._answer(call, offer, ports)
            except Exception as exc:
                # As for a refused re-INVITE, the session goes on as it was.
                code, reason = _status_of(exc, call_id)
                call.dialog.answer_update(code, reason, headers=self._extra_headers(code))
                return
            call.metadata = metadata
            call.offer = offer
            call.dialog.answer_update(200, "OK", sdp)
            log.info("recording session updated", extra={"call": call_tag(call_id)})

    async def _finish(self, call_id: str, call: _Call, reason: EndReason) -> None:
        async with call.lock:
            stored = await self._close(call_id, call, reason)
        if reason == "bye":
            call.dialog.answer_bye()
        self._drop(call_id, call)
        log.info(
            "recording session ended",
            extra={"call": call_tag(call_id), "reason": reason, "stored": stored},
        )

    async def _refuse(self, call_id: str, call: _Call, exc: Exception) -> None:
        code, reason = _status_of(exc, call_id)
        call.dialog.refuse(code, reason, self._extra_headers(code))
        call.ending = "error"
        await self._close(call_id, call, "error")
        self._drop(call_id, call)

    async def _close(self, call_id: str, call: _Call, reason: EndReason) -> bool:
        if not call.opened:
            return True
        call.opened = False
        try:
            await self._sessions.close(call_id, reason)
        except Exception as exc:
            self.unstored += 1
            log.error(
                "recording session not stored",
                extra={"call": call_tag(call_id), "reason": reason, "error": type(exc).__name__},
            )
            return False
        return True

    def _drop(self, call_id: str, call: _Call) -> None:
        if self._calls.get(call_id) is call:
            del self._calls[call_id]
        call.dialog.forget()

    def _answer(self, call: _Call, offer: SdpOffer, ports: dict[str, int]) -> str:
        sdp, _ = build_answer(
            offer,
            address=self._media_address,
            ports=ports,
            srtp_key=self._srtp_key,
            session_version=call.session_version,
        )
        return sdp

    def _check_answerable(self, offer: SdpOffer) -> None:
        """Raise NoUsableStream before the media side opens a port for a hopeless offer."""
        placeholders = {s.label: 9 for s in offer.streams if s.label is not None}
        build_answer(
            offer,
            address=self._media_address,
            ports=placeholders,
            srtp_key=self._srtp_key,
            session_version=0,
        )

    def _extra_headers(self, code: int) -> tuple[tuple[str, str], ...]:
        return (("Retry-After", self._retry_after),) if code == 503 else ()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _read(
    invitation: Invitation, known: RecordingMetadata | None
) -> tuple[SdpOffer, RecordingMetadata]:
    """The offer and the metadata as it stands after this (re-)INVITE."""
    parts = split_siprec_body(invitation.content_type, invitation.body)
    return parse_offer(parts.sdp), _merged(known, parts.metadata)


def _merged(known: RecordingMetadata | None, document: bytes) -> RecordingMetadata:
    """The metadata as it stands after ``document`` is folded into what is ``known``."""
    metadata = parse_metadata(document)
    if known is not None:
        return merge_metadata(known, metadata)
    if not metadata.complete:
        # A first document must describe the session whole; merge checks that it does.
        return merge_metadata(RecordingMetadata(metadata.dialect, complete=True), metadata)
    return metadata


def _status_of(exc: Exception, call_id: str) -> tuple[int, str]:
    if isinstance(exc, SiprecError):
        code, reason = sip_status_of(exc)
        level = logging.WARNING if isinstance(exc, NoCapacity) else logging.INFO
        log.log(
            level,
            "SIPREC offer refused: %s",
            exc.detail,
            extra={"call": call_tag(call_id), "status": code},
        )
        return code, reason
    log.error(
        "SIPREC offer failed",
        extra={"call": call_tag(call_id), "error": type(exc).__name__},
    )
    return 500, "Server Internal Error"


def _fresh_srtp_key(suite: str) -> bytes:
    return secrets.token_bytes(SRTP_KEY_BYTES[suite])
