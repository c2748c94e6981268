"""The SRS's sippy UA and the responses it builds, in the SIP thread (see ``sippy_dialogs``).

sippy's UA keeps a dialog's state and answers INVITE, re-INVITE, ACK and BYE its own way;
``SrsUserAgent`` takes first the in-dialog requests a recorder answers differently: BYE is
held until the recording is stored, UPDATE (RFC 3311, not in sippy's UA) is answered here
or held for the loop side, REFER is refused, OPTIONS lists what we allow, a re-INVITE
without an offer gets our last SDP.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sippy.MsgBody import MsgBody
from sippy.SipHeader import SipHeader
from sippy.UA import UA

from recorder.siprec.admission import (
    ALLOWED_METHODS,
    NO_SUCH_DIALOG,
    NOT_IMPLEMENTED,
    REFER_REFUSED,
    Header,
    Refusal,
    capability_headers,
)

if TYPE_CHECKING:
    from recorder.siprec.sippy_dialogs import SippyDialog


def sip_headers(headers: Sequence[Header]) -> tuple[Any, ...]:
    return tuple(SipHeader(name=name.lower(), bodys=value) for name, value in headers)


def response_to(req: Any, refusal: Refusal) -> tuple[Any, None, None]:
    """What a transaction callback returns to have sippy send ``refusal``."""
    resp = req.genResponse(refusal.code, refusal.reason)
    resp.appendHeaders(list(sip_headers(refusal.headers)))
    return (resp, None, None)


OPTIONS_OK = Refusal(200, "OK", capability_headers())


def body_of(body: Any) -> tuple[str, bytes]:
    """The Content-Type and raw bytes of a sippy ``MsgBody``, before sippy parses it.

    sippy's own multipart parser relies on ``assert`` and keeps only Content-Type per part,
    so ``body.parse()`` is never called: ``split_siprec_body`` reads the bytes.
    """
    if body is None:
        return "", b""
    content = body.content if isinstance(body.content, str) else str(body.content)
    return str(body.mtype), content.encode("utf-8")


def ok_with_contact(req: Any, contact: Any, sdp: str | None = None) -> Any:
    """A 200 to UPDATE: it refreshes the target (RFC 3311 section 5.2), so Contact is in it."""
    resp = req.genResponse(200, "OK", MsgBody(sdp) if sdp is not None else None)
    resp.appendHeader(SipHeader(name="contact", body=contact.getCopy()))
    return resp


class SrsUserAgent(UA):  # type: ignore[misc]
    """sippy's UA with the in-dialog requests an SRS answers differently taken first."""

    dialog: SippyDialog
    rCSeq: int | None

    def recvRequest(self, req: Any, sip_t: Any) -> Any:
        method = req.getMethod()
        if method == "BYE" and self.isConnected():
            return self._recv_bye(req, sip_t)
        if method == "REFER":
            return response_to(req, REFER_REFUSED)
        if method == "OPTIONS":
            return response_to(req, OPTIONS_OK)
        if method == "UPDATE":
            # sippy's UA would leave it unanswered: RFC 3311 is not in it.
            return self._recv_update(req, sip_t)
        if method not in ALLOWED_METHODS:
            return response_to(req, NOT_IMPLEMENTED)
        if method == "INVITE" and req.getBody() is None and self.isConnected():
            return self._recv_offerless_reinvite(req)
        return super().recvRequest(req, sip_t)

    def _recv_bye(self, req: Any, sip_t: Any) -> None:
        if isinstance(self.state, self.UasStateUpdating):
            # A re-INVITE still being answered: RFC 3261 15.1.2 wants it ended with 487.
            self.sendUasResponse(487, "Request Terminated")
        self.dialog.hold_bye(req, sip_t)
        self.cancelCreditTimer()
        self.disconnect_ts = req.rtime
        # No disconnect callbacks: those mean "ended without BYE" to the loop side.
        self.changeState((self.UaStateDisconnected,))

    def _recv_update(self, req: Any, sip_t: Any) -> Any:
        """Answer a bodyless UPDATE now; hand one with a body to the loop side.

        An UPDATE is refused 500 with Retry-After (RFC 3311 section 5.2) while an offer or
        an earlier UPDATE is still being answered (the INVITE, a re-INVITE); after BYE the
        dialog is gone (481). sippy's own check keeps CSeqs rising, as for re-INVITE.
        """
        if isinstance(self.state, (self.UaStateDisconnected, self.UaStateDead)):
            return response_to(req, NO_SUCH_DIALOG)
        if isinstance(self.state, self.UasStateUpdating) or not self.isConnected():
            return response_to(req, _update_pending())
        if self.dialog.holds_update():
            return response_to(req, _update_pending())
        cseq = req.getHFBody("cseq").getCSeqNum()
        if self.rCSeq is not None and self.rCSeq >= cseq:
            return response_to(req, Refusal(500, "Server Internal Error"))  # as sippy does
        self.rCSeq = cseq
        if req.getBody() is None:
            return (ok_with_contact(req, self.lContact), None, None)
        self.dialog.hold_update(req, sip_t)
        return None

    def _recv_offerless_reinvite(self, req: Any) -> Any:
        # A refresh without an offer (RFC 3264 section 5): our last SDP is the offer in the
        # 200. sippy's own path would patch the SRC's multipart body as if it were SDP.
        cseq = req.getHFBody("cseq").getCSeqNum()
        if self.rCSeq is not None and self.rCSeq >= cseq:
            return response_to(req, Refusal(500, "Server Internal Error"))  # as sippy does
        self.rCSeq = cseq
        self.uasResp = req.genResponse(100, "Trying", server=self.local_ua)
        self.global_config["_sip_tm"].sendResponse(self.uasResp)
        self.sendUasResponse(200, "OK", self.lSDP, (self.lContact,))
        return None


def _update_pending() -> Refusal:
    # RFC 3311 section 5.2: a random Retry-After between 0 and 10 s, so two sides that
    # collide do not retry in step.
    return Refusal(500, "Server Internal Error", (("Retry-After", str(secrets.randbelow(11))),))
