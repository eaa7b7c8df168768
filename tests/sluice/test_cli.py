"""The ``sluice`` command line: building the parser (``sluice --help``) loads no heavy library."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "great_expectations", "dask", "scrapy", "deltalake", "polars", "pyarrow")
# Command modules that still import heavy libraries at module level, owned by others: transform.labels
# (its split into a package gives the commands their own light module). The lead empties this after merging.
HEAVY_ALLOWED: tuple[str, ...] = ("transform.labels",)


def _heavy_modules_after_build_parser() -> list[str]:
    code = ("import sluice.cli, sys; "
            f"sluice.cli.COMMAND_MODULES[:] = [m for m in sluice.cli.COMMAND_MODULES if m not in {HEAVY_ALLOWED!r}]; "
            "sluice.cli.build_parser(); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return eval(out.stdout)


def test_help_imports_no_heavy_library():
    assert _heavy_modules_after_build_parser() == []


def test_help_lists_every_command(run_cli):
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("tables", "sql", "crawl", "quality", "dataset", "train"):
        assert command in proc.stdout
