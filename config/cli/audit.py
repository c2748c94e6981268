"""``callrec audit``: check the hash-chained audit trail, every deletion receipt in it, and
the chain against the latest signed checkpoint kept outside the database."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from config.cli.context import CLI_ACTOR, command_context
from config.plurals import counted
from config.progress import Progress
from config.services import Services
from retrieval.grants import check_reason
from storage import (
    AnchorInvalid,
    AnchorMismatch,
    AuditChainBroken,
    Checkpoint,
    NothingToAccept,
    ReceiptInvalid,
    compare_with_checkpoint,
    receipt_public_keys,
    verify_audit_chain,
    verify_deletion_receipts,
)


@click.group()
def audit() -> None:
    """The hash-chained audit trail."""


def _found_broken(exc: Exception) -> NoReturn:
    """What a check found wrong, in the one line an operator reads, and exit 1: the same
    words whichever command found it."""
    if isinstance(exc, AuditChainBroken):
        line = f"audit chain broken at event {exc.seq}: {exc.reason}"
    elif isinstance(exc, ReceiptInvalid):
        line = f"deletion receipt at event {exc.seq} is bad: {exc.reason}"
    elif isinstance(exc, AnchorMismatch):
        line = f"audit chain does not match its anchor: {exc}"
    else:
        line = f"audit checkpoint is not genuine: {exc}"
    click.echo(line, err=True)
    sys.exit(1)


@audit.command("verify")
def audit_verify() -> None:
    """Check the whole audit chain, every receipt's signature and the latest checkpoint.

    Exit 1 with one line naming the first bad event, the bad receipt, or what the
    database lacks against the checkpoint (a cut tail, a rewritten event, a restore).
    """

    async def verify(services: Services) -> tuple[int, int, Checkpoint | None]:
        # The checkpoint first, then the snapshot: a checkpoint written meanwhile is of a
        # head the snapshot already holds, so it is never a false alarm.
        async with services.database.read() as session:
            listed = await receipt_public_keys(session)
        checkpoint = await services.anchors.latest(listed)
        async with services.database.read() as session:
            with Progress("audit event") as progress:
                events = await verify_audit_chain(session, progress=progress.advance)
            if checkpoint is not None:
                await compare_with_checkpoint(session, checkpoint)
            # In the chain's snapshot: a key is listed before anything is signed with it,
            # so every receipt seen here has its key seen here too.
            public_keys = await receipt_public_keys(session)
            with Progress("deletion receipt") as progress:
                receipts = await verify_deletion_receipts(
                    session, public_keys, progress=progress.advance
                )
        return events, receipts, checkpoint

    with command_context() as context:
        try:
            events, receipts, checkpoint = context.run(verify)
        except (AuditChainBroken, ReceiptInvalid, AnchorMismatch, AnchorInvalid) as exc:
            _found_broken(exc)
    click.echo(
        f"audit chain intact: {counted(events, 'event')} verified, "
        f"{counted(receipts, 'receipt')} verified"
    )
    # Beside the verdict, not in it: scripts read the first line as they always have.
    anchored = "none written yet" if checkpoint is None else checkpoint.describe()
    click.echo(f"anchored by the latest checkpoint: {anchored}", err=True)
    if checkpoint is not None and checkpoint.after_restore is not None:
        restored = checkpoint.after_restore
        click.echo(
            f"note: the database was restored behind the checkpoint at seq "
            f"{restored.get('seq')} ({restored.get('at')}); the events after the backup "
            "are not in this database",
            err=True,
        )


@audit.command("accept-restore")
@click.option(
    "--reason", help="Which backup was restored and why (the incident), for the audit trail."
)
def audit_accept_restore(reason: str | None) -> None:
    """Anchor a database restored from a backup: after this, `audit verify` passes again,
    naming the restore. Audited.

    Only for a restore you made: start-up never does this by itself, because a database
    behind its checkpoint may also be one whose tail was cut. Exit 1 if the chain itself is
    broken, 2 if there is no restore to accept.
    """
    try:
        text = check_reason(reason)
    except ValueError as exc:
        click.echo(f"callrec: --reason: {exc}", err=True)
        sys.exit(2)

    async def accept(services: Services) -> Checkpoint:
        async with services.database.read() as session:
            await verify_audit_chain(session)
        return await services.anchors.accept_restore(services.audit, actor=CLI_ACTOR, reason=text)

    with command_context() as context:
        try:
            accepted = context.run(accept)
        except (AuditChainBroken, AnchorInvalid) as exc:
            _found_broken(exc)
        except NothingToAccept as exc:
            click.echo(f"callrec: {exc}", err=True)
            sys.exit(2)
    behind = accepted.after_restore or {}
    click.echo(
        f"restore accepted: the chain is anchored at {accepted.describe()}, after the "
        f"checkpoint at seq {behind.get('seq')} ({behind.get('at')}) it was restored behind"
    )
