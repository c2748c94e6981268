"""What every command does around its work: settings, logging, services, and closing them.

Exit codes are the same for every command: 2, with one line, for a bad setting, a storage
problem, or a database or store that cannot be reached (the line says which, and where).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.engine import make_url

from config.logging import configure_logging
from config.services import Services, build_services
from config.settings import Settings, SettingsError, load_settings
from storage import (
    AnchorInvalid,
    AnchorMismatch,
    AuditChainBroken,
    DatabaseUnavailable,
    ReceiptInvalid,
    StorageError,
    Unavailable,
)

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
        except DatabaseUnavailable as exc:
            where = database_location(self.settings.resolved_database_url)
            click.echo(f"callrec: {exc} at {where} (CALLREC_DATABASE_URL)", err=True)
            sys.exit(2)
        except Unavailable as exc:
            click.echo(f"callrec: {exc}", err=True)
            sys.exit(2)
        except (AuditChainBroken, ReceiptInvalid, AnchorMismatch, AnchorInvalid):
            raise  # the command that verifies says what it means
        except StorageError as exc:
            click.echo(f"callrec: {exc}", err=True)
            sys.exit(2)


def database_location(url: str) -> str:
    """Where a database URL points, without its password: host:port/name, or the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


def _require_existing_data(settings: Settings) -> None:
    """Exit 2 when the embedded database is not there: a command run from the wrong folder
    would otherwise make a second, empty service (and a token no server accepts)."""
    if not settings.uses_embedded_database:
        return  # a database server: an empty one is named when it is first used
    database = Path(str(make_url(settings.resolved_database_url).database))
    if not database.exists():
        click.echo(
            f"callrec: no callrec data in {database.parent}: run this where the service "
            "keeps its data, or set CALLREC_DATA_DIR to that directory",
            err=True,
        )
        sys.exit(2)


def _keep_private(data_dir: Path) -> None:
    """Close a data directory made before files were private (others could read the
    database in it); one that does not exist yet is left for the command to make."""
    with contextlib.suppress(FileNotFoundError):
        if data_dir.stat().st_mode & 0o077:
            data_dir.chmod(0o700)


def load_cli_settings() -> Settings:
    """The settings, or exit 2 naming the one that is wrong."""
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"callrec: invalid setting {exc}", err=True)
        sys.exit(2)


@contextmanager
def command_context(*, logs: bool = True, creates: bool = False) -> Iterator[CommandContext]:
    """Settings, then logging (unless ``logs`` is False), then the services; closed after.

    Nothing is built until the command touches it, so one that reads the keys never
    starts media workers, the identity provider or the platforms' callbacks.
    Only a command that ``creates`` the service's data (serve, db upgrade) may start
    from nothing; any other refuses a data directory without it.
    """
    # Everything a command creates holds personal data or keys (the database with phone
    # numbers and hold reasons, spool files, keyrings): readable by the service's user only.
    os.umask(0o077)
    settings = load_cli_settings()
    if not creates:
        _require_existing_data(settings)
    _keep_private(settings.data_dir)
    if logs:
        configure_logging(settings.log_level)
    context = CommandContext(settings, build_services(settings))
    try:
        yield context
    finally:
        if context.services.built:
            # Parts built outside ``run`` (and not handed on): release them here.
            asyncio.run(context.services.close())
