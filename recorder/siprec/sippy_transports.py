"""sippy's transaction manager, made to read bytes right and to speak TCP and TLS as well.

Imported only in the SIP thread (by ``sippy_dialogs``). Incoming messages, datagrams and
stream messages alike, get their Content-Length counted the way sippy reads it
(``wire.py``). Requests that came in on a connection are answered on it (sippy answers
through the server a request arrived on, and each ``StreamConnection`` is one); the
requests we start inside a dialog that came over TCP or TLS (our BYE) are sent on that
dialog's connection while it is open (RFC 3261 section 18: reuse the connection), and
otherwise to the SRC's Contact over UDP.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sippy.SipTransactionManager import SipTransactionManager
from sippy.Udp_server import Udp_server, Udp_server_opts

from recorder.siprec.sip_thread import SipReactor
from recorder.siprec.stream_transport import StreamConnection, StreamListener
from recorder.siprec.transports import StreamListen, server_context
from recorder.siprec.wire import NotUtf8, content_length_in_characters

log = logging.getLogger(__name__)


class _InOrderUdpOptions(Udp_server_opts):  # type: ignore[misc]
    # sippy sends and receives through three threads per socket by default, so a 100
    # Trying can overtake... or follow the 200 it preceded: SRCs (and sipp) then see a
    # stray 100 mid-dialog. One sender and one receiver keep the wire in order.
    nworkers = 1


def speak_udp_to(url: Any) -> None:
    """Point the SRC's Contact at UDP, the transport sippy itself can open.

    Requests to a stream dialog go on its connection instead (``TransactionManager``);
    sippy matches ``transport=`` case-sensitively and raises on ``UDP`` or ``TCP`` (what
    sipp and some SBCs write) when it later sends our BYE.
    """
    if url.transport is not None:
        url.transport = "udp"


class TransactionManager(SipTransactionManager):  # type: ignore[misc]
    """sippy's, with byte-correct Content-Length and connection reuse for stream dialogs."""

    model_udp_server = (Udp_server, _InOrderUdpOptions)

    def __init__(self, global_config: dict[str, Any], req_cb: Any) -> None:
        super().__init__(global_config, req_cb)
        self.streams: list[StreamListener] = []
        self._routes: dict[str, StreamConnection] = {}

    def listen_streams(
        self, reactor: SipReactor, listens: Sequence[StreamListen], sip_host: str
    ) -> None:
        """Bind every TCP and TLS listener; on any failure unbind all and raise."""
        try:
            for listen in listens:
                listener = StreamListener(
                    host=listen.host,
                    port=listen.port,
                    sip_host=sip_host,
                    deliver=self._deliver,
                    call=reactor.call,
                    tls=server_context(listen.tls) if listen.tls is not None else None,
                )
                listener.start()
                self.streams.append(listener)
        except BaseException:
            self.unbind()
            raise

    def route(self, call_id: str, connection: StreamConnection | None) -> None:
        """Send this dialog's requests on ``connection`` (None: forget the dialog's)."""
        old = self._routes.pop(call_id, None)
        if old is not None:
            old.dialogs.discard(call_id)
        if connection is not None:
            self._routes[call_id] = connection
            connection.dialogs.add(call_id)

    def handleIncoming(self, data_in: Any, ra: Any, server: Any, rtime: Any) -> None:
        if isinstance(data_in, bytes):
            try:
                data_in = content_length_in_characters(data_in)
            except NotUtf8:
                log.info("a SIP message that is not UTF-8 was dropped")
                return
        super().handleIncoming(data_in, ra, server, rtime)

    def newTransaction(
        self,
        msg: Any,
        resp_cb: Any = None,
        laddress: Any = None,
        userv: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if userv is None:
            connection = self._routes.get(str(msg.getHFBody("call-id")))
            if connection is not None and not connection.closed:
                userv = connection
        return super().newTransaction(msg, resp_cb, laddress, userv, *args, **kwargs)

    def _deliver(self, data: bytes, remote: Any, connection: StreamConnection, rtime: Any) -> None:
        # What sippy's Network_server.handle_read does for a datagram, without its print.
        try:
            self.handleIncoming(data, remote, connection, rtime)
        except Exception as exc:
            log.error("a SIP %s message failed (%s)", connection.transport, type(exc).__name__)

    def unbind(self) -> None:
        """Close the connections and every socket; sippy's tables stay for late timers."""
        for listener in self.streams:
            listener.shutdown()
        self.streams.clear()
        self._routes.clear()
        self.cp_timer.cancel()
        self.l4r.shutdown()
