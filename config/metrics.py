"""Prometheus metrics on a registry owned by the app (no globals): the HTTP front door,
readiness, the retention sweeps and attestations, the queues, the scrub and key rotation.

The alert rules in deploy/kubernetes/base/prometheusrule.yaml name these metrics; a test
checks that every metric they name is served."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from recorder import RenditionTally
from storage import SCRUB_PROBLEMS, RenditionBacklog, RetentionFacts

log = logging.getLogger(__name__)
_SCRAPE_REFRESH_TIMEOUT_S = 5.0


class HttpMetrics:
    """Request counts and latencies by route template (never by raw path: ids are unbounded)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # The process's start time, memory, CPU and descriptors, under the service's own
        # prefix so a rule can tell them from other processes' in the same namespace.
        ProcessCollector(namespace="callrec", registry=self.registry)
        self._before_scrape: list[Callable[[], Awaitable[None]]] = []
        self.requests = Counter(
            "callrec_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "callrec_http_request_duration_seconds",
            "Time to answer HTTP requests, by route.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count and time every request, including refused ones."""
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            route = _route_of(request)
            self.requests.labels(route, request.method, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)

    def refresh_on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run ``refresh`` before each scrape, so gauges read from the database are current."""
        self._before_scrape.append(refresh)

    async def handle(self, _request: web.Request) -> web.Response:
        """``GET /metrics`` in the Prometheus text format."""
        for refresh in self._before_scrape:
            try:
                await asyncio.wait_for(refresh(), _SCRAPE_REFRESH_TIMEOUT_S)
            except Exception:
                # Stale gauges and a logged warning beat a failed scrape of everything else.
                log.warning("could not refresh metrics before a scrape", exc_info=True)
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


class RetentionMetrics:
    """What an alert on deletion needs: due, overdue, held, oldest age, sweep health."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.due = Gauge(
            "callrec_retention_due_recordings",
            "Unheld recordings whose deadline falls before the next sweep.",
            registry=registry,
        )
        self.overdue = Gauge(
            "callrec_retention_overdue_recordings",
            "Unheld recordings past their deadline, stored or captures never finished "
            "(must stay 0).",
            registry=registry,
        )
        self.held = Gauge(
            "callrec_retention_held_recordings",
            "Stored recordings with a hold in force.",
            registry=registry,
        )
        self.oldest_unheld_age = Gauge(
            "callrec_retention_oldest_unheld_age_seconds",
            "Age (since the call started) of the oldest stored recording without a hold.",
            registry=registry,
        )
        self.deleted = Counter(
            "callrec_retention_deleted",
            "Recordings whose deletion this process's sweeps finished (begun here or resumed); "
            "each deletion is counted by one process only.",
            registry=registry,
        )
        self.failures = Counter(
            "callrec_retention_sweep_failures",
            "Sweeps of this process that failed; the next one retries.",
            registry=registry,
        )
        self.duration = Histogram(
            "callrec_retention_sweep_duration_seconds",
            "How long sweeps take.",
            registry=registry,
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
        )
        self.last_success = Gauge(
            "callrec_retention_last_success_timestamp_seconds",
            "Unix time at which a sweep of this process last finished without error.",
            registry=registry,
        )
        self.interval = Gauge(
            "callrec_retention_sweep_interval_seconds",
            "How often this process sweeps (CALLREC_RETENTION_SWEEP_INTERVAL).",
            registry=registry,
        )
        self.attestation_failed = Gauge(
            "callrec_retention_attestation_failed",
            "1 when the last daily attestation found unheld recordings past their deadline, "
            "else 0 (read from the audit trail: the same on every replica).",
            registry=registry,
        )
        self.last_attestation = Gauge(
            "callrec_retention_last_attestation_timestamp_seconds",
            "Unix time of the last daily attestation (0: none yet).",
            registry=registry,
        )
        self.awaiting_triage = Gauge(
            "callrec_recordings_unlinked_awaiting_triage",
            "Stored recordings still linked to no referral CALLREC_UNLINKED_REVIEW_AFTER after "
            "the call started, neither linked nor marked as needing none by their team's "
            "supervisors.",
            registry=registry,
        )

    def schedule(self, interval: timedelta) -> None:
        """Show how often sweeps run, so an alert can say "two intervals" whatever it is."""
        self.interval.set(interval.total_seconds())

    def sweep_finished(self, *, deleted: int, seconds: float, at: datetime) -> None:
        """Record a successful sweep."""
        self.deleted.inc(deleted)
        self.duration.observe(seconds)
        self.last_success.set(at.timestamp())

    def sweep_failed(self, seconds: float) -> None:
        """Record a failed sweep."""
        self.failures.inc()
        self.duration.observe(seconds)

    def show(self, facts: RetentionFacts, now: datetime) -> None:
        """Set the gauges from the database's current facts."""
        self.due.set(facts.due)
        self.overdue.set(facts.overdue)
        self.held.set(facts.held)
        oldest = facts.oldest_unheld_started_at
        self.oldest_unheld_age.set(0 if oldest is None else (now - oldest).total_seconds())
        self.attestation_failed.set(1 if facts.last_attestation_passed is False else 0)
        attested = facts.last_attestation_at
        self.last_attestation.set(0 if attested is None else attested.timestamp())

    def show_triage(self, awaiting: int) -> None:
        """Set the count of calls without a referral awaiting their team's triage."""
        self.awaiting_triage.set(awaiting)


