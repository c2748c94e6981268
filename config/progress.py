"""Progress for long commands: a bar on a terminal; off one (logs, CI, cron), a line every
few seconds (and at each tenth of a known total) and one at the end, however many items
there are."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import NoReturn

from tqdm import tqdm

from config.plurals import counted

LINE_EVERY_S = 5.0
"""Off a terminal, the most often a progress line is printed: 100,000 objects are a few
dozen lines under cron, not 100,000."""


class Progress:
    """Counts items done; shows a tqdm bar on a TTY, and occasional lines elsewhere."""

    def __init__(
        self,
        noun: str,
        *,
        total: int | None = None,
        every_s: float = LINE_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._noun = noun
        self._total = total
        self._done = 0
        self._every_s = every_s
        self._monotonic = monotonic
        self._started = monotonic()
        self._last_line = self._started
        # With a known total, a line at each tenth of it as well: a short run still shows
        # how far it got (a resumable one, where to expect it to carry on from).
        self._tenth = max(1, -(-total // 10)) if total else 0
        self._bar: tqdm[NoReturn] | None = None
        if sys.stderr.isatty():
            self._bar = tqdm(total=total, unit=f" {noun}", file=sys.stderr, leave=False)

    def advance(self, count: int) -> None:
        """Record ``count`` more items done."""
        self._done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = self._monotonic()
        crossed_tenth = self._tenth and (self._done // self._tenth) > (
            (self._done - count) // self._tenth
        )
        if crossed_tenth or now - self._last_line >= self._every_s:
            self._last_line = now
            of = "" if self._total is None else f" of {self._total}"
            self._line(f"{counted(self._done, self._noun)}{of} done so far")

    def write(self, line: str) -> None:
        """Print ``line`` on stdout without breaking the bar."""
        if self._bar is not None:
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def _line(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

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
        elif self._done and self._monotonic() - self._started >= self._every_s:
            # A run long enough to have shown progress ends with where it got to; a short
            # one leaves its summary to the command.
            seconds = self._monotonic() - self._started
            self._line(f"{counted(self._done, self._noun)} in {seconds:.0f} s")
