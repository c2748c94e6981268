"""What every command does around its work: settings, logging, services, and closing them.

Exit codes are the same for every command: 2 for a bad setting or a storage problem,
3 when the database or store cannot be reached.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import click

from config.logging import configure_logging
from config.services import Services, build_services
from config.settings import Settings, SettingsError, load_settings
from storage import AuditChainBroken, ReceiptInvalid, StorageError, Unavailable

T = TypeVar("T")
CLI_ACTOR = "cli"
"""Who the audit trail names for work done from the command line."""


@dataclass(frozen=True, slots=True)
class CommandContext:
    """A command's settings and its services, built as the command touches them."""

    settings: Settings
    services: Services

    def run(self, work: Callable[[Services], Awaitable[T]], *, keep_open: bool = False) -> T:
        """Run ``work`` in an event loop, closing what it built in that same loop.

        ``keep_open`` leaves the services to their next owner (the served app closes them
        when it stops) once ``work`` succeeds; work that fails has no next owner, so what it
        opened is closed here, in its own loop. Storage problems become a one-line message
        and an exit code.
        """

        async def main() -> T:
            handed_on = False
            try:
                result = await work(self.services)
                handed_on = keep_open
                return result
            finally:
                if not handed_on:
                    await self.services.close()

        try:
            return asyncio.run(main())
        except Unavailable as exc:
            click.echo(f"callrec: {exc}", err=True)
            sys.exit(3)
        except (AuditChainBroken, ReceiptInvalid):
            raise  # the command that verifies says what it means
        except StorageError as exc:
            click.echo(f"callrec: {exc}", err=True)
            sys.exit(2)


def load_cli_settings() -> Settings:
    """The settings, or exit 2 naming the one that is wrong."""
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"callrec: invalid setting {exc}", err=True)
        sys.exit(2)


@contextmanager
def command_context(*, logs: bool = True) -> Iterator[CommandContext]:
    """Settings, then logging (unless ``logs`` is False), then the services; closed after.

    Nothing is built until the command touches it, so a command that prints a token
    never opens the database, and one that reads the keys never starts media workers.
    """
    settings = load_cli_settings()
    if logs:
        configure_logging(settings.log_level)
    context = CommandContext(settings, build_services(settings))
    try:
        yield context
    finally:
        if context.services.built:
            # Parts built outside ``run`` (and not handed on): release them here.
            asyncio.run(context.services.close())
