"""SIP over TCP and TLS for sippy: a listener whose connections sippy sends through.

sippy speaks UDP only. This listener runs its own asyncio loop in a thread (as sippy's
``Wss_server`` does), cuts each connection's byte stream into SIP messages by
Content-Length, in bytes (RFC 3261 section 18.3), and hands each to sippy's transaction
manager on the SIP thread. Every connection is itself what sippy calls a server: sippy
keeps the server a request came in on with its transaction and answers through it, so
responses go back on the connection the request used (RFC 3261 section 18.2.2) whatever
the Via says; ``sippy_transports.TransactionManager.route`` sends our BYE the same way.

Limits: a message's head is at most ``MAX_HEAD_BYTES`` and its body ``MAX_BODY_BYTES``
(over that the connection is closed: its framing can no longer be trusted), at most
``max_connections`` at once, and a connection carrying no dialog is closed when idle.
A TLS handshake that fails or stalls closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

from sippy.Network_server import Remote_address
from sippy.Time.MonoTime import MonoTime

from recorder.siprec.body import MAX_BODY_BYTES
from recorder.siprec.wire import declared_content_length

log = logging.getLogger(__name__)

# SIPREC heads are a few hundred bytes; this bounds what a peer can make us buffer.
MAX_HEAD_BYTES = 16 * 1024
DEFAULT_IDLE_S = 300.0
DEFAULT_MAX_CONNECTIONS = 200
_HANDSHAKE_S = 10.0
_START_TIMEOUT_S = 10.0
_HEAD_END = b"\r\n\r\n"

Deliver = Callable[[bytes, Any, "StreamConnection", Any], None]


class _Options:
    """The part of sippy's ``Network_server_opts`` its transaction manager reads."""

    def __init__(self, laddress: tuple[str, int]) -> None:
        self.laddress = laddress

    def isWildCard(self) -> bool:
        return False


class StreamConnection:
    """One accepted connection, as sippy's transaction manager uses a server."""

    def __init__(
        self, listener: StreamListener, writer: asyncio.StreamWriter, peer: tuple[str, int]
    ) -> None:
        self.transport = listener.transport
        self.uopts = _Options(listener.sip_address)
        self.peer = peer
        self.dialogs: set[str] = set()  # Call-IDs of live dialogs; changed in the SIP thread
        self._listener = listener
        self._writer = writer
        self.closed = False

    # sippy's server interface (called in the SIP thread).

    def getSIPaddr(self) -> tuple[tuple[str, int], str]:
        return (self.uopts.laddress, self.transport)

    def addr2str(self, address: tuple[str, int]) -> str:
        return f"{self.transport}:{address[0]}:{address[1]}"

    def send_to(self, data: bytes | str, address: object = None, delayed: bool = False) -> None:
        """Write ``data`` on this connection; ``address`` (the Via's) is not needed."""
        payload = data.encode("utf-8") if isinstance(data, str) else data
        if self.closed:
            log.info("a SIP message for a closed %s connection was dropped", self.transport)
            return
        with contextlib.suppress(RuntimeError):  # the listener's loop has stopped
            self._listener.loop.call_soon_threadsafe(self._write, payload)

    def _write(self, payload: bytes) -> None:
        if not self.closed and not self._writer.is_closing():
            self._writer.write(payload)


class StreamListener:
    """A TCP (``tls`` None) or TLS listener on its own loop thread, feeding ``deliver``.

    ``deliver(data, remote, connection, rtime)`` is called in the SIP thread through
    ``call`` (the SIP reactor's ``call``), with sippy's arguments for ``handleIncoming``.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sip_host: str,
        deliver: Deliver,
        call: Callable[..., None],
        tls: ssl.SSLContext | None = None,
        idle_s: float = DEFAULT_IDLE_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.transport = "tls" if tls is not None else "tcp"
        self.sip_address = (sip_host, port)
        self._bind = (host, port)
        self._deliver = deliver
        self._call = call
        self._tls = tls
        self._idle_s = idle_s
        self._max_connections = max_connections
        self._connections: set[StreamConnection] = set()
        self._readers: set[asyncio.Task[Any]] = set()
        self.loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def start(self) -> None:
        """Bind and serve in a new thread; raises OSError when the port cannot be bound."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name=f"sip-{self.transport}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"the SIP {self.transport} listener did not start")
        if failure:
            self._thread.join()
            raise failure[0]

    def shutdown(self) -> None:
        """Close every connection and unbind; returns once the thread has ended."""
        if self._thread is None:
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._stop)
        self._thread.join(_START_TIMEOUT_S)
        self._thread = None

    def _stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve(ready, failure))
        finally:
            self.loop.close()

    async def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(
                self._handle,
                self._bind[0],
                self._bind[1],
                ssl=self._tls,
                ssl_handshake_timeout=_HANDSHAKE_S if self._tls else None,
                limit=MAX_HEAD_BYTES,
            )
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(self._readers):
                task.cancel()
            await asyncio.gather(*self._readers, return_exceptions=True)
        await asyncio.sleep(0)  # the transports' own close callbacks

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = (str(peername[0]), int(peername[1]))
        if len(self._connections) >= self._max_connections:
            log.warning("a SIP %s connection was refused: too many open", self.transport)
            writer.close()
            return
        connection = StreamConnection(self, writer, peer)
        self._connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._readers.add(task)
        remote = Remote_address(peer, self.transport)
        try:
            while True:
                message = await self._next_message(reader, writer, connection)
                if message is None:
                    break
                self._call(self._deliver, message, remote, connection, MonoTime())
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            connection.closed = True
            self._connections.discard(connection)
            if task is not None:
                self._readers.discard(task)
            writer.close()

    async def _next_message(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: StreamConnection,
    ) -> bytes | None:
        """The next whole SIP message, or None to close the connection."""
        while True:
            try:
                async with asyncio.timeout(self._idle_s):
                    head = await reader.readuntil(_HEAD_END)
            except TimeoutError:
                if connection.dialogs:
                    continue  # a call in progress: the SRC may be quiet for hours
                return None
            except asyncio.LimitOverrunError:
                log.warning("a SIP %s message head over %d bytes", self.transport, MAX_HEAD_BYTES)
                return None
            except asyncio.IncompleteReadError:
                return None
            head = head.lstrip(b"\r\n")
            if not head:
                writer.write(b"\r\n")  # RFC 5626 keep-alive: a CRLF pong for a CRLFCRLF ping
                continue
            break
        length = declared_content_length(head)
        if length is None:
            log.warning("a SIP %s message without Content-Length", self.transport)
            return None
        if length > MAX_BODY_BYTES:
            log.warning("a SIP %s message body over %d bytes", self.transport, MAX_BODY_BYTES)
            return None
        try:
            async with asyncio.timeout(self._idle_s):
                body = await reader.readexactly(length)
        except TimeoutError:
            return None
        return head + body
