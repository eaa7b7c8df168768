"""Progress for long work: a bar on a terminal, a log line every few seconds otherwise (logs, CI, DVC).

``$SLUICE_PROGRESS_EVERY`` sets the seconds between those lines (default 5; 0 = a line per update).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from tqdm import tqdm


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it"):
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=None if sys.stderr.isatty() else True, leave=False)


def interactive() -> bool:
    return sys.stderr.isatty()


class ProgressLines:
    """Calls ``log.info(describe(elapsed_seconds))`` at most every ``every`` seconds, from ``tick()``.

    Silent on a terminal (the bar shows there) unless ``always``.
    """

    def __init__(self, log, describe: Callable[[float], str], every: float | None = None, always: bool = False):
        self.log, self.describe = log, describe
        self.every = float(os.environ.get("SLUICE_PROGRESS_EVERY", 5.0)) if every is None else every
        self.enabled = always or not interactive()
        self.started = self.last = time.monotonic()

    def tick(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.log.info(self.describe(now - self.started))
