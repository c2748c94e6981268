"""``callrec fetches``: the provider fetch queue as an operator needs to see it, and the
two ways to settle a dead letter: retry it, or discard it with a reason."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any, NoReturn

import click

from config.cli.context import CLI_ACTOR, command_context
from config.plurals import counted
from config.services import Services
from retrieval.grants import check_reason


@click.group("fetches", invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.pass_context
def fetches(ctx: click.Context, limit: int) -> None:
    """Provider fetches by state, and the jobs given up (dead letters) for an operator.

    Exits 1 while any job is dead-lettered: a recording the platform announced is not
    here. `callrec fetches retry` or `callrec fetches discard` settles each one.
    """
    if ctx.invoked_subcommand is not None:
        return

    async def report(services: Services) -> tuple[dict[str, int], list[dict[str, Any]]]:
        queue = services.fetch_queue
        return await queue.counts(), await queue.dead_letters(limit)

    with command_context() as context:
        counts, dead = context.run(report)
    for state, count in counts.items():
        click.echo(f"{state}: {count}")
    for letter in dead:
        click.echo(json.dumps(letter))
    if counts.get("dead"):
        raise SystemExit(1)


@fetches.command("retry")
@click.argument("job_id", metavar="ID", required=False)
@click.option("--all", "every", is_flag=True, help="Retry every dead-lettered job.")
def fetches_retry(job_id: str | None, every: bool) -> None:
    """Queue a dead-lettered job (or --all of them) again, with all its attempts; audited."""
    if (job_id is None) == (not every):
        _refuse("give one job ID or --all, not both")
    job = None if job_id is None else _job_id(job_id)

    async def retry(services: Services) -> int:
        dead = services.fetch_queue.dead
        if job is None:
            return await dead.retry_all(actor=CLI_ACTOR)
        return 1 if await dead.retry(job, actor=CLI_ACTOR) else 0

    with command_context() as context:
        retried = context.run(retry)
    if job is not None and not retried:
        _refuse(f"no dead-lettered fetch job {job}")
    click.echo(f"{counted(retried, 'job')} queued again")


@fetches.command("discard")
@click.argument("job_id", metavar="ID")
@click.option("--reason", help="Why the recording is given up, for the audit trail.")
def fetches_discard(job_id: str, reason: str | None) -> None:
    """Give a dead-lettered job up for good, saying why; audited."""
    job = _job_id(job_id)
    try:
        text = check_reason(reason)
    except ValueError as exc:
        _refuse(f"--reason: {exc}")

    async def discard(services: Services) -> bool:
        return await services.fetch_queue.dead.discard(job, actor=CLI_ACTOR, reason=text)

    with command_context() as context:
        discarded = context.run(discard)
    if not discarded:
        _refuse(f"no dead-lettered fetch job {job}")
    click.echo(f"discarded {job}")


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        _refuse(f"{text[:64]!r} is not a job id (the `job` of `callrec fetches`)")


def _refuse(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit 2, as for every command."""
    click.echo(f"callrec: {message}", err=True)
    sys.exit(2)
