"""``callrec audit``: check the hash-chained audit trail and every deletion receipt in it."""

from __future__ import annotations

import sys

import click

from config.cli.context import command_context
from config.plurals import counted
from config.progress import Progress
from config.services import Services
from storage import (
    AuditChainBroken,
    ReceiptInvalid,
    receipt_public_keys,
    verify_audit_chain,
    verify_deletion_receipts,
)


@click.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the whole audit chain and every receipt's signature; exit 1 naming the first bad."""

    async def verify(services: Services) -> tuple[int, int]:
        async with services.database.read() as session:
            with Progress("audit event") as progress:
                events = await verify_audit_chain(session, progress=progress.advance)
            # In the chain's snapshot: a key is listed before anything is signed with it,
            # so every receipt seen here has its key seen here too.
            public_keys = await receipt_public_keys(session)
            with Progress("deletion receipt") as progress:
                receipts = await verify_deletion_receipts(
                    session, public_keys, progress=progress.advance
                )
        return events, receipts

    with command_context() as context:
        try:
            events, receipts = context.run(verify)
        except AuditChainBroken as exc:
            click.echo(f"audit chain broken at event {exc.seq}: {exc.reason}", err=True)
            sys.exit(1)
        except ReceiptInvalid as exc:
            click.echo(f"deletion receipt at event {exc.seq} is bad: {exc.reason}", err=True)
            sys.exit(1)
    click.echo(
        f"audit chain intact: {counted(events, 'event')} verified, "
        f"{counted(receipts, 'receipt')} verified"
    )
