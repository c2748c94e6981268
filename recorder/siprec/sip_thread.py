"""The one thread sippy runs in, and what keeps SIP text out of its logs and stdout.

sippy's reactor (``ED2``) is a process-wide singleton created when
``sippy.Core.EventDispatcher`` is first imported, and belongs to the importing thread: its
timers complain from any other, and its C timer (ElPeriodic) crashes the process when
driven from a second thread after the first has gone (measured: a segfault on restart). So
sippy is imported only here, inside a daemon thread started once per process and kept for
the process's life; listeners (``SipListener``) come and go on it.
Other threads reach it only through ``SipReactor.call`` and ``call_sync``.

sippy also logs whole SIP messages (participants' numbers, the metadata) through its
``SipLogger`` and ``print``s others, with tracebacks, to stdout. Listeners get
``QuietSipLog`` instead (``SipLogger`` is never built, so neither its ``eval`` of the
``SIPLOG_LVL`` environment variable nor its SIGUSR1 handler ever runs), and every loaded
sippy module's ``print`` and ``dump_exception`` are pointed at this module's logger, which
keeps only the first line's method or status and a hash of the Call-ID.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from recorder.siprec.admission import AdmissionPolicy
from recorder.siprec.signalling import SignallingEvents, call_tag
from recorder.siprec.transports import StreamListen

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_START_TIMEOUT_S = 10.0
_SIPPY_REACTOR = "sippy.Core.EventDispatcher"
# A digit run long enough to be part of a number, and anything that looks like an address.
_NUMBERISH = re.compile(r"\d{4,}|\S+@\S+")
_CALL_ID = re.compile(r"^(?:call-id|i)\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def scrub(text: str, limit: int = 120) -> str:
    """The first line of ``text`` with digit runs and user@host tokens masked."""
    first = text.strip().split("\n", 1)[0][:limit]
    return _NUMBERISH.sub("#", first)


class QuietSipLog:
    """sippy's ``_sip_logger``: one debug line per message, never the message itself.

    sippy calls ``write(prefix, message, ltime=...)`` for every datagram in and out; the
    request line may carry a number in its URI and the body the participants, so only the
    method (or status code) and a hash of the Call-ID are kept.
    """

    def write(self, *args: Any, **_kwargs: Any) -> None:
        if not log.isEnabledFor(logging.DEBUG) or len(args) < 2:
            return
        prefix, message = str(args[0]), str(args[1])
        first = message.split("\r\n", 1)[0].split("\n", 1)[0]
        parts = first.split(" ")
        what = " ".join(parts[:2]) if first.startswith("SIP/2.0 ") else parts[0][:20]
        match = _CALL_ID.search(message)
        log.debug(
            "sip %s %s",
            "in" if prefix.startswith("RECEIVED") else "out",
            _NUMBERISH.sub("#", what),
            extra={"call": call_tag(match.group(1)) if match else None},
        )


def _quiet_print(*args: Any, **_kwargs: Any) -> None:
    log.warning("sippy: %s", scrub(" ".join(str(a) for a in args)))


def _quiet_dump_exception(msg: str, f: Any = None, extra: Any = None) -> None:
    # ``extra`` is the whole SIP message that failed: dropped. The exception's text may
    # quote header values, so only its type and where it was raised are kept.
    exc_type, _, tb = sys.exc_info()
    where = ""
    while tb is not None:
        where = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    name = exc_type.__name__ if exc_type else "no exception"
    log.error("sippy: %s (%s at %s)", scrub(msg), name, where)


def _silence_sippy() -> None:
    """Point every loaded sippy module's ``print`` and ``dump_exception`` at our logger.

    Module globals shadow builtins, so this reaches the ``print`` calls inside sippy
    without touching ``sys.stdout`` for the rest of the process.
    """
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "sippy" or name.startswith("sippy.")):
            continue
        module.print = _quiet_print  # type: ignore[attr-defined]
        if hasattr(module, "dump_exception"):
            module.dump_exception = _quiet_dump_exception  # type: ignore[attr-defined]


class SipReactor:
    """sippy's reactor in its own thread; ``sip_reactor()`` gives the process's one."""

    def __init__(self) -> None:
        self._ed2: Any = None
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self._ed2 = _import_sippy()
            except BaseException as exc:
                failure.append(exc)
                return
            finally:
                ready.set()
            self._ed2.loop()

        self._thread = threading.Thread(target=run, name="sippy", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("sippy's reactor did not start")
        if failure:
            raise RuntimeError("sippy's reactor could not start") from failure[0]

    def call(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in the SIP thread soon; exceptions go to the log."""
        self._ed2.callFromThread(fn, *args)

    def call_sync(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run ``fn(*args)`` in the SIP thread and return its result (or raise its error).

        Blocks the calling thread: from the loop, use it only for start and stop.
        """
        if threading.current_thread() is self._thread:
            return fn(*args)
        result: _T = self._ed2.callFromThreadSync(fn, *args)
        return result

    def load(self, module: str) -> Any:
        """Import ``module`` (one that imports sippy) in the SIP thread, then silence it."""

        def load() -> Any:
            import importlib

            loaded = importlib.import_module(module)
            _silence_sippy()
            return loaded

        return self.call_sync(load)


def _import_sippy() -> Any:
    if _SIPPY_REACTOR in sys.modules:
        raise RuntimeError("sippy was imported outside its thread; its reactor is not ours")
    from sippy.Core.EventDispatcher import ED2
    from sippy.SipConf import SipConf

    # The Server and User-Agent headers: no library name and version for a scanner.
    SipConf.my_uaname = "callrec"
    _silence_sippy()
    return ED2


_reactor: SipReactor | None = None
_reactor_lock = threading.Lock()


def sip_reactor() -> SipReactor:
    """The process's SIP thread, started on first use (see the module docstring for why)."""
    global _reactor
    with _reactor_lock:
        if _reactor is None:
            _reactor = SipReactor()
        return _reactor


class SipListener:
    """One SIP listener on the shared SIP thread: bound by ``start``, unbound by ``stop``.

    UDP always, plus a TCP or TLS listener per ``streams`` entry; they bind and unbind
    together.

    ``events`` receives the SIP side's events on ``loop``; the sippy-facing code
    (``sippy_dialogs.py``) is imported in the SIP thread on first start.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        contact_host: str,
        policy: AdmissionPolicy,
        bye_answer_within_s: float,
        streams: Sequence[StreamListen] = (),
    ) -> None:
        self._options = {
            "streams": tuple(streams),
            "host": host,
            "port": port,
            "contact_host": contact_host,
            "policy": policy,
            "bye_answer_within_s": bye_answer_within_s,
        }
        self._frontend: Any = None

    def start(self, events: SignallingEvents, loop: asyncio.AbstractEventLoop) -> None:
        """Bind and start serving; raises OSError when a port cannot be bound (or a TLS
        file cannot be read)."""
        if self._frontend is not None:
            raise RuntimeError("the SIP listener is already started")
        reactor = sip_reactor()
        dialogs = reactor.load("recorder.siprec.sippy_dialogs")
        self._frontend = reactor.call_sync(
            lambda: dialogs.SippyFrontend(reactor, events=events, loop=loop, **self._options)
        )

    def sending(self) -> bool:
        """Whether requests we sent (BYEs) still await their answers; blocks briefly."""
        frontend = self._frontend
        return frontend is not None and bool(sip_reactor().call_sync(frontend.sending))

    def stop(self) -> None:
        """Unbind; answers any BYE still held. Idempotent."""
        frontend, self._frontend = self._frontend, None
        if frontend is not None:
            sip_reactor().call_sync(frontend.shutdown)
