"""``callrec fetches``: the provider fetch queue as an operator needs to see it."""

from __future__ import annotations

import json
from typing import Any

import click

from config.cli.context import command_context
from config.services import Services


@click.command("fetches")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def fetches(limit: int) -> None:
    """Provider fetches by state, and the jobs given up (dead letters) for an operator.

    Exits 1 when any job is dead-lettered: a recording the platform announced is not here.
    """

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
