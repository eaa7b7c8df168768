"""The standing fault-injection suite: every scenario records one row; the session prints them as a table.

Each scenario runs ``SLUICE_FAULT_RUNS`` times (default 2). The table (scenario, runs, rows expected,
rows found, outcome) is printed at the end of the pytest run, and written as Markdown to the file
``$SLUICE_FAULT_REPORT`` names, if set (README "Faults" shows one).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("SLUICE_FAULT_RUNS", "2"))
COLUMNS = ("scenario", "runs", "rows expected", "rows found", "outcome")


@dataclass
class Run:
    expected: object
    found: object
    ok: bool
    note: str = ""


_ROWS: list[tuple[str, ...]] = []


class Faults:
    """Collects a scenario's runs; ``check`` records the table row and then asserts every run held."""

    def __init__(self, scenario: str):
        self.scenario, self.runs = scenario, []

    def add(self, expected, found, ok: bool, note: str = "") -> None:
        self.runs.append(Run(expected, found, bool(ok), note))

    def check(self) -> None:
        failed = [r for r in self.runs if not r.ok]
        notes = sorted({r.note for r in self.runs if r.note})
        outcome = ("held" if not failed else f"FAILED {len(failed)}/{len(self.runs)}") + (
            f" ({'; '.join(notes)})" if notes else "")
        _ROWS.append((self.scenario, str(len(self.runs)), _join(r.expected for r in self.runs),
                      _join(r.found for r in self.runs), outcome))
        assert not failed, [(r.expected, r.found, r.note) for r in failed]


def _join(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(set(values)) == 1 else ", ".join(values)


@pytest.fixture
def faults(request):
    return Faults(request.node.name.removeprefix("test_"))


@pytest.fixture
def rng(request):
    """A per-scenario random source (seeded by the scenario's name unless SLUICE_FAULT_SEED is set)."""
    return random.Random(os.environ.get("SLUICE_FAULT_SEED", request.node.name))


def markdown(rows) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    widths = [max(len(c), *(len(r[i]) for r in _ROWS)) for i, c in enumerate(COLUMNS)]
    terminalreporter.write_sep("=", "fault injection")
    for row in (COLUMNS, tuple("-" * w for w in widths), *_ROWS):
        terminalreporter.write_line("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    if target := os.environ.get("SLUICE_FAULT_REPORT"):
        Path(target).write_text(markdown(_ROWS))


# ------------------------------------------------------------------------------------------------ processes
def env(params: Path | None = None, **extra) -> dict:
    out = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "SLUICE_LOG": "quiet", **extra}
    if params is not None:
        out["SLUICE_PARAMS"] = str(params)
    return out


def start(args: list[str], cwd: Path, params: Path | None = None, **extra) -> subprocess.Popen:
    """``python <args>`` in its own process group (so kill -9 reaches its workers too)."""
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env(params, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def run(args: list[str], cwd: Path, params: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env(params), capture_output=True, text=True,
                          timeout=timeout)


def kill9_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL the process group ``seconds`` after now; False if it had already ended by then."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.communicate()
            return False
        time.sleep(0.02)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=60)
    return True


def kill9_when(proc: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """SIGKILL the process group as soon as ``ready()`` is true; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill() if proc.poll() is None else None
            proc.communicate()
            return False
        time.sleep(0.01)
    return kill9_after(proc, 0)


def files(folder: Path, pattern: str = "*") -> int:
    return len(list(folder.glob(pattern))) if folder.is_dir() else 0


def timed(args: list[str], cwd: Path, params: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    result = run(args, cwd, params)
    return result, time.monotonic() - began
