"""The ``sluice`` command line.

Each command group lives beside the code it drives and exposes ``register(subparsers)``; this module
only collects them and turns user errors into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

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


def stage_main(fn: Callable[[], int | None]) -> None:
    """Entry point for ``python -m <stage>`` modules run by DVC."""
    sys.exit(guarded(fn))


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
    sys.exit(guarded(lambda: args.func(args)))


if __name__ == "__main__":
    main()
