"""The SIPREC server on /metrics: the calls being recorded now, and those whose recording
could not be stored (the SBC was still told 200 to its BYE: it keeps no copy to send again,
so this gauge is where such a loss shows; alert on any rise)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from recorder.siprec import SiprecServer
from recorder.siprec.recordings import SiprecRecordings


class SiprecMetrics:
    """Read from the server and its sessions at each scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge(
            "callrec_siprec_sessions_active",
            "SIPREC calls being recorded by this replica now",
            registry=registry,
        )
        self.unstored = Gauge(
            "callrec_siprec_unstored_sessions",
            "SIPREC calls since start whose recording could not be stored",
            registry=registry,
        )

    def show(self, server: SiprecServer, sessions: SiprecRecordings) -> None:
        self.active.set(sessions.active)
        self.unstored.set(server.unstored)
