"""The ``sluice`` command line.

Each command group lives beside the code it drives and exposes ``register(subparsers)``; this module
only collects them and turns user errors into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib

from sluice.stage import exit_process, guarded

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
    "demo.commands",
    "sluice.init",
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


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    exit_process(guarded(lambda: args.func(args)))


if __name__ == "__main__":
    main()
