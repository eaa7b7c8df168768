"""Start-up time of the ``sluice`` command line: ``sluice --help`` vs a bare ``python -c pass``.

Runs each command ``--runs`` times in turn, in fresh processes, and prints the medians (wall) and
their ratio: the CLI's own cost on top of the interpreter's start-up. Target: ``--help`` under 0.3 s.
Building the parser imports only argparse-level code; the command modules import their heavy
libraries (torch, GX, Dask, Scrapy, deltalake, Polars, pyarrow) inside their handlers.

    python benchmarks/cli.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    ours_cmd, base_cmd = [sys.executable, "-m", "sluice.cli", "--help"], [sys.executable, "-c", "pass"]
    wall(ours_cmd)  # warm the file cache
    ours, base = [], []
    for _ in range(args.runs):
        ours.append(wall(ours_cmd))
        base.append(wall(base_cmd))
    o, b = statistics.median(ours), statistics.median(base)
    verdict = "meets" if o < 0.3 else "ABOVE"
    print(f"sluice --help: median {o:.3f}s over {args.runs} runs [{verdict} target < 0.3 s]; "
          f"python -c pass: {b:.3f}s; ratio {o / b:.2f}x the bare interpreter")


if __name__ == "__main__":
    main()
