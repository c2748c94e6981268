"""The ``callrec`` command line: one module per command group, each calling one function."""

from __future__ import annotations

import click

from config.cli.audit import audit
from config.cli.db import db
from config.cli.fetches import fetches
from config.cli.keys import keys
from config.cli.renditions import renditions
from config.cli.retention import retention
from config.cli.sar import sar
from config.cli.serve import serve
from config.cli.token import token
from config.cli.verify import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Captures, protects and deletes the call recordings of a safeguarding hub."""


for _command in (serve, db, audit, token, retention, fetches, renditions, verify, keys, sar):
    main.add_command(_command)

__all__ = ["main"]
