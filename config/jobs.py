"""The service's background jobs, in one table: what runs, how often, and whether at start-up.

The scheduler starts every job in ``JOBS`` and nothing else; the command line calls the
same functions (``callrec retention run`` runs ``retention_cycle``), so a manual run and
the scheduled one cannot drift apart. Each job turns its part's report into metrics and
log lines here, which keeps the rules themselves free of how the service reports.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from config.metrics import IntegrityMetrics, RetentionMetrics
from config.scheduler import SweepSchedule
from config.services import Services
from config.settings import Settings
from retention import DEFAULT_BATCH, CycleReport, run_retention_cycle
from storage import Scrubber

log = logging.getLogger("callrec")
KEYS_ACTOR = "keys"
"""Who the audit trail names for key upkeep the service does by itself."""
KEY_UPKEEP_INTERVAL = timedelta(hours=1)
"""How often the service looks whether a rotation is due and whether anything is left to
re-wrap or retire; the rotation itself follows CALLREC_KEY_ROTATION_INTERVAL."""


@dataclass(frozen=True, slots=True)
class JobMetrics:
    """Where the jobs' results are shown, registered with the app's metrics."""

    retention: RetentionMetrics
    integrity: IntegrityMetrics


@dataclass(frozen=True, slots=True)
class Job:
    """One background job: its name, its body, its interval and whether it runs at start-up."""

    name: str
    run: Callable[[Services, JobMetrics], Awaitable[None]]
    interval: Callable[[Settings], timedelta]
    run_at_start: bool


def sweep_horizon(settings: Settings) -> timedelta:
    """How far ahead a sweep deletes: to the next sweep, plus a margin."""
    return settings.retention_sweep_interval + settings.retention_margin


def _counts_only(_kind: str, _ids: Sequence[uuid.UUID]) -> None:
    """The scheduled sweep keeps no ids, so memory stays flat however many are due."""


async def retention_cycle(
    services: Services,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    on_batch: Callable[[str, Sequence[uuid.UUID]], None] = _counts_only,
) -> CycleReport:
    """One retention cycle over this service's parts; the job and the command both call it."""
    return await run_retention_cycle(
        services.deleter,
        services.recordings,
        services.fetch_queue,
        services.keys,
        clock=services.clock,
        horizon=sweep_horizon(services.settings),
        period=services.settings.retention_period,
        erasure_approvals=services.settings.erasure_approvals,
        dry_run=dry_run,
        progress=progress,
        batch_size=batch_size,
        on_batch=on_batch,
        cases=services.subject_access,
    )


async def retention_job(services: Services, metrics: JobMetrics) -> None:
    """The scheduled cycle, shown as metrics and log lines."""
    started = time.perf_counter()
    try:
        report = await retention_cycle(services)
    except BaseException:
        metrics.retention.sweep_failed(time.perf_counter() - started)
        raise
    sweep = report.sweep
    metrics.retention.sweep_finished(
        deleted=sweep.deleted_count + sweep.resumed_count,
        seconds=time.perf_counter() - started,
        at=services.clock(),
    )
    log.info(
        "retention sweep", extra={"deleted": sweep.deleted_count, "resumed": sweep.resumed_count}
    )
    if report.captures_reaped:
        log.warning("removed abandoned captures", extra={"count": report.captures_reaped})
    if report.shred_error is not None:
        log.error("could not destroy the keys of spent weeks", exc_info=report.shred_error)
    elif report.shred is not None and (report.shred.destroyed or report.shred.moved_to_hold):
        log.info(
            "epoch keys destroyed",
            extra={"epochs": report.shred.destroyed, "moved_to_hold": report.shred.moved_to_hold},
        )
    if report.overdue_unheld:
        log.error(
            "retention attestation failed: recordings outlive their deadline",
            extra={"overdue_unheld": report.overdue_unheld},
        )


def scrubber(services: Services) -> Scrubber:
    """The integrity scrub over this service's database, store and keys."""
    return Scrubber(
        database=services.database,
        objects=services.objects,
        keys=services.keys,
        audit=services.audit,
    )


async def scrub_job(services: Services, metrics: JobMetrics) -> None:
    """The sampled integrity scrub, shown as metrics and, on damage, an error line."""
    report = await scrubber(services).run(sample=services.settings.integrity_scrub_sample)
    problems = report.problems()
    metrics.integrity.show(report.objects, problems, time.time())
    if not report.ok:
        log.error("integrity scrub found damage", extra={"problems": problems})


async def key_upkeep_job(services: Services, _metrics: JobMetrics) -> None:
    """Rotate when due, then re-wrap what an earlier rotation left and retire what is unused."""
    keys = services.keys
    rotated = await keys.rotate_if_due(services.settings.key_rotation_interval, actor=KEYS_ACTOR)
    if rotated is not None:
        log.info("keys rotated", extra={"generation": rotated})
    # Re-wraps what an earlier rotation left (a run cut short, a process that wrapped
    # under the old generation), then retires what nothing uses.
    report = await keys.rewrap(actor=KEYS_ACTOR)
    if report.rewrapped or report.retired:
        log.info(
            "keys re-wrapped",
            extra={"data_keys": report.rewrapped, "retired": len(report.retired)},
        )


async def audit_checkpoint_job(services: Services, _metrics: JobMetrics) -> None:
    """Anchor the audit chain's head outside the database (the log line is written there)."""
    await services.anchors.checkpoint()


LEDGER_REFRESH_INTERVAL = timedelta(minutes=1)
"""How often the deletion ledger's listing that playback consults is read again: one LIST
(a request per thousand entries). Deletions this process records join it at once and the
start-up reconciliation reads it first, so the interval only bounds how long a deletion
recorded against some other database goes unseen (docs/operations.md)."""


async def ledger_refresh_job(services: Services, _metrics: JobMetrics) -> None:
    """List the deletion ledger again, for playback's check; or, if the database or the
    store was unreachable when the service started, do the start-up reconciliation now."""
    if services.reconciled:
        await services.ledger.refresh()
    else:
        await services.reconcile_with_anchors()


JOBS: tuple[Job, ...] = (
    # At start-up too: a sweep missed while the service was down is caught up at once.
    Job("retention sweep", retention_job, lambda s: s.retention_sweep_interval, True),
    Job("integrity scrub", scrub_job, lambda s: s.integrity_scrub_interval, False),
    Job("key upkeep", key_upkeep_job, lambda _s: KEY_UPKEEP_INTERVAL, False),
    Job("audit checkpoint", audit_checkpoint_job, lambda s: s.audit_checkpoint_interval, True),
    # Not at start-up: the reconciliation has just read it.
    Job("deletion ledger", ledger_refresh_job, lambda _s: LEDGER_REFRESH_INTERVAL, False),
)
"""Every background job the service runs; ``start_jobs`` starts exactly these."""


def start_jobs(services: Services, metrics: JobMetrics) -> list[SweepSchedule]:
    """Start every job in ``JOBS`` on its own schedule; stop them with ``stop_jobs``."""
    schedules = []
    for job in JOBS:

        async def run(job: Job = job) -> None:
            await job.run(services, metrics)

        schedule = SweepSchedule(
            run, job.interval(services.settings), name=job.name, run_at_start=job.run_at_start
        )
        schedule.start()
        schedules.append(schedule)
    return schedules


async def stop_jobs(schedules: Sequence[SweepSchedule]) -> None:
    """Stop the schedules, last started first, each waiting for a run in progress."""
    for schedule in reversed(schedules):
        await schedule.stop()
