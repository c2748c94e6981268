"""The ``callrec`` command line: each command reads settings, wires parts, calls one function."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import click
from aiohttp import web

from config.app import DEV_SIGNING_KEY, build_services, create_app, utc_now
from config.logging import configure_logging
from config.progress import Progress
from config.settings import Settings, SettingsError, load_settings
from retention import SweepReport, attest_if_due, retention_status, sweep_expired_recordings
from retrieval import ROLES, issue_dev_token
from storage import (
    AuditChainBroken,
    KeyStatus,
    RewrapReport,
    Scrubber,
    ScrubReport,
    ShredReport,
    StorageError,
    Unavailable,
    load_signing_key,
    upgrade_database,
    verify_audit_chain,
)

T = TypeVar("T")
# Who the audit trail names for work done from the command line.
CLI_ACTOR = "cli"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"callrec: invalid setting {exc}", err=True)
        sys.exit(2)


def _run(main: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except Unavailable as exc:
        click.echo(f"callrec: {exc}", err=True)
        sys.exit(3)
    except AuditChainBroken:
        raise  # the command that verifies says what it means
    except StorageError as exc:
        click.echo(f"callrec: {exc}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Captures, protects and deletes the call recordings of a safeguarding hub."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def serve(host: str, port: int) -> None:
    """Run the service: webhooks, API, web page and scheduler."""
    settings = _settings()
    configure_logging(settings.log_level)
    try:
        services = build_services(settings)
    except StorageError as exc:
        click.echo(f"callrec: {exc}", err=True)
        sys.exit(2)

    async def start() -> web.Application:
        if settings.uses_embedded_database:
            await upgrade_database(services.database.engine)
        return create_app(services)

    app = _run(start)
    public = settings.public_url or f"http://{host}:{port}"
    click.echo(f"callrec listening on http://{host}:{port} (public URL {public})", err=True)
    click.echo(f"data directory: {settings.data_dir.resolve()}", err=True)
    if settings.auth_mode == "dev":
        click.echo(
            "dev auth: get a token with `.venv/bin/callrec token issue --subject you "
            "--role supervisor --team mash-children` and paste it into the sign-in form at "
            f"{public}/ (or send it as a bearer token to the API)",
            err=True,
        )
    if not settings.push_secrets:
        click.echo(
            "no push sources: set CALLREC_PUSH_SECRETS=name=secret to accept pushes", err=True
        )
    web.run_app(app, host=host, port=port, print=None, access_log=None)


@main.group()
def db() -> None:
    """The metadata database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the newest."""
    settings = _settings()
    configure_logging(settings.log_level)

    async def upgrade() -> None:
        services = build_services(settings)
        try:
            await upgrade_database(services.database.engine)
        finally:
            await services.close()

    _run(upgrade)
    click.echo("database is up to date")


@main.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the whole audit chain; exit 0 if intact, 1 naming the first bad event."""
    settings = _settings()
    configure_logging(settings.log_level)

    async def verify() -> int:
        services = build_services(settings)
        try:
            async with services.database.read() as session:
                with Progress("audit events") as progress:
                    return await verify_audit_chain(session, progress=progress.advance)
        finally:
            await services.close()

    try:
        count = _run(verify)
    except AuditChainBroken as exc:
        click.echo(f"audit chain broken at event {exc.seq}: {exc.reason}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {count} events verified")


@main.group()
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
    settings = _settings()
    if settings.auth_mode != "dev":
        click.echo("callrec: token issue works only with CALLREC_AUTH_MODE=dev", err=True)
        sys.exit(2)
    try:
        key = load_signing_key(settings.data_dir / DEV_SIGNING_KEY)
        issued = issue_dev_token(
            key, subject=subject, role=role, teams=teams, ttl=timedelta(seconds=ttl), now=utc_now()
        )
    except (StorageError, ValueError) as exc:
        click.echo(f"callrec: {exc}", err=True)
        sys.exit(2)
    click.echo(issued)


