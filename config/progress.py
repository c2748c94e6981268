"""Progress for long commands: a bar on a terminal, plain lines otherwise (logs, CI, cron)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import NoReturn

from tqdm import tqdm


class Progress:
    """Counts items done; shows a tqdm bar on a TTY and a line per step elsewhere."""

    def __init__(self, unit: str, *, total: int | None = None) -> None:
        self._unit = unit
        self._done = 0
        self._bar: tqdm[NoReturn] | None = None
        if sys.stderr.isatty():
            self._bar = tqdm(total=total, unit=f" {unit}", file=sys.stderr, leave=False)

    def advance(self, count: int) -> None:
        """Record ``count`` more items done."""
        self._done += count
        if self._bar is not None:
            self._bar.update(count)
        else:
            print(f"{self._done} {self._unit} done", file=sys.stderr, flush=True)

    def write(self, line: str) -> None:
        """Print ``line`` on stdout without breaking the bar."""
        if self._bar is not None:
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
