"""The SRS's SIP side on sippy: admission, dialogs, and the hand-over to the event loop.

Like the transports it uses (``sippy_transports.py``, ``stream_transport.py``), it imports
sippy and is imported only inside the SIP thread (``SipReactor.load``): every function
here runs on that thread. sippy keeps transactions
(retransmissions, 100 Trying, CANCEL and its 487, the 200's retransmission until ACK) and
dialog state; this module and its UA (``sippy_agent.py``) decide what sippy's UA would
get wrong for a recorder:

- requests from outside the allow-list, non-SIPREC INVITEs, unknown Require tags and a full
  house are refused before a UA exists (``admission.py`` decides);
- BYE is held: its 200 goes out when the loop side says the recording is stored
  (``answer_bye``), or at the deadline, before the SRC's transaction gives up;
- UPDATE (RFC 3311, which sippy's UA does not implement) is taken here: without a body
  (a session-timer refresh) it gets 200 at once; with one it is held like BYE and answered
  when the loop side has merged the metadata (``answer_update``);
- INFO and other methods sippy's UA leaves unanswered get 501, REFER gets 403 (sippy's UA
  would treat it as a transfer and hang up), OPTIONS lists what we allow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sippy.CCEvents import CCEventConnect, CCEventFail, CCEventUpdate
from sippy.MsgBody import MsgBody
from sippy.SipAddress import SipAddress
from sippy.SipContact import SipContact
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout

from recorder.siprec.admission import (
    ALLOWED_METHODS,
    NO_SUCH_DIALOG,
    NOT_ALLOWED_HERE,
    NOT_IMPLEMENTED,
    AdmissionPolicy,
    Header,
    Refusal,
    capability_headers,
)
from recorder.siprec.signalling import Invitation, SignallingEvents, call_tag
from recorder.siprec.sip_thread import QuietSipLog, SipReactor
from recorder.siprec.sippy_agent import (
    OPTIONS_OK,
    SrsUserAgent,
    body_of,
    ok_with_contact,
    response_to,
    sip_headers,
)
from recorder.siprec.sippy_transports import TransactionManager, speak_udp_to
from recorder.siprec.stream_transport import StreamConnection
from recorder.siprec.transports import StreamListen

log = logging.getLogger(__name__)


class SippyDialog:
    """A recording session's dialog; public methods are called from the loop's thread."""

    def __init__(
        self, frontend: SippyFrontend, ua: SrsUserAgent, call_id: str, source: tuple[str, int]
    ) -> None:
        self._frontend = frontend
        self._ua = ua
        self._call_id = call_id
        self.source = source
        self._held_bye: tuple[Any, Any] | None = None
        self._held_update: tuple[Any, Any] | None = None

    @property
    def call_id(self) -> str:
        return self._call_id

    def accept(self, sdp: str) -> None:
        self._frontend.reactor.call(self._accept, sdp)

    def refuse(self, code: int, reason: str, headers: Sequence[Header] = ()) -> None:
        self._frontend.reactor.call(self._refuse, code, reason, tuple(headers))

    def hang_up(self) -> None:
        self._frontend.reactor.call(self._ua.disconnect)

    def answer_bye(self) -> None:
        self._frontend.reactor.call(self._answer_bye, False)

    def answer_update(
        self, code: int, reason: str, sdp: str | None = None, headers: Sequence[Header] = ()
    ) -> None:
        self._frontend.reactor.call(self._answer_update, code, reason, sdp, tuple(headers))

    def forget(self) -> None:
        self._frontend.reactor.call(self._frontend.forget, self)

    # In the SIP thread from here on.

    def _accept(self, sdp: str) -> None:
        event = CCEventConnect((200, "OK", MsgBody(sdp)))
        event.extra_headers = sip_headers(capability_headers()[:2])
        self._ua.recvEvent(event)

    def _refuse(self, code: int, reason: str, headers: tuple[Header, ...]) -> None:
        event = CCEventFail((code, reason))
        event.extra_headers = sip_headers(headers) or None
        self._ua.recvEvent(event)

    def hold_bye(self, req: Any, sip_t: Any) -> None:
        """Keep the BYE's server transaction open without answering it yet.

        sippy drops a transaction whose callback returns nothing unless one of its timers
        runs, so the answer deadline is installed as the transaction's timer E; sippy
        cancels it itself when the 200 goes out. Retransmitted BYEs meet the open
        transaction and are absorbed.
        """
        self._held_bye = (req, sip_t)
        sip_t.teE = Timeout(self._answer_bye, self._frontend.bye_answer_within_s, 1, True)
        self._frontend.post(self._frontend.events.bye_received, self)

    def answer_held_bye(self, late: bool) -> None:
        """Send the 200 to the held BYE, if one is held (SIP thread)."""
        self._answer_bye(late)

    def _answer_bye(self, late: bool) -> None:
        if self._held_bye is None:
            return
        req, sip_t = self._held_bye
        self._held_bye = None
        if late:
            sip_t.teE = None  # it has just fired
            log.warning(
                "BYE answered at its deadline, before the recording was stored",
                extra={"call": call_tag(self._call_id)},
            )
        self._frontend.tm.sendResponse(req.genResponse(200, "OK"), sip_t)

    def holds_update(self) -> bool:
        return self._held_update is not None

    def hold_update(self, req: Any, sip_t: Any) -> None:
        """Keep an UPDATE's transaction open until the loop side has read its body.

        As for BYE, the deadline is the transaction's timer E; at it the UPDATE gets 500
        and the session goes on as it was.
        """
        self._held_update = (req, sip_t)
        sip_t.teE = Timeout(self._update_too_late, self._frontend.bye_answer_within_s, 1, True)
        content_type, body = body_of(req.getBody())
        invitation = Invitation(self._call_id, self.source, content_type, body)
        self._frontend.post(self._frontend.events.updated, self, invitation)

    def answer_held_update(self) -> None:
        """Refuse the held UPDATE, if one is held: the dialog is going away (SIP thread)."""
        self._answer_update(481, NO_SUCH_DIALOG.reason, None, ())

    def _update_too_late(self) -> None:
        if self._held_update is not None:
            self._held_update[1].teE = None  # it has just fired
            log.warning("UPDATE not answered in time", extra={"call": call_tag(self._call_id)})
            self._answer_update(500, "Server Internal Error", None, ())

    def _answer_update(
        self, code: int, reason: str, sdp: str | None, headers: tuple[Header, ...]
    ) -> None:
        if self._held_update is None:
            return
        req, sip_t = self._held_update
        self._held_update = None
        if code == 200:
            resp = ok_with_contact(req, self._ua.lContact, sdp)
        else:
            resp = req.genResponse(code, reason)
            resp.appendHeaders(list(sip_headers(headers)))
        self._frontend.tm.sendResponse(resp, sip_t)


class SippyFrontend:
    """One SIP listener: the transaction manager, the dialogs, the hand-over to the loop."""

    def __init__(
        self,
        reactor: SipReactor,
        *,
        host: str,
        port: int,
        contact_host: str,
        policy: AdmissionPolicy,
        events: SignallingEvents,
        loop: asyncio.AbstractEventLoop,
        bye_answer_within_s: float,
        streams: Sequence[StreamListen] = (),
    ) -> None:
        self.reactor = reactor
        self.policy = policy
        self.events = events
        self.loop = loop
        self.bye_answer_within_s = bye_answer_within_s
        self.dialogs: dict[str, SippyDialog] = {}
        # Our Contact names the transport the dialog came in on, so the SRC's in-dialog
        # requests come back the same way.
        self._contacts = {
            "udp": SipContact(address=SipAddress(url=SipURL(host=contact_host, port=port)))
        }
        for stream in streams:
            url = SipURL(host=contact_host, port=stream.port, transport=stream.transport)
            self._contacts[stream.transport] = SipContact(address=SipAddress(url=url))
        self.config: dict[str, Any] = {
            "_sip_address": host,
            "_sip_port": port,
            "_sip_logger": QuietSipLog(),
        }
        self.tm = TransactionManager(self.config, self.recv_request)
        self.config["_sip_tm"] = self.tm
        self.tm.listen_streams(reactor, streams, contact_host)

    def post(self, handler: Callable[..., None], *args: Any) -> None:
        """Schedule a loop-side handler; a stopped loop means the service is going away."""
        try:
            self.loop.call_soon_threadsafe(handler, *args)
        except RuntimeError:
            log.warning("a SIP event arrived after the event loop closed")

    def recv_request(self, req: Any, sip_t: Any) -> Any:
        """sippy's callback for every request that matches no dialog."""
        method = req.getMethod()
        host, port = req.getSource()
        if not self.policy.source_allowed(host):
            return response_to(req, NOT_ALLOWED_HERE)
        if method == "OPTIONS":
            return response_to(req, OPTIONS_OK)
        if req.getHFBody("to").getTag() is not None:
            return response_to(req, NO_SUCH_DIALOG)
        if method == "INVITE":
            return self._recv_invite(req, sip_t, (str(host).strip("[]"), int(port)))
        if method in ALLOWED_METHODS:
            return response_to(req, NO_SUCH_DIALOG)
        return response_to(req, NOT_IMPLEMENTED)

    def _recv_invite(self, req: Any, sip_t: Any, source: tuple[str, int]) -> Any:
        call_id = str(req.getHFBody("call-id"))
        if call_id in self.dialogs:
            # A second dialog under a live Call-ID (a fork or a loop): the Call-ID keys
            # the session on the media side, so it cannot be shared.
            return response_to(req, Refusal(482, "Loop Detected"))
        refusal = self.policy.refuse_invite(
            source_host=source[0],
            require=[str(h.getBody()) for h in req.getHFs("require")],
            contact=str(req.getHFBody("contact")) if req.countHFs("contact") else None,
            active_sessions=len(self.dialogs),
        )
        if refusal is not None:
            log.info(
                "SIPREC INVITE refused",
                extra={"call": call_tag(call_id), "status": refusal.code},
            )
            return response_to(req, refusal)
        speak_udp_to(req.getHFBody("contact").getUrl())
        content_type, body = body_of(req.getBody())
        ua = SrsUserAgent(self.config, self._ua_event, disc_cbs=(self._disconnected,))
        connection = sip_t.userv if isinstance(sip_t.userv, StreamConnection) else None
        ua.lContact = self._contacts[connection.transport if connection else "udp"].getCopy()
        self.tm.route(call_id, connection)
        dialog = SippyDialog(self, ua, call_id, source)
        ua.dialog = dialog
        self.dialogs[call_id] = dialog
        answer = ua.recvRequest(req, sip_t)
        self.post(self.events.invited, dialog, Invitation(call_id, source, content_type, body))
        return answer

    def _ua_event(self, event: Any, ua: SrsUserAgent) -> None:
        if isinstance(event, CCEventUpdate):
            content_type, body = body_of(event.getData())
            invitation = Invitation(ua.dialog.call_id, ua.dialog.source, content_type, body)
            self.post(self.events.reinvited, ua.dialog, invitation)

    def _disconnected(self, ua: SrsUserAgent, *_when: Any) -> None:
        # Before the 200 this is a CANCEL (or the INVITE's expiry); after it, no ACK came
        # or we hung up ourselves (the loop side knows which calls it is ending).
        self.post(self.events.ended, ua.dialog, "cancel" if ua.connect_ts is None else "error")

    def forget(self, dialog: SippyDialog) -> None:
        if self.dialogs.get(dialog.call_id) is dialog:
            del self.dialogs[dialog.call_id]
            self.tm.route(dialog.call_id, None)

    def sending(self) -> bool:
        """Whether requests we sent (our BYEs) still await their final responses."""
        return bool(self.tm.tclient)

    def shutdown(self) -> None:
        """Unbind; dialogs still open are the loop side's to end first."""
        for dialog in list(self.dialogs.values()):
            dialog.answer_held_update()
            dialog.answer_held_bye(False)
        self.dialogs.clear()
        # Only the sockets and the cache purge: sippy's own shutdown() also drops the
        # tables that dialogs' last timers (up to 32 s on) still look into, and each of
        # those would then end in a traceback.
        self.tm.unbind()
