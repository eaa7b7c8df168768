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


class Meter:
    """Work done of a known total: a bar on a terminal, otherwise a log line every few seconds
    (``desc: done/total unit (pct), rate, ETA``), and one closing line with the time it took."""

    def __init__(self, log, desc: str, total: int, unit: str = "it"):
        self.log, self.desc, self.total, self.unit = log, desc, max(int(total), 0), unit
        self.done = 0
        self.bar = progress(total=self.total, desc=desc, unit=unit)
        self.lines = ProgressLines(log, self._line)

    def _line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(self.total - self.done) / rate:.0f}s" if rate > 0 and self.done < self.total else ""
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.desc}: {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%), {rate:,.0f} {self.unit}/s{eta}"

    def update(self, n: int) -> None:
        self.done += int(n)
        self.bar.update(int(n))
        self.lines.tick()

    def close(self) -> None:
        self.bar.close()
        elapsed = time.monotonic() - self.lines.started
        if self.lines.enabled and elapsed >= self.lines.every:
            self.log.info("%s: %s %s in %.1fs", self.desc, f"{self.done:,}", self.unit, elapsed)
