"""``callrec token``: bearer tokens for the API in dev auth mode."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from config.auth import DEV_SIGNING_KEY
from config.cli.context import command_context
from retrieval import ROLES, issue_dev_token
from storage import StorageError, load_signing_key


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
    # Stdout is the token alone, so no log set-up and no services: only the signing key.
    with command_context(logs=False) as context:
        settings = context.settings
        if settings.auth_mode != "dev":
            click.echo("callrec: token issue works only with CALLREC_AUTH_MODE=dev", err=True)
            sys.exit(2)
        try:
            key = load_signing_key(settings.data_dir / DEV_SIGNING_KEY)
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
