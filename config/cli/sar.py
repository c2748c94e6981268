"""``callrec sar``: subject access cases, their export bundles, and checking a bundle.

``verify`` runs anywhere, with no settings, database or data directory: what a bundle's
recipient (or a regulator) needs is the bundle, the means to decrypt it and the service's
receipt public key. Exit 0 intact, 1 not intact (one line naming the first problem), 2
when it cannot be checked (unreadable file, wrong key, bad usage).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import NoReturn

import click
from click.core import ParameterSource

from config.cli.context import CLI_ACTOR, command_context
from config.cli.sar_list import sar_list
from config.plurals import counted
from config.progress import Progress
from config.services import Services
from retrieval import ExportParts, NotReadyToExport, export_case
from retrieval.sar_bundle import (
    BundleInvalid,
    BundleRefused,
    BundleReport,
    BundleSummary,
    BundleUnopenable,
    Decryption,
    Encryption,
    ToPassphrase,
    ToRecipients,
    WithPassphrase,
    private_bundle_file,
    read_identities,
    trusted_keys,
    verify_bundle,
)
from storage import CallAccesses, CaseMissing, CaseView

PASSPHRASE_VARIABLE = "CALLREC_SAR_PASSPHRASE"  # noqa: S105 (a name, not a passphrase)
_SMALL_FILE_BYTES = 64 * 1024
"""The most read from an identity, passphrase or public key file: each is a few lines."""


@click.group()
def sar() -> None:
    """Subject access: cases, their export bundles, and checking a bundle offline."""


sar.add_command(sar_list)


def _cannot(line: str) -> NoReturn:
    click.echo(f"callrec: {line}", err=True)
    sys.exit(2)


def _read_small(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(_SMALL_FILE_BYTES + 1)
    except OSError as exc:
        _cannot(f"cannot read {what} {path}: {exc.strerror}")
    if len(data) > _SMALL_FILE_BYTES:
        _cannot(f"{what} {path} is over {_SMALL_FILE_BYTES} bytes")
    return data


def _refuse_on_command_line(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    # A passphrase typed as an argument stays in shell history and in every process list.
    if (
        value is not None
        and ctx.get_parameter_source(param.name or "") == ParameterSource.COMMANDLINE
    ):
        _cannot(
            f"never give a passphrase on the command line: use --passphrase-file FILE or "
            f"{PASSPHRASE_VARIABLE}"
        )
    return value


def _decryption(
    identity: Path | None, passphrase_file: Path | None, passphrase: str | None
) -> Decryption:
    """The one means of opening the bundle that was given; exit 2 for none or several."""
    given = [
        name
        for name, value in (
            ("--identity", identity),
            ("--passphrase-file", passphrase_file),
            (PASSPHRASE_VARIABLE, passphrase),
        )
        if value is not None
    ]
    if len(given) != 1:
        also = f" (given: {', '.join(given)})" if given else ""
        _cannot(
            "give exactly one of --identity FILE, --passphrase-file FILE or "
            f"{PASSPHRASE_VARIABLE} to open the bundle{also}"
        )
    if identity is not None:
        text = _read_small(identity, "identity file").decode("utf-8", "replace")
        try:
            return read_identities(text)
        except BundleUnopenable as exc:
            _cannot(f"identity file {identity}: {exc}")
    if passphrase_file is not None:
        text = _read_small(passphrase_file, "passphrase file").decode("utf-8", "replace")
        passphrase = text.splitlines()[0] if text else ""
    if not passphrase:
        _cannot("the passphrase is empty")
    return WithPassphrase(passphrase)


@sar.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_keys",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="The service's receipt public key (Ed25519, PEM) trusted to sign; repeatable.",
)
@click.option(
    "--identity",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An age identity file (AGE-SECRET-KEY-1...) the bundle was encrypted to.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=f"{PASSPHRASE_VARIABLE}_FILE",
    help=f"A file whose first line is the bundle's passphrase (or set {PASSPHRASE_VARIABLE}).",
)
@click.option(
    "--passphrase",
    envvar=PASSPHRASE_VARIABLE,
    hidden=True,
    callback=_refuse_on_command_line,
)
def sar_verify(
    bundle: Path,
    public_keys: tuple[Path, ...],
    identity: Path | None,
    passphrase_file: Path | None,
    passphrase: str | None,
) -> None:
    """Check a subject access bundle offline: decrypt it in memory, recompute every
    file's SHA-256 and size, and check the manifest lists exactly those files and is
    signed by a receipt key given with --public-key.

    Nothing is extracted or written. Exit 0 intact, 1 not (naming the first problem), 2
    if it cannot be checked.
    """
    key = _decryption(identity, passphrase_file, passphrase)
    if not public_keys:
        _cannot("give the service's receipt public key with --public-key FILE (PEM)")
    try:
        trusted = trusted_keys([_read_small(path, "public key") for path in public_keys])
    except BundleUnopenable as exc:
        _cannot(str(exc))
    try:
        source = bundle.open("rb")
    except OSError as exc:
        _cannot(f"cannot read {bundle}: {exc.strerror}")
    try:
        with source, Progress("file") as progress:
            report = verify_bundle(source, key, trusted, progress=progress.advance)
    except BundleUnopenable as exc:
        _cannot(f"cannot open {bundle}: {exc}")
    except BundleInvalid as exc:
        click.echo(f"bundle {bundle} is not intact: {exc}", err=True)
        sys.exit(1)
    click.echo(_verdict(bundle, report))


def _verdict(bundle: Path, report: BundleReport) -> str:
    return (
        f"bundle {bundle} intact: case {report.case.reference} ({report.case.id}), "
        f"{counted(report.files, 'file')} of {counted(report.content_bytes, 'byte')}, "
        f"created {report.created_at}, signed by receipt key {report.key_id}"
    )


@sar.command("export")
@click.argument("case")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where the encrypted bundle is written (0600; an existing file is never replaced).",
)
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    help="An age public key (age1...) to encrypt to; repeatable.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=f"{PASSPHRASE_VARIABLE}_FILE",
    help=f"A file whose first line is the passphrase (or set {PASSPHRASE_VARIABLE}).",
)
@click.option(
    "--passphrase",
    envvar=PASSPHRASE_VARIABLE,
    hidden=True,
    callback=_refuse_on_command_line,
)
@click.option(
    "--include-staff-names",
    is_flag=True,
    help="Name the staff who took and accessed the calls (by default: their roles only).",
)
def sar_export(
    case: str,
    out: Path,
    recipients: tuple[str, ...],
    passphrase_file: Path | None,
    passphrase: str | None,
    include_staff_names: bool,
) -> None:
    """Write the bundle of CASE (its id or reference) to --out: each recording as the DPO
    chose to redact it, its metadata, who accessed it and why, and the signed manifest,
    encrypted to the recipients or a passphrase. Audited with every file's hash; check it
    with `callrec sar verify`."""
    encryption = _encryption(recipients, passphrase_file, passphrase)

    async def export(services: Services) -> BundleSummary:
        found = await _case(services, case)
        parts = ExportParts(
            cases=services.subject_access,
            recordings=services.catalog,
            accesses=CallAccesses(services.database),
            redactor=services.redacted_copies,
            signer=await services.receipt_signer(),
            clock=services.clock,
        )
        with Progress("recording", total=found.recording_count) as progress:
            async with private_bundle_file(out) as sink:
                return await export_case(
                    parts,
                    found.id,
                    encryption=encryption,
                    sink=sink,
                    actor=CLI_ACTOR,
                    include_staff_names=include_staff_names,
                    progress=progress.advance,
                )

    try:
        with command_context() as context:
            summary = context.run(export)
    except (NotReadyToExport, BundleRefused, CaseMissing, FileExistsError) as exc:
        _cannot(str(exc) or f"{out} exists already")
    click.echo(
        f"wrote {out}: case {summary.case.reference}, "
        f"{counted(len(summary.files), 'file')}, {counted(summary.ciphertext_bytes, 'byte')} "
        f"encrypted to {', '.join(summary.encrypted_to)}; manifest sha256 "
        f"{summary.manifest_sha256}"
    )


def _encryption(
    recipients: tuple[str, ...], passphrase_file: Path | None, passphrase: str | None
) -> Encryption:
    """The one means of encryption that was given; exit 2 for none or several."""
    if passphrase_file is not None:
        text = _read_small(passphrase_file, "passphrase file").decode("utf-8", "replace")
        passphrase = text.splitlines()[0] if text else ""
    if bool(recipients) == (passphrase is not None):
        _cannot(
            "give either --recipient age1... (repeatable) or a passphrase "
            f"(--passphrase-file FILE or {PASSPHRASE_VARIABLE})"
        )
    try:
        return ToRecipients(recipients) if recipients else ToPassphrase(passphrase or "")
    except BundleRefused as exc:
        _cannot(str(exc))


async def _case(services: Services, text: str) -> CaseView:
    """The case named by its id or its reference."""
    try:
        return await services.subject_access.get(uuid.UUID(text))
    except ValueError:
        pass
    for found in await services.subject_access.listed(state=None):
        if found.reference == text:
            return await services.subject_access.get(found.id)
    raise CaseMissing(f"no subject access request is called {text}")
