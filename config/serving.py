"""How ``serve`` holds its socket and stops: bound before any work, drained on SIGTERM.

Not aiohttp's ``run_app``: that binds only once start-up (migrations, the first sweep)
is done, and its shutdown stops reading every request body at once, so a sender in the
middle of an upload waits for a timeout and is told 408. Here the drain comes first
(``config.drain`` has the timetable) and aiohttp's own shutdown only closes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web

from config.app import BACKGROUND, DRAIN
from config.drain import DrainPlan

log = logging.getLogger("callrec")
BACKLOG = 128
EXIT_MARGIN_S = 0.3
"""Kept back from the grace period for the interpreter to exit once the loop is done."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening; OSError if it cannot be had.

    Listening at once, not just bound: two processes may both bind one port with
    SO_REUSEADDR, but only one can listen on it. Connections that arrive during start-up
    wait in the backlog.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        # A restart must not wait for the last process's connections to leave TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve_until_stopped(
    app: web.Application,
    sock: socket.socket,
    *,
    grace: timedelta,
    on_listening: Callable[[], None],
) -> float:
    """Start the app, serve on ``sock`` until SIGTERM or SIGINT, then drain within ``grace``.

    Returns how long the drain took, in seconds.
    """
    plan = DrainPlan.within(grace)
    # A request still unanswered when the answers' deadline passes is cancelled by aiohttp,
    # which waits this long twice (for the handler, then for its task).
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=(plan.exit_by - plan.answers_until) / 4
    )
    try:
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    loop = asyncio.get_running_loop()
    assert runner.server is not None  # set by setup()
    listener = await loop.create_server(runner.server, sock=sock, backlog=BACKLOG)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    on_listening()
    await stopping.wait()
    return await _drain(app, runner, listener, plan)


async def _drain(
    app: web.Application, runner: web.AppRunner, listener: asyncio.Server, plan: DrainPlan
) -> float:
    loop = asyncio.get_running_loop()
    began = loop.time()

    def left(until: float) -> float:
        return max(until - (loop.time() - began), 0.0)

    drain = app[DRAIN]
    drain.begin()
    listener.close()  # no new connection; those open carry on
    log.info("draining", extra={"in_flight": drain.in_flight, "grace_s": plan.exit_by})
    background = asyncio.create_task(app[BACKGROUND].stop(finish_within=plan.bodies_until))
    if not await drain.requests_finished(left(plan.bodies_until)):
        log.warning("refusing request bodies still arriving", extra={"in_flight": drain.in_flight})
        drain.stop_receiving.set()
        if not await drain.requests_finished(left(plan.storing_until)):
            log.warning("giving up captures still storing", extra={"in_flight": drain.in_flight})
            drain.stop_storing.set()
            if not await drain.requests_finished(left(plan.answers_until)):
                log.error("cancelling requests the grace period left unanswered")
    _, unfinished = await asyncio.wait((background,), timeout=left(plan.answers_until))
    if unfinished:
        log.error("cancelling background work the grace period left unfinished")
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background
    try:
        async with asyncio.timeout(left(plan.exit_by - EXIT_MARGIN_S)):
            await runner.cleanup()
    except TimeoutError:
        log.error("closing down overran the grace period; exiting anyway")
    drained = loop.time() - began
    log.info("stopped", extra={"drain_s": round(drained, 2)})
    return drained
