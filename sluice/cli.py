"""The ``sluice`` command line.

Each command group lives beside the code it drives and exposes ``register(subparsers)``; this module
only collects them and turns user errors into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from sluice.errors import SluiceError

# Modules that add sub-commands, in the order they appear in --help.
COMMAND_MODULES = [
    "sluice.commands",
    "ingest.commands",
    "ingest.crawl.commands",
    "transform.labels",
    "train.commands",
    "quality.commands",
    "sluice.dataset_commands",
    "train.predict_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice",
        description="Sluice: an open data lakehouse for training image models.",
        epilog="Settings come from params.yaml (or $SLUICE_PARAMS); see README.md.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


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
        from sluice.runs import write_manifest

        summary = run(load_params())
        print(f"[{stage}] manifest: {write_manifest(stage, summary)}")

    stage_main(go)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    exit_process(guarded(lambda: args.func(args)))


if __name__ == "__main__":
    main()
