"""``callrec token``: bearer tokens for the API in dev auth mode."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from config.cli.context import command_context
from config.services import Services
from retrieval import ROLES, issue_dev_token
from storage import SigningKey, StorageError, upgrade_database


@click.group()
def token() -> None:
    """Bearer tokens for the API (dev auth mode)."""


@token.command("issue")
@click.option("--subject", required=True, help="Who the token is for (a stable user id).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="The person's role.")
@click.option("--team", "teams", multiple=True, help="A team the person belongs to; repeatable.")
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(1, 12 * 3600),
    help="Lifetime in seconds.",
)
def token_issue(subject: str, role: str, teams: tuple[str, ...], ttl: int) -> None:
    """Print a signed JWT on stdout; only in dev auth mode."""
    # Stdout is the token alone, so no log set-up; the key is the one every replica shares.
    with command_context(logs=False) as context:
        settings = context.settings
        if settings.auth_mode != "dev":
            click.echo("callrec: token issue works only with CALLREC_AUTH_MODE=dev", err=True)
            sys.exit(2)

        async def dev_token_key(services: Services) -> SigningKey:
            if settings.uses_embedded_database:
                await upgrade_database(services.database.engine)
            return (await services.load_shared_keys()).dev_token_key

        key = context.run(dev_token_key)
        try:
            issued = issue_dev_token(
                key,
                subject=subject,
                role=role,
                teams=teams,
                ttl=timedelta(seconds=ttl),
                now=context.services.clock(),
            )
        except (StorageError, ValueError) as exc:
            click.echo(f"callrec: {exc}", err=True)
            sys.exit(2)
    click.echo(issued)
