"""Checking a `callrec ...` command line against the command line's own parser, without
running it: what the deploy files and the operations guide tell people to type."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import click

from config.cli import main

_SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"})


def parse_command(args: list[str]) -> list[str]:
    """The chain of (sub)commands ``callrec *args`` names; click.UsageError if it does not
    parse (unknown command or option, missing argument, a value of the wrong type)."""
    command: click.Command = main
    context = command.make_context("callrec", list(args))
    chain = ["callrec"]
    while isinstance(command, click.Group):
        rest = [*getattr(context, "_protected_args", []), *context.args]
        if not rest:
            if not command.invoke_without_command:
                raise click.UsageError(f"{' '.join(chain)} needs a command", context)
            break
        name, found, remaining = command.resolve_command(context, rest)
        if found is None or name is None:
            raise click.UsageError(f"no command {rest[0]!r}", context)
        chain.append(name)
        context = found.make_context(name, remaining, parent=context)
        command = found
    return chain


def callrec_invocations(line: str) -> Iterator[list[str]]:
    """The arguments of the `callrec` command in a shell line, if it has one.

    The command starts at a word that is exactly ``callrec`` and is not an option's value
    (``-p callrec``, ``--owner callrec``) and runs to the next shell operator; a ``callrec``
    with nothing after it names the user or the unit (``systemctl stop callrec``). ``...``
    alone stands for any command, as prose writes it.
    """
    words = shlex.split(line, comments=True)
    index = 0
    while index < len(words):
        if words[index] != "callrec" or (index and words[index - 1].startswith("-")):
            index += 1
            continue
        args: list[str] = []
        for argument in words[index + 1 :]:
            if argument in _SHELL_OPERATORS:
                break
            args.append(argument)
        if args and args != ["..."]:
            yield args
        index += 1 + len(args)
