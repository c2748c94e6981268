"""``callrec db``: the metadata database's schema."""

from __future__ import annotations

import click

from config.cli.context import command_context
from config.services import Services
from storage import upgrade_database


@click.group()
def db() -> None:
    """The metadata database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the newest."""

    async def upgrade(services: Services) -> None:
        await upgrade_database(services.database.engine)

    with command_context(creates=True) as context:
        context.run(upgrade)
    click.echo("database is up to date")
