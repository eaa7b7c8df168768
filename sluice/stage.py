"""The stage runtime: how every command and every DVC stage module runs, reports and exits.

A stage module ends with ``run_stage("name", run)`` (a stage that writes a manifest) or
``stage_main(fn)``; ``sluice.cli`` runs commands through ``guarded`` and ``exit_process``. The core
owns this so stage packages never import the command line. Also here: the per-stage logger (logs on
stderr, stdout stays for a command's real output), the ``Quarantine`` builder and ``stage_record``,
the bookkeeping every stage's manifest ends with.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NoReturn

from sluice.errors import ConfigError, SluiceError


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
        stage_logger(stage).info("manifest: %s", write_manifest(stage, summary))

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
        raise ConfigError(f"SLUICE_LOG: unknown verbosity {verbosity!r}; use one of {', '.join(_LOG_LEVELS)}")
    root = logging.getLogger("sluice")
    root.setLevel(_LOG_LEVELS[verbosity])
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_StageFormatter("[%(stage)s] %(message)s"))
        root.addHandler(handler)
        root.propagate = False


class _StageFormatter(logging.Formatter):
    """``[stage] message``; a record logged without :func:`stage_logger` (no ``stage``) is named by its
    logger (``sluice.erase`` -> ``[erase]``) instead of crashing the handler."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "stage"):
            record.stage = record.name.removeprefix("sluice.")
        return super().format(record)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (pytest's capture, a redirect)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property always reads sys.stderr
        pass


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

    def write(self, lake, replace: bool = False, checks: Iterable[str] | None = None) -> int:
        """Land the rows (and clear them); with ``replace`` this stage's earlier rows are replaced.

        ``checks`` narrows what is replaced to earlier rows whose check starts with one of these
        prefixes (a gate rerun of some suites keeps the other suites' rows). A rerun with nothing to
        quarantine and nothing to replace commits nothing.
        """
        table = self.table()
        self.rows.clear()
        if not replace:
            return lake.merge_insert("quarantine", table, run_id=self.run_id) if table.num_rows else 0
        prefixes = None if checks is None else tuple(checks)
        predicate = f"stage = '{self.stage}'"
        if prefixes is not None:
            predicate += " AND (" + (" OR ".join(f"\"check\" LIKE '{p}%'" for p in prefixes) or "false") + ")"
        if table.num_rows or _stage_has_rows(lake, self.stage, prefixes):
            lake.overwrite("quarantine", table, predicate=predicate, run_id=self.run_id)
        return table.num_rows


def _stage_has_rows(lake, stage: str, prefixes: tuple[str, ...] | None = None) -> bool:
    import pyarrow.compute as pc

    if not lake.exists("quarantine"):
        return False
    rows = lake.read("quarantine", columns=["stage", "check"], filter=pc.field("stage") == stage)
    if prefixes is None:
        return rows.num_rows > 0
    return any(check.startswith(prefixes) for check in rows["check"].to_pylist())


# --- the end of every stage: reconciliation, table versions and row counts -----------------------

def stage_record(stage: str, lake, written: Iterable[str], rows_in: int, *, run_id: str | None = None,
                 read: dict[str, int | None] | None = None, **parts: int) -> dict:
    """The bookkeeping a stage's manifest ends with, in one call.

    Checks and logs the reconciliation line (``sluice.runs.reconcile``: ``rows_in`` must equal the sum
    of ``parts``, e.g. ``new=``, ``already_present=``, ``quarantined=``; a mismatch raises), reads the
    current Delta version and row count of every table in ``written``, and logs them. ``read`` names
    the input versions the stage read (kept beside the written ones). Returns the manifest entries
    ``{"run_id", "reconcile", "versions", "rows"}`` to merge into the stage's summary.
    """
    from sluice.runs import reconcile

    record = {"reconcile": reconcile(stage, rows_in, **parts)}
    written = list(written)
    versions = {t: lake.version(t) for t in written}
    record["versions"] = {**(read or {}), **versions}
    record["rows"] = {t: lake.count(t) for t in written}
    if run_id is not None:
        record["run_id"] = run_id
    stage_logger(stage).info("tables: %s", ", ".join(f"{t} v{versions[t]} ({record['rows'][t]} rows)" for t in written))
    return record
