"""``callrec retention``: run a retention cycle now, or see where retention stands."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import click

from config.cli.context import command_context
from config.jobs import retention_cycle
from config.plurals import counted
from config.progress import Progress
from config.services import Services
from retention import CycleReport, retention_status


@click.group()
def retention() -> None:
    """The retention period: sweeps and their status."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=500,
    show_default=True,
    help="Recordings claimed per commit and deleted per store request.",
)
def retention_run(dry_run: bool, batch_size: int) -> None:
    """Run one sweep now: delete every recording due before the next scheduled sweep.

    Safe beside running services and other sweeps: each claims its own recordings. Writes
    the daily attestation too when the last one is a day old.
    """

    async def cycle(services: Services) -> CycleReport:
        with Progress("recording") as progress:

            def show(kind: str, ids: Sequence[uuid.UUID]) -> None:
                for recording_id in ids:
                    progress.write(
                        f"deleted {recording_id}"
                        if kind == "deleted"
                        else f"finished interrupted deletion of {recording_id}"
                    )

            report = await retention_cycle(
                services,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress.advance,
                on_batch=show,
            )
        if report.shred_error is not None:
            # The service logs this and carries on; a manual run says so and fails.
            raise report.shred_error
        return report

    with command_context() as context:
        report = context.run(cycle)
    sweep = report.sweep
    if dry_run:
        for due in sweep.due:
            click.echo(f"would delete {due.id} (deadline {due.retention_deadline.isoformat()})")
        click.echo(
            f"{counted(len(sweep.due), 'recording')} would be deleted "
            f"(cutoff {sweep.cutoff.isoformat()})"
        )
        return
    if report.captures_reaped:
        click.echo(f"{counted(report.captures_reaped, 'abandoned capture')} removed")
    click.echo(
        f"{counted(sweep.deleted_count, 'recording')} deleted, "
        f"{counted(sweep.resumed_count, 'interrupted deletion')} finished "
        f"(cutoff {sweep.cutoff.isoformat()})"
    )
    if report.shred is not None:
        for epoch in report.shred.destroyed:
            click.echo(f"epoch {epoch}: every recording gone, its key destroyed")
        if report.shred.moved_to_hold:
            held = counted(report.shred.moved_to_hold, "held data key")
            click.echo(f"{held} re-wrapped under the hold key")
    if report.attestation is not None:
        overdue = report.overdue_unheld
        past = counted(overdue, "unheld recording")
        click.echo(f"attestation written: {past} past the deadline")
        if overdue:
            sys.exit(1)


@retention.command("status")
def retention_status_command() -> None:
    """Last and next sweep, how many are due, overdue and held, and how many calls without
    a referral await their team's triage."""

    async def status(services: Services) -> dict[str, Any]:
        settings = services.settings
        return await retention_status(
            services.deleter,
            now=services.clock(),
            interval=settings.retention_sweep_interval,
            margin=settings.retention_margin,
            period=settings.retention_period,
            erasure_approvals=settings.erasure_approvals,
            triage=services.unlinked,
            review_after=settings.unlinked_review_after,
        )

    with command_context() as context:
        report = context.run(status)
    for name, value in report.items():
        click.echo(f"{name}: {json.dumps(value)}")
