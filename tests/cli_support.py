"""Running the ``callrec`` command as a real process, with only the settings a test gives."""

from __future__ import annotations

import os
import subprocess
import sys

CALLREC = [sys.executable, "-m", "config"]


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
        timeout=120,
        check=False,
    )
