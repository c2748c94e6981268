"""``callrec audit``: check the hash-chained audit trail."""

from __future__ import annotations

import sys

import click

from config.cli.context import command_context
from config.progress import Progress
from config.services import Services
from storage import AuditChainBroken, verify_audit_chain


@click.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the whole audit chain; exit 0 if intact, 1 naming the first bad event."""

    async def verify(services: Services) -> int:
        async with services.database.read() as session:
            with Progress("audit events") as progress:
                return await verify_audit_chain(session, progress=progress.advance)

    with command_context() as context:
        try:
            count = context.run(verify)
        except AuditChainBroken as exc:
            click.echo(f"audit chain broken at event {exc.seq}: {exc.reason}", err=True)
            sys.exit(1)
    click.echo(f"audit chain intact: {count} events verified")
