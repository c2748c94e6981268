"""``callrec keys``: rotate the key-encryption key, re-wrap data keys, show the keys' state,
and print the receipt keys' public halves."""

from __future__ import annotations

import json

import click

from config.cli.context import CLI_ACTOR, command_context
from config.plurals import counted
from config.progress import Progress
from config.services import Services
from storage import KeyStatus, RewrapReport, receipt_public_keys


@click.group()
def keys() -> None:
    """Key rotation and re-wrapping; audio is never re-encrypted."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new key-encryption key current; new recordings use it.

    With the local keyring a new root key version is made; a KMS rotates its own key
    material. Either way new data keys go under a new generation of epoch keys. Run
    `callrec keys rewrap` afterwards to move the existing ones.
    """

    async def rotate(services: Services) -> tuple[int, str]:
        await services.keys.check()
        generation = await services.keys.rotate(actor=CLI_ACTOR)
        return generation, services.keyring.current_kek_id

    with command_context() as context:
        generation, root = context.run(rotate)
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

    async def rewrap(services: Services) -> RewrapReport:
        await services.keys.check()
        with Progress("data key", total=await services.keys.stale_count()) as progress:
            return await services.keys.rewrap(
                actor=CLI_ACTOR, batch_size=batch_size, progress=progress.advance
            )

    with command_context() as context:
        report = context.run(rewrap)
    rewrapped = counted(report.rewrapped, "data key")
    click.echo(f"{rewrapped} re-wrapped under generation {report.generation}")
    for retired in report.retired:
        click.echo(f"retired {retired}")


@keys.command("status")
def keys_status() -> None:
    """The current generation, each live epoch key and how many data keys it wraps."""

    async def status(services: Services) -> KeyStatus:
        return await services.keys.status()

    with command_context() as context:
        report = context.run(status)
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


@keys.command("receipt-keys")
def keys_receipt_keys() -> None:
    """Print the public half of every receipt key the service has used (PEM).

    What a recipient of a subject access bundle, or anyone checking a deletion receipt
    outside the service, needs: `callrec sar verify BUNDLE --public-key FILE` takes this
    output as FILE. Hand it over by another channel than the bundle.
    """

    async def listed(services: Services) -> dict[str, bytes]:
        async with services.database.read() as session:
            return await receipt_public_keys(session)

    with command_context() as context:
        public_keys = context.run(listed)
    for key_id, pem in sorted(public_keys.items()):
        click.echo(f"# receipt key {key_id}")
        click.echo(pem.decode("ascii").rstrip("\n"))
