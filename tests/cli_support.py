"""Running the ``callrec`` command with only the settings a test gives: as a real process
(``run``), or in this process (``invoke``) where the process boundary is not what a test
is about."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from click.testing import CliRunner, Result

from config.cli import main

CALLREC = [sys.executable, "-m", "config"]
TIMEOUT_S = 120


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any CALLREC_ setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}  # noqa: TID251
    return env | settings


def run(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``callrec *args`` to completion (two minutes at most), output captured."""
    return subprocess.run(
        [*CALLREC, *args],
        env=clean_environment(**settings),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def invoke(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``callrec *args`` run in this process: what ``run`` answers, without the two seconds
    a new interpreter spends importing the service.

    The command's own code runs (settings, services, exit codes, what it prints on stdout
    and stderr), on a thread of its own: it starts its event loop as the console script
    does, which a test's running loop would refuse. What a command sets for its whole
    process (the umask, the logging) is put back afterwards, so later tests see this
    process as it was. An exception the command does not turn into an exit code is
    raised here, as the traceback a real process would end with.
    """
    unset: dict[str, str | None] = {
        name: None
        for name in os.environ  # noqa: TID251
        if name.startswith("CALLREC_")
    }
    results: list[Result | BaseException] = []

    def command() -> None:
        try:
            results.append(
                CliRunner().invoke(
                    main,
                    list(args),
                    env=unset | settings,
                    prog_name="callrec",
                    catch_exceptions=False,
                )
            )
        except BaseException as exc:  # handed to the test's thread, raised there
            results.append(exc)

    with process_state_restored():
        thread = threading.Thread(target=command, name=f"callrec {' '.join(args)}")
        thread.start()
        thread.join(TIMEOUT_S)
    if thread.is_alive():
        raise AssertionError(f"callrec {' '.join(args)} still running after {TIMEOUT_S} s")
    (result,) = results
    if isinstance(result, BaseException):
        raise result
    return subprocess.CompletedProcess(
        ["callrec", *args], result.exit_code, result.stdout, result.stderr
    )


@contextmanager
def process_state_restored() -> Iterator[None]:
    """The umask, the root logger and structlog's configuration, as they were before."""
    umask = os.umask(0o022)
    os.umask(umask)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    access = logging.getLogger("aiohttp.access")
    access_disabled = access.disabled
    structlog_config = structlog.get_config()
    try:
        yield
    finally:
        os.umask(umask)
        root.handlers[:] = handlers
        root.setLevel(level)
        access.disabled = access_disabled
        structlog.configure(**structlog_config)
