"""The stage runtime: how every command and every DVC stage module runs, reports and exits.

A stage module ends with ``run_stage("name", run)`` (a stage that writes a manifest) or
``stage_main(fn)``; ``sluice.cli`` runs commands through ``guarded`` and ``exit_process``. The core
owns this so stage packages never import the command line.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NoReturn

from sluice.errors import SluiceError


def guarded(fn: Callable[[], int | None]) -> int:
    """Run ``fn``; a SluiceError becomes one line on stderr and its exit code."""
    try:
        return int(fn() or 0)
    except SluiceError as err:
        print(f"sluice: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("sluice: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def exit_process(code: int) -> NoReturn:
    """End a command's process with ``code`` without running native static destructors.

    Arrow's worker threads (deltalake and Polars read through Arrow datasets) can still be winding
    down after the last scan when the interpreter finalizes; libstdc++ then aborts the finished
    process with "terminate called without an active exception" and exit 134, which makes DVC fail
    a stage whose work and Delta commits are complete (apache/arrow#39862, delta-io/delta-rs#2184).
    By the time a command returns every file is closed and every commit made, so this does what
    interpreter shutdown would do for Python code (threading's exit hooks, join non-daemon threads,
    run atexit handlers, flush stdio) and then leaves with ``os._exit``, skipping only the C++ teardown.
    """
    gc.collect()
    # What Py_Finalize does first, in its order: threading's own exit hooks (which tell executor
    # worker threads to finish), then a join of every non-daemon thread; then the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be written anyway
            pass
    os._exit(code)


def stage_main(fn: Callable[[], int | None]) -> None:
    """Entry point for ``python -m <stage>`` modules run by DVC."""
    exit_process(guarded(fn))


def run_stage(stage: str, run: Callable[..., dict]) -> None:
    """Entry point of a DVC stage module: ``run(params)``, then write its manifest; exit as ``guarded``."""

    def go():
        from sluice.config import load_params
        from sluice.lake import Lake
        from sluice.runs import check_upstream, write_manifest

        params = load_params()
        check_upstream(stage, Lake.from_params(params), params.paths.manifests)  # before any work
        summary = run(params)
        print(f"[{stage}] manifest: {write_manifest(stage, summary)}")

    stage_main(go)


# --- logging: one format for every stage and command --------------------------------------------

_LOG_LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


def configure_logging(verbosity: str | None = None) -> None:
    """One handler on stderr, ``[stage] message``; ``verbosity`` is quiet | normal | verbose.

    Without an argument it comes from ``$SLUICE_LOG`` (so ``sluice --quiet`` reaches the DVC stages
    and torchrun workers it starts), default ``normal``.
    """
    verbosity = verbosity or os.environ.get("SLUICE_LOG", "normal")
    if verbosity not in _LOG_LEVELS:
        raise ValueError(f"unknown verbosity {verbosity!r}; use one of {', '.join(_LOG_LEVELS)}")
    root = logging.getLogger("sluice")
    root.setLevel(_LOG_LEVELS[verbosity])
    if not any(getattr(h, "_sluice", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(stage)s] %(message)s"))
        handler._sluice = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False


class _StageAdapter(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        kwargs.setdefault("extra", {})["stage"] = self.extra["stage"]
        return msg, kwargs


def stage_logger(stage: str) -> logging.LoggerAdapter:
    """The logger of one stage or command: ``log.info("...")`` prints ``[stage] ...`` on stderr."""
    configure_logging()
    return _StageAdapter(logging.getLogger(f"sluice.{stage}"), {"stage": stage})


# --- quarantine: one builder for every stage's rejected rows ---------------------------------------

@dataclass
class Quarantine:
    """Rows one stage rejects, in the ``quarantine`` table's shape.

    ``add`` one rejected row (its key in ``source_table``, the ``check`` that failed, a human
    ``reason`` and optional ``details``); ``write`` lands them, either merged by key (bronze stages,
    which only add) or replacing this stage's earlier rows (``replace=True``: a row fixed upstream is
    re-admitted on rerun).
    """

    stage: str
    source_table: str
    run_id: str
    rows: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)

    def add(self, row_key: str, check: str, reason: str | None = None, details: str | None = None,
            source_table: str | None = None) -> None:
        self.rows.append((source_table or self.source_table, str(row_key), check, reason or check, details))

    def __len__(self) -> int:
        return len(self.rows)

    def counts(self) -> dict[str, int]:
        """Rejected rows per check."""
        return dict(Counter(check for _, _, check, _, _ in self.rows))

    def table(self):
        import pyarrow as pa

        now = datetime.now(timezone.utc)
        n = len(self.rows)
        cols = list(zip(*self.rows)) if n else [[]] * 5
        return pa.table({
            "source_table": pa.array(cols[0], pa.string()), "row_key": pa.array(cols[1], pa.string()),
            "stage": pa.array([self.stage] * n, pa.string()), "check": pa.array(cols[2], pa.string()),
            "reason": pa.array(cols[3], pa.string()), "details": pa.array(cols[4], pa.string()),
            "run_id": pa.array([self.run_id] * n, pa.string()),
            "quarantined_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        })

    def write(self, lake, replace: bool = False) -> int:
        """Land the rows (and clear them); with ``replace`` this stage's earlier rows are replaced."""
        table = self.table()
        self.rows.clear()
        if not replace:
            return lake.merge_insert("quarantine", table, run_id=self.run_id) if table.num_rows else 0
        if table.num_rows or _stage_has_rows(lake, self.stage):
            lake.overwrite("quarantine", table, predicate=f"stage = '{self.stage}'", run_id=self.run_id)
        return table.num_rows


def _stage_has_rows(lake, stage: str) -> bool:
    import pyarrow.compute as pc

    if not lake.exists("quarantine"):
        return False
    return lake.read("quarantine", columns=["stage"], filter=pc.field("stage") == stage).num_rows > 0