@main.group()
def retention() -> None:
    """The retention period: sweeps and their status."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=500,
    show_default=True,
    help="Recordings claimed per commit and deleted per store request.",
)
def retention_run(dry_run: bool, batch_size: int) -> None:
    """Run one sweep now: delete every recording due before the next scheduled sweep.

    Safe beside running services and other sweeps: each claims its own recordings. Writes
    the daily attestation too when the last one is a day old.
    """
    settings = _settings()
    configure_logging(settings.log_level)

    async def sweep() -> SweepReport:
        services = build_services(settings)
        try:
            with Progress("recordings deleted") as progress:

                def show(kind: str, ids: Sequence[uuid.UUID]) -> None:
                    for recording_id in ids:
                        progress.write(
                            f"deleted {recording_id}"
                            if kind == "deleted"
                            else f"finished interrupted deletion of {recording_id}"
                        )

                report = await sweep_expired_recordings(
                    services.deleter,
                    now=utc_now(),
                    horizon=settings.retention_sweep_interval + settings.retention_margin,
                    dry_run=dry_run,
                    progress=progress.advance,
                    batch_size=batch_size,
                    on_batch=show,
                )
            if not dry_run:
                report.attestation = await attest_if_due(services.deleter, now=utc_now())
                shredded.append(await services.keys.shred_spent_epochs())
            return report
        finally:
            await services.close()

    shredded: list[ShredReport] = []
    report = _run(sweep)
    if dry_run:
        for due in report.due:
            click.echo(f"would delete {due.id} (deadline {due.retention_deadline.isoformat()})")
        click.echo(
            f"{len(report.due)} recordings would be deleted (cutoff {report.cutoff.isoformat()})"
        )
        return
    click.echo(
        f"{report.deleted_count} recordings deleted, {report.resumed_count} interrupted deletions "
        f"finished (cutoff {report.cutoff.isoformat()})"
    )
    for shred in shredded:
        for epoch in shred.destroyed:
            click.echo(f"epoch {epoch}: every recording gone, its key destroyed")
        if shred.moved_to_hold:
            click.echo(f"{shred.moved_to_hold} held data keys re-wrapped under the hold key")
    if report.attestation is not None:
        overdue = report.attestation["overdue_unheld"]
        click.echo(f"attestation written: {overdue} unheld recordings past their deadline")
        if overdue:
            sys.exit(1)


@retention.command("status")
def retention_status_command() -> None:
    """Last and next sweep, how many are due, overdue and held."""
    settings = _settings()
    configure_logging(settings.log_level)

    async def status() -> dict[str, Any]:
        services = build_services(settings)
        try:
            return await retention_status(
                services.deleter,
                now=utc_now(),
                interval=settings.retention_sweep_interval,
                margin=settings.retention_margin,
                period=settings.retention_period,
            )
        finally:
            await services.close()

    report = _run(status)
    for name, value in report.items():
        click.echo(f"{name}: {json.dumps(value)}")


@main.command("fetches")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def fetches(limit: int) -> None:
    """Provider fetches by state, and the jobs given up (dead letters) for an operator.

    Exits 1 when any job is dead-lettered: a recording the platform announced is not here.
    """
    settings = _settings()
    configure_logging(settings.log_level)

    async def report() -> tuple[dict[str, int], list[dict[str, Any]]]:
        services = build_services(settings)
        try:
            queue = services.fetch_queue
            return await queue.counts(), await queue.dead_letters(limit)
        finally:
            await services.close()

    counts, dead = _run(report)
    for state, count in counts.items():
        click.echo(f"{state}: {count}")
    for letter in dead:
        click.echo(json.dumps(letter))
    if counts.get("dead"):
        raise SystemExit(1)


@main.command("verify")
@click.option(
    "--sample",
    type=click.IntRange(1, 10_000_000),
    default=None,
    help="Check this many objects chosen at random (no orphan search) instead of all.",
)
def verify(sample: int | None) -> None:
    """Integrity scrub: every stored object read back, authenticated and hashed.

    Reports missing, resized, corrupt and orphaned objects and objects whose key will not
    open; the run is audited. Exit 0 only if all is well.
    """
    settings = _settings()
    configure_logging(settings.log_level)

    async def scrub() -> ScrubReport:
        services = build_services(settings)
        try:
            scrubber = Scrubber(
                database=services.database,
                objects=services.objects,
                keys=services.keys,
                audit=services.audit,
            )
            with Progress("objects") as progress:
                return await scrubber.run(sample=sample, progress=progress.advance)
        finally:
            await services.close()

    report = _run(scrub)
    for finding in report.findings:
        click.echo(
            json.dumps(
                {
                    "problem": finding.problem,
                    "object_key": finding.object_key,
                    "recording_id": None
                    if finding.recording_id is None
                    else str(finding.recording_id),
                }
            )
        )
    click.echo(
        f"objects: {report.objects}, bytes: {report.bytes}, problems: {len(report.findings)}"
    )
    if not report.ok:
        raise SystemExit(1)


@main.group()
def keys() -> None:
    """Key rotation and re-wrapping; audio is never re-encrypted."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new key-encryption key current; new recordings use it.

    With the local keyring a new root key version is made; a KMS rotates its own key
    material. Either way new data keys go under a new generation of epoch keys. Run
    `callrec keys rewrap` afterwards to move the existing ones.
    """
    settings = _settings()
    configure_logging(settings.log_level)

    async def rotate() -> tuple[int, str]:
        services = build_services(settings)
        try:
            await services.keys.check()
            generation = await services.keys.rotate(actor=CLI_ACTOR)
            return generation, services.keyring.current_kek_id
        finally:
            await services.close()

    generation, root = _run(rotate)
    click.echo(f"generation {generation} is current (root key {root})")


@keys.command("rewrap")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=500,
    show_default=True,
    help="Data keys re-wrapped per commit.",
)
def keys_rewrap(batch_size: int) -> None:
    """Re-wrap every data key under the current generation, then retire unused keys.

    Resumable: each batch is its own commit, so after a crash or Ctrl-C run it again and
    it carries on. Recordings stay playable throughout; audio is never re-encrypted. Old
    key versions are retired only when nothing uses them, and not within ten minutes of
    the rotation.
    """
    settings = _settings()
    configure_logging(settings.log_level)

    async def rewrap() -> RewrapReport:
        services = build_services(settings)
        try:
            await services.keys.check()
            with Progress("data keys", total=await services.keys.stale_count()) as progress:
                return await services.keys.rewrap(
                    actor=CLI_ACTOR, batch_size=batch_size, progress=progress.advance
                )
        finally:
            await services.close()

    report = _run(rewrap)
    click.echo(f"{report.rewrapped} data keys re-wrapped under generation {report.generation}")
    for retired in report.retired:
        click.echo(f"retired {retired}")


@keys.command("status")
def keys_status() -> None:
    """The current generation, each live epoch key and how many data keys it wraps."""
    settings = _settings()
    configure_logging(settings.log_level)

    async def status() -> KeyStatus:
        services = build_services(settings)
        try:
            return await services.keys.status()
        finally:
            await services.close()

    report = _run(status)
    click.echo(
        json.dumps(
            {
                "generation": report.generation,
                "rotated_at": None if report.rotated_at is None else report.rotated_at.isoformat(),
                "root_kek_id": report.root_kek_id,
                "stale_data_keys": report.stale,
                "epoch_keys_destroyed": report.destroyed,
                "epoch_keys": [
                    {
                        "epoch": key.epoch,
                        "generation": key.generation,
                        "key_id": key.key_id,
                        "data_keys": key.data_keys,
                    }
                    for key in report.epoch_keys
                ],
            },
            indent=2,
        )
    )
