"""``callrec verify``: the integrity scrub, run by hand over every object or a sample."""

from __future__ import annotations

import json

import click

from config.cli.context import command_context
from config.jobs import scrubber
from config.progress import Progress
from config.services import Services
from storage import ScrubReport


@click.command("verify")
@click.option(
    "--sample",
    type=click.IntRange(1, 10_000_000),
    default=None,
    help="Check this many objects chosen at random (no orphan search) instead of all.",
)
def verify(sample: int | None) -> None:
    """Integrity scrub: every stored object read back, authenticated and hashed.

    Reports missing, resized, corrupt and orphaned objects and objects whose key will not
    open; the run is audited. Exit 0 only if all is well.
    """

    async def scrub(services: Services) -> ScrubReport:
        with Progress("object") as progress:
            return await scrubber(services).run(sample=sample, progress=progress.advance)

    with command_context() as context:
        report = context.run(scrub)
    for finding in report.findings:
        click.echo(
            json.dumps(
                {
                    "problem": finding.problem,
                    "object_key": finding.object_key,
                    "recording_id": None
                    if finding.recording_id is None
                    else str(finding.recording_id),
                }
            )
        )
    click.echo(
        f"objects: {report.objects}, bytes: {report.bytes}, problems: {len(report.findings)}"
    )
    if not report.ok:
        raise SystemExit(1)
