"""``callrec renditions``: the playback renditions still to be made, and retrying those
given up. A recording whose rendition is not made plays its original meanwhile."""

from __future__ import annotations

import json

import click

from config.cli.context import CLI_ACTOR, command_context
from config.plurals import counted
from config.services import Services
from storage import RenditionBacklog


@click.group("renditions", invoke_without_command=True)
@click.pass_context
def renditions(ctx: click.Context) -> None:
    """Rendition jobs by state, the audio waiting and the oldest wait.

    Exits 1 while any rendition is dead-lettered (`callrec renditions retry` queues them
    again); those recordings play their original, which is stored and unharmed.
    """
    if ctx.invoked_subcommand is not None:
        return

    async def report(services: Services) -> RenditionBacklog:
        return await services.rendition_queue.backlog()

    with command_context() as context:
        backlog = context.run(report)
    for state, count in backlog.counts.items():
        click.echo(f"{state}: {count}")
    click.echo(
        json.dumps(
            {
                "waiting_audio_s": round(backlog.waiting_audio_s, 1),
                "oldest_wait_s": round(backlog.oldest_wait_s, 1),
            }
        )
    )
    if backlog.counts.get("dead"):
        raise SystemExit(1)


@renditions.command("retry")
def renditions_retry() -> None:
    """Queue every dead-lettered rendition again, with all its attempts; audited."""

    async def retry(services: Services) -> int:
        return await services.rendition_queue.retry_dead(actor=CLI_ACTOR)

    with command_context() as context:
        retried = context.run(retry)
    click.echo(f"{counted(retried, 'rendition')} queued again")