class FetchMetrics:
    """The provider fetch queue: jobs per state, read from the database at each scrape.

    Alert on ``callrec_fetch_jobs{state="dead"}`` above 0: a recording a platform
    announced was not fetched, and exists only at the platform.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge(
            "callrec_fetch_jobs",
            "Provider fetch jobs by state (queued, running, done, dead, discarded).",
            ["state"],
            registry=registry,
        )

    def show(self, counts: dict[str, int]) -> None:
        """Set the gauges from the queue's counts."""
        for state, count in counts.items():
            self.jobs.labels(state=state).set(count)


class RenditionMetrics:
    """The rendition queue (read from the database at each scrape: every replica's jobs)
    and this process's throughput.

    ``rate(callrec_renditions_audio_seconds_total[5m])`` is audio seconds rendered per
    second; alert on ``callrec_rendition_oldest_wait_seconds`` growing, or on
    ``callrec_rendition_jobs{state="dead"}`` above 0 (those recordings play their original).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge(
            "callrec_rendition_jobs",
            "Playback rendition jobs by state (queued, running, done, dead).",
            ["state"],
            registry=registry,
        )
        self.waiting_audio = Gauge(
            "callrec_rendition_backlog_audio_seconds",
            "Audio seconds queued or being rendered.",
            registry=registry,
        )
        self.oldest_wait = Gauge(
            "callrec_rendition_oldest_wait_seconds",
            "How long the oldest unfinished rendition has waited since its recording was stored.",
            registry=registry,
        )
        self.renditions = Counter(
            "callrec_renditions",
            "Renditions this process made and stored.",
            registry=registry,
        )
        self.audio = Counter(
            "callrec_renditions_audio_seconds",
            "Audio seconds of the renditions this process made and stored.",
            registry=registry,
        )
        self.busy = Counter(
            "callrec_renditions_busy_seconds",
            "Wall seconds this process's rendition workers spent making them.",
            registry=registry,
        )
        self.cpu = Counter(
            "callrec_renditions_cpu_seconds",
            "CPU seconds this process's media workers spent decoding and encoding them.",
            registry=registry,
        )
        self._shown = RenditionTally()

    def show(self, backlog: RenditionBacklog, tally: RenditionTally) -> None:
        """Set the gauges from the queue, and move the counters on to the workers' tally."""
        for state, count in backlog.counts.items():
            self.jobs.labels(state=state).set(count)
        self.waiting_audio.set(backlog.waiting_audio_s)
        self.oldest_wait.set(backlog.oldest_wait_s)
        self.renditions.inc(tally.renditions - self._shown.renditions)
        self.audio.inc(tally.audio_s - self._shown.audio_s)
        self.busy.inc(tally.busy_s - self._shown.busy_s)
        self.cpu.inc(tally.cpu_s - self._shown.cpu_s)
        self._shown = dataclasses.replace(tally)


class IntegrityMetrics:
    """The scheduled scrub's findings: alert on any problem above 0."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.problems = Gauge(
            "callrec_integrity_problems",
            "Objects found wrong by the last scheduled integrity scrub, by problem.",
            ["problem"],
            registry=registry,
        )
        self.checked = Counter(
            "callrec_integrity_objects_checked_total",
            "Stored objects read back and verified by scheduled scrubs.",
            registry=registry,
        )
        self.last_run = Gauge(
            "callrec_integrity_last_run_timestamp_seconds",
            "Unix time at which a scheduled scrub last finished.",
            registry=registry,
        )
        for problem in SCRUB_PROBLEMS:
            self.problems.labels(problem=problem).set(0)

    def show(self, objects: int, problems: dict[str, int], at: float) -> None:
        """Record one scrub's result."""
        self.checked.inc(objects)
        for problem in SCRUB_PROBLEMS:
            self.problems.labels(problem=problem).set(problems.get(problem, 0))
        self.last_run.set(at)


class ReadinessMetrics:
    """Whether this replica is ready, by the same test as ``/readyz``: a replica the load
    balancer has left out still answers Prometheus, which scrapes every pod."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ready = Gauge(
            "callrec_ready",
            "1 when this replica would answer /readyz with 200, 0 when draining or when the "
            "database or the object store cannot be reached.",
            registry=registry,
        )

    def show(self, ready: bool) -> None:
        """Record the outcome of a readiness check."""
        self.ready.set(1 if ready else 0)


class KeyMetrics:
    """When the current key generation is due to be replaced (CALLREC_KEY_ROTATION_INTERVAL).

    The service rotates by itself within an hour of that time; a generation that outlives
    it means the scheduled rotation is failing. NaN while nothing is due: scheduled
    rotation off, or no key made yet.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rotation_due = Gauge(
            "callrec_keys_rotation_due_timestamp_seconds",
            "Unix time at which the current key generation is due to be rotated "
            "(NaN: scheduled rotation off, or no key yet).",
            registry=registry,
        )

    def show(self, due: datetime | None) -> None:
        """Record the current generation's due time."""
        self.rotation_due.set(float("nan") if due is None else due.timestamp())
